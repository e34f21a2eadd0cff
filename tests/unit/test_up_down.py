"""`pocketkube down` through FakeSystem: stops only its own PIDs, undoes what state.json recorded,
is idempotent, and --purge never deletes a directory that is not a pocketkube data dir."""
from __future__ import annotations

import os
import signal

from deploy import down as downmod
from deploy import procs
from deploy.state import COMPONENTS, Settings, load_state, save_state
from deploy.system import FakeSystem, Result


def no_sandboxes(_sock):
    return 0, []


def no_cgroups(_root):
    return False, []


def make_cluster(tmp_path) -> tuple[Settings, FakeSystem]:
    s = Settings(data_dir=str(tmp_path / "pk"), node_network="100.64.9.8/29", host_routes_added=["10.244.1.0/24"])
    save_state(s)
    lay = s.layout
    fs = FakeSystem(paths={"/proc/self/ns/net", f"/run/netns/{s.netns}"},
                    responses={"ip -j route show exact": Result(0, f'[{{"dev": "{s.host_if}"}}]')},
                    existing={f"ip link show dev {s.host_if}"})
    for i, name in enumerate(COMPONENTS):
        procs.write_pid(lay.pidfile(name), 2000 + i)
        fs.procs[2000 + i] = f"py -m deploy.cli {name} --kubeconfig {lay.data_dir}/node.kubeconfig"
    procs.write_pid(lay.runtime_pid, 3000)
    fs.procs[3000] = f"py -m kubelet.runtime.daemon --root-dir {lay.data_dir}/kubelet/runtime"
    return s, fs


def test_down_stops_everything_in_order_and_removes_the_network(tmp_path, capsys):
    s, fs = make_cluster(tmp_path)
    removed = []
    unmounted = []
    rc = downmod.down(fs, s.data_dir, sandbox_remover=lambda sock: (removed.append(sock) or (2, [])),
                      cgroup_killer=lambda root: (root == s.cgroup_root, []),
                      run_dir_unmounter=lambda path: (unmounted.append(path) or True, []))
    assert rc == 0
    termed = [pid for pid, sig in fs.signals if sig == signal.SIGTERM]
    assert termed[0] == 2000 + COMPONENTS.index("kubelet")      # kubelet first, so it recreates nothing
    assert termed[1] == 3000                                     # then the runtime (after its sandboxes)
    assert termed[-1] == 2000                                    # the API server last
    assert sorted(termed) == sorted(list(range(2000, 2000 + len(COMPONENTS))) + [3000])
    assert removed == [s.layout.runtime_socket]
    assert unmounted == [os.path.join(s.data_dir, "kubelet", "run")]    # the kubelet's tmpfs, after the runtime
    lines = fs.lines()
    assert f"ip route del 10.244.1.0/24 via 100.64.9.10 dev {s.host_if}" in lines
    assert f"ip link del {s.host_if}" in lines and f"ip netns del {s.netns}" in lines
    out = capsys.readouterr().out
    assert "removed 2 pod sandbox(es)" in out and f"removed cgroups {s.cgroup_root}" in out
    assert f"unmounted {s.data_dir}/kubelet/run" in out
    assert not os.path.exists(s.layout.pidfile("apiserver"))
    assert load_state(s.data_dir).host_routes_added == []           # recorded undo is consumed
    assert os.path.isdir(s.data_dir)                                 # data kept without --purge


def test_second_down_is_a_no_op(tmp_path, capsys):
    s = Settings(data_dir=str(tmp_path / "pk"))
    save_state(s)
    fs = FakeSystem(responses={"ip link show": Result(1)})
    assert downmod.down(fs, s.data_dir, sandbox_remover=no_sandboxes, cgroup_killer=no_cgroups) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert fs.signals == []
    assert not any(" del " in line for line in fs.lines())


def test_foreign_pids_are_never_signalled(tmp_path):
    s, fs = make_cluster(tmp_path)
    for pid in list(fs.procs):
        fs.procs[pid] = "/usr/sbin/some-daemon --unrelated"     # the PIDs were reused
    downmod.down(fs, s.data_dir, sandbox_remover=no_sandboxes, cgroup_killer=no_cgroups)
    assert fs.signals == []


def test_sigkill_after_grace(tmp_path, monkeypatch):
    class Stubborn(FakeSystem):
        def kill(self, pid, sig):
            self.signals.append((pid, sig))
            if sig == signal.SIGKILL:
                self.procs.pop(pid, None)

    fs = Stubborn(procs={77: "x /d/ y"})
    assert procs.stop_pid(fs, 77, "/d/", grace=0.1)
    assert fs.signals == [(77, signal.SIGTERM), (77, signal.SIGKILL)]


def test_purge_deletes_only_a_pocketkube_dir(tmp_path, capsys):
    s, fs = make_cluster(tmp_path)
    os.makedirs(os.path.join(s.data_dir, "data"))
    with open(os.path.join(s.data_dir, "data", "db.sqlite"), "w") as f:
        f.write("x")
    assert downmod.down(fs, s.data_dir, purge=True, sandbox_remover=no_sandboxes, cgroup_killer=no_cgroups) == 0
    assert not os.path.exists(s.data_dir)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "file").write_text("keep me")
    fs2 = FakeSystem(responses={"ip link show": Result(1)})
    assert downmod.down(fs2, str(other), purge=True, sandbox_remover=no_sandboxes, cgroup_killer=no_cgroups) == 1
    assert (other / "file").read_text() == "keep me"
    assert "does not look like a pocketkube data directory" in capsys.readouterr().out


def test_errors_keep_the_data_and_say_run_again(tmp_path, capsys):
    s, fs = make_cluster(tmp_path)
    fs.responses[f"ip netns del {s.netns}"] = Result(1, "", "Device or resource busy")
    assert downmod.down(fs, s.data_dir, purge=True, sandbox_remover=no_sandboxes, cgroup_killer=no_cgroups) == 1
    out = capsys.readouterr().out
    assert "Device or resource busy" in out and "run it again" in out and "not purging" in out
    assert os.path.isdir(s.data_dir)


def test_safe_rmtree_removes_files_dirs_and_symlinks_without_following(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    d = tmp_path / "d"
    (d / "a" / "b").mkdir(parents=True)
    (d / "a" / "b" / "f").write_text("x")
    os.symlink(outside, d / "link")
    assert procs.safe_rmtree(str(d)) == []
    assert not d.exists() and (outside / "keep").exists()
