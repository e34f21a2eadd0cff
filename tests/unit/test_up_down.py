"""`pocketkube down` through FakeSystem: stops only its own PIDs, undoes what state.json recorded,
is idempotent, and --purge never deletes a directory that is not a pocketkube data dir."""
from __future__ import annotations

import os
import signal

from deploy import down as downmod
from deploy import procs
from deploy.state import Settings, load_state, process_keys, save_state
from deploy.system import FakeSystem, Result


def no_sandboxes(_sock):
    return 0, []


def no_cgroups(_root):
    return False, []


NODES = [{"name": "node-1", "index": 1}, {"name": "node-2", "index": 2}]


def make_cluster(tmp_path) -> tuple[Settings, FakeSystem, dict[str, int]]:
    s = Settings(data_dir=str(tmp_path / "pk"), node_network="100.64.9.8/29", nodes=[dict(n) for n in NODES],
                 host_routes_added=["10.96.0.0/12 via 100.64.9.10", "10.244.1.0/24 via 100.64.9.11"])
    save_state(s)
    lay = s.layout
    fs = FakeSystem(paths={"/proc/self/ns/net", f"/run/netns/{s.fabric_ns}"} |
                    {f"/run/netns/{s.node_netns(n['name'])}" for n in NODES},
                    responses={"ip -j route show exact": Result(0, f'[{{"dev": "{s.host_if}"}}]'),
                               "ip netns list": Result(0, f"{s.node_netns('node-9')} (id: 4)\n")},
                    existing={f"ip link show dev {s.host_if}", f"ip -n {s.fabric_ns} link show dev node2"})
    fs.paths.add(f"/run/netns/{s.node_netns('node-9')}")      # a node state.json forgot
    pids = {}
    for i, key in enumerate(process_keys(s.node_names) + ["supervisor"]):
        procs.write_pid(lay.pidfile(key), 2000 + i)
        fs.procs[2000 + i] = f"py -m deploy.cli {key} --kubeconfig {lay.data_dir}/x.kubeconfig"
        pids[key] = 2000 + i
    for j, n in enumerate(s.node_names):
        procs.write_pid(lay.runtime_pid(n), 3000 + j)
        fs.procs[3000 + j] = f"py -m kubelet.runtime.daemon --root-dir {lay.kubelet_root(n)}/runtime"
        pids[f"{n}/runtime"] = 3000 + j
    return s, fs, pids


def test_down_stops_everything_in_order_and_removes_the_network(tmp_path, capsys):
    s, fs, pids = make_cluster(tmp_path)
    removed = []
    unmounted = []
    rc = downmod.down(fs, s.data_dir, sandbox_remover=lambda sock: (removed.append(sock) or (2, [])),
                      cgroup_killer=lambda root: (root.startswith(f"pocketkube/pk-{s.id}-node-"), []),
                      run_dir_unmounter=lambda path: (unmounted.append(path) or True, []))
    assert rc == 0
    termed = [pid for pid, sig in fs.signals if sig == signal.SIGTERM]
    order = {pid: i for i, pid in enumerate(termed)}
    assert termed[0] == pids["supervisor"]                       # first, so it restarts nothing
    assert {termed[1], termed[2]} == {pids["node-1/kubelet"], pids["node-2/kubelet"]}   # so they recreate nothing
    assert termed[3:5] == [pids["node-1/runtime"], pids["node-2/runtime"]]   # after their sandboxes
    assert termed[-1] == pids["apiserver"]                       # the API server last
    assert order[pids["dns"]] < order[pids["scheduler"]]
    assert sorted(termed) == sorted(pids.values())
    assert removed == [s.layout.runtime_socket("node-1"), s.layout.runtime_socket("node-2")]
    assert unmounted == [s.layout.kubelet_run_dir("node-1"), s.layout.kubelet_run_dir("node-2")]
    lines = fs.lines()
    assert f"ip route del 10.244.1.0/24 via 100.64.9.11 dev {s.host_if}" in lines
    assert f"ip route del 10.96.0.0/12 via 100.64.9.10 dev {s.host_if}" in lines
    for ns in (s.node_netns("node-1"), s.node_netns("node-2"), s.node_netns("node-9"), s.fabric_ns):
        assert f"ip netns del {ns}" in lines, ns
    assert f"ip link del {s.host_if}" in lines
    assert lines.index(f"ip netns del {s.node_netns('node-2')}") < lines.index(f"ip netns del {s.fabric_ns}")
    out = capsys.readouterr().out
    assert "removed 2 pod sandbox(es)" in out and f"removed cgroups {s.cgroup_root_of('node-2')}" in out
    assert f"unmounted {s.layout.kubelet_run_dir('node-1')}" in out
    assert not os.path.exists(s.layout.pidfile("apiserver")) and not os.path.exists(s.layout.pidfile("node-1/netd"))
    assert load_state(s.data_dir).host_routes_added == []           # recorded undo is consumed
    assert os.path.isdir(s.data_dir)                                 # data kept without --purge


def test_down_of_a_version_1_cluster(tmp_path, capsys):
    """A one-node cluster made before the fabric: DIR/kubelet, run/kubelet.pid, namespace pk-<id>-node."""
    d = str(tmp_path / "pk")
    os.makedirs(os.path.join(d, "kubelet", "runtime"))
    with open(os.path.join(d, "state.json"), "w") as f:
        f.write('{"data_dir": "%s", "node_network": "100.64.9.8/29", "pod_cidr": "10.244.1.0/24", '
                '"host_routes_added": ["10.244.1.0/24"], "version": 1}' % d)
    s = load_state(d)
    assert s.nodes == [{"name": "node-1", "index": 1}] and s.pod_cidr == "10.244.1.0/24"
    fs = FakeSystem(paths={f"/run/netns/{s.legacy_netns}"},
                    responses={"ip -j route show exact": Result(0, f'[{{"dev": "{s.host_if}"}}]'),
                               "ip netns list": Result(0, f"{s.legacy_netns}\n")},
                    existing={f"ip link show dev {s.host_if}"})
    procs.write_pid(s.layout.pidfile("kubelet"), 4000)
    fs.procs[4000] = f"py -m deploy.cli kubelet --root-dir {d}/kubelet"
    procs.write_pid(os.path.join(d, "kubelet", "runtime", "runtime.pid"), 4001)
    fs.procs[4001] = f"py -m kubelet.runtime.daemon --root-dir {d}/kubelet/runtime"
    assert downmod.down(fs, d, sandbox_remover=no_sandboxes, cgroup_killer=no_cgroups) == 0
    assert [p for p, sig in fs.signals if sig == signal.SIGTERM] == [4000, 4001]
    lines = fs.lines()
    assert f"ip netns del {s.legacy_netns}" in lines and f"ip link del {s.host_if}" in lines
    assert f"ip route del 10.244.1.0/24 via 100.64.9.10 dev {s.host_if}" in lines


def test_second_down_is_a_no_op(tmp_path, capsys):
    s = Settings(data_dir=str(tmp_path / "pk"))
    save_state(s)
    fs = FakeSystem(responses={"ip link show": Result(1)})
    assert downmod.down(fs, s.data_dir, sandbox_remover=no_sandboxes, cgroup_killer=no_cgroups) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert fs.signals == []
    assert not any(" del " in line for line in fs.lines())


def test_foreign_pids_are_never_signalled(tmp_path):
    s, fs, _ = make_cluster(tmp_path)
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
    s, fs, _ = make_cluster(tmp_path)
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
    s, fs, _ = make_cluster(tmp_path)
    fs.responses[f"ip netns del {s.fabric_ns}"] = Result(1, "", "Device or resource busy")
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
