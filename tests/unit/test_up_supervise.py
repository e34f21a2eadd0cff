"""The supervisor: back-off on an injected clock, one pass restarts only what is gone, counts and logs it."""
from __future__ import annotations

from deploy import procs, supervise
from deploy.state import Layout
from deploy.system import FakeSystem


def test_backoff_doubles_to_the_cap_and_resets_after_a_good_run():
    b = supervise.BackOff()
    assert (b.initial, b.maximum, b.reset_after) == (1.0, 30.0, 60.0)        # the defaults, checked once
    delays = []
    t = 0.0
    for _ in range(8):                    # crash-looping: exits as soon as it is started
        at = b.exited("k", t)
        delays.append(at - t)
        assert not b.due("k", at - 0.01) and b.due("k", at)
        t = at
        b.started_now("k", t)
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    b.seen_running("k", t)
    t += 61                               # stayed up a minute: the next exit waits 1 s again
    assert b.exited("k", t) == t + 1
    # a second report of the same exit does not push the restart further out
    assert b.exited("k", t + 0.5) == t + 1


class FakeProc:
    def __init__(self, pid):
        self.pid = pid

    def poll(self):
        return None


def test_tick_restarts_only_dead_processes_after_backoff(tmp_path):
    lay = Layout(str(tmp_path / "pk"))
    supervise.write_commands(lay, {"apiserver": ["py", "apiserver", lay.marker],
                                   "node-1/kubelet": ["py", "kubelet", lay.marker]})
    procs.write_pid(lay.pidfile("apiserver"), 100)
    procs.write_pid(lay.pidfile("node-1/kubelet"), 101)
    fs = FakeSystem(procs={100: f"py apiserver {lay.marker}", 101: f"py kubelet {lay.marker}"})
    now = [0.0]
    spawned, logs = [], []

    def spawner(argv, log):
        spawned.append((argv, log))
        pid = 500 + len(spawned)
        fs.procs[pid] = " ".join(argv)
        return FakeProc(pid)

    sup = supervise.Supervisor(fs, lay, clock=lambda: now[0], spawner=spawner, logger=logs.append)
    assert sup.tick() == [] and spawned == []
    del fs.procs[101]                                       # kill -9 of the kubelet
    now[0] = 10.0
    assert sup.tick() == []                                 # seen gone: restart in 1 s
    assert "node-1/kubelet (pid 101) is not running; restarting in 1s" in logs[-1]
    now[0] = 10.5
    assert sup.tick() == []
    now[0] = 11.0
    assert sup.tick() == ["node-1/kubelet"]
    assert spawned == [(["py", "kubelet", lay.marker], lay.log("node-1/kubelet"))]
    assert procs.read_pid(lay.pidfile("node-1/kubelet")) == 501
    assert supervise.read_restarts(lay) == {"node-1/kubelet": 1}
    assert "restarted node-1/kubelet: pid 501 (restart 1)" in logs[-1]
    assert sup.tick() == []                                 # it runs now: nothing more
    # a key removed from commands.json (node remove) is never restarted
    supervise.write_commands(lay, {"apiserver": ["py", "apiserver", lay.marker]})
    del fs.procs[501]
    now[0] = 100.0
    assert sup.tick() == [] and sup.tick() == []
    # a PID reused by an unrelated process counts as gone
    fs.procs[100] = "/usr/sbin/sshd -D"
    sup.tick()
    now[0] = 101.0
    assert sup.tick() == ["apiserver"]
    assert supervise.read_restarts(lay) == {"node-1/kubelet": 1, "apiserver": 1}


def test_supervisor_command_names_the_data_dir(tmp_path):
    lay = Layout(str(tmp_path / "pk"))
    cmd = supervise.supervisor_command(lay, python="py")
    assert cmd[:4] == ["py", "-m", "deploy.cli", "supervise"] and lay.marker in " ".join(cmd)
