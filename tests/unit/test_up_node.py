"""`pocketkube node remove` through FakeSystem and a fake API: drain order, exactly its own processes,
network and route, and state.json forgets it only when everything is gone; `node add`'s refusals."""
from __future__ import annotations

import os
import signal

from deploy import node as nodecmd
from deploy import procs, supervise
from deploy.state import Settings, load_state, process_keys, save_state
from deploy.system import FakeSystem, Result


class FakeApi:
    def __init__(self, fail_drain=False):
        self.calls = []
        self.fail_drain = fail_drain

    def cordon(self, name):
        self.calls.append(("cordon", name))
        if self.fail_drain:
            raise RuntimeError("connection refused")

    def delete_pods(self, name):
        self.calls.append(("delete_pods", name))
        return 2

    def delete_node(self, name):
        self.calls.append(("delete_node", name))


def cluster(tmp_path):
    s = Settings(data_dir=str(tmp_path / "pk"), node_network="100.64.9.8/29",
                 nodes=[{"name": "node-1", "index": 1}, {"name": "node-2", "index": 2}, {"name": "node-3", "index": 3}],
                 host_routes_added=["10.96.0.0/12 via 100.64.9.10", "10.244.1.0/24 via 100.64.9.11",
                                    "10.244.2.0/24 via 100.64.9.12"])
    save_state(s)
    lay = s.layout
    fs = FakeSystem(paths={f"/run/netns/{s.node_netns('node-2')}", f"/run/netns/{s.fabric_ns}"},
                    responses={"ip -j route show exact": Result(0, f'[{{"dev": "{s.host_if}"}}]')},
                    existing={f"ip -n {s.fabric_ns} link show dev node2"})
    pids = {}
    for i, key in enumerate(process_keys(s.node_names) + ["supervisor"]):
        procs.write_pid(lay.pidfile(key), 2000 + i)
        fs.procs[2000 + i] = f"py {key} {lay.marker}"
        pids[key] = 2000 + i
    procs.write_pid(lay.runtime_pid("node-2"), 3002)
    fs.procs[3002] = f"runtime {lay.marker}"
    supervise.write_commands(lay, {k: ["py", k] for k in process_keys(s.node_names)})
    return s, fs, pids


def test_remove_drains_then_stops_then_deletes_and_cleans_up(tmp_path, monkeypatch):
    s, fs, pids = cluster(tmp_path)
    started = []
    monkeypatch.setattr(nodecmd, "_start_supervisor", lambda lay: started.append(lay))
    api = FakeApi()
    removed, killed, unmounted = [], [], []
    rc = nodecmd.remove(fs, s.data_dir, "node-2", api=api,
                        sandbox_remover=lambda sock: (removed.append(sock) or (1, [])),
                        cgroup_killer=lambda root: (killed.append(root) or True, []),
                        run_dir_unmounter=lambda p: (unmounted.append(p) or True, []))
    assert rc == 0
    assert api.calls == [("cordon", "node-2"), ("delete_pods", "node-2"), ("delete_node", "node-2")]
    termed = [p for p, sig in fs.signals if sig == signal.SIGTERM]
    assert termed[0] == pids["supervisor"]
    assert sorted(termed[1:4]) == sorted(pids[f"node-2/{c}"] for c in ("kubelet", "proxy", "netd"))
    assert termed[4] == 3002 and len(termed) == 5              # nothing of the other nodes
    assert removed == [s.layout.runtime_socket("node-2")] and killed == [s.cgroup_root_of("node-2")]
    assert unmounted == [s.layout.kubelet_run_dir("node-2")]
    lines = fs.lines()
    assert f"ip route del 10.244.1.0/24 via 100.64.9.11 dev {s.host_if}" in lines
    assert not any("10.244.2.0/24" in line and " del " in line for line in lines)
    assert f"ip netns del {s.node_netns('node-2')}" in lines
    after = load_state(s.data_dir)
    assert after.node_names == ["node-1", "node-3"]
    assert after.host_routes_added == ["10.96.0.0/12 via 100.64.9.10", "10.244.2.0/24 via 100.64.9.12"]
    assert not any(k.startswith("node-2/") for k in supervise.read_commands(s.layout))
    assert started and not os.path.exists(s.layout.pidfile("node-2/kubelet"))
    assert after.next_index() == 2                             # its index (and address) is free again


def test_remove_with_errors_keeps_the_node_recorded(tmp_path, monkeypatch):
    s, fs, _ = cluster(tmp_path)
    monkeypatch.setattr(nodecmd, "_start_supervisor", lambda lay: None)
    rc = nodecmd.remove(fs, s.data_dir, "node-2", api=FakeApi(fail_drain=True),
                        sandbox_remover=lambda sock: (0, []), cgroup_killer=lambda root: (False, []),
                        run_dir_unmounter=lambda p: (False, []))
    assert rc == 1
    assert "node-2" in load_state(s.data_dir).node_names


def test_remove_refuses_the_first_and_unknown_nodes(tmp_path, capsys):
    s, fs, _ = cluster(tmp_path)
    assert nodecmd.remove(fs, s.data_dir, "node-1", api=FakeApi(), sandbox_remover=lambda x: (0, []),
                          run_dir_unmounter=lambda p: (False, [])) == 1
    assert "runs the cluster DNS" in capsys.readouterr().out
    assert nodecmd.remove(fs, s.data_dir, "nope", api=FakeApi(), sandbox_remover=lambda x: (0, []),
                          run_dir_unmounter=lambda p: (False, [])) == 1
    assert fs.signals == []


def test_add_refuses_a_full_fabric_a_taken_name_and_a_stopped_cluster(tmp_path, capsys):
    s, fs, _ = cluster(tmp_path)
    assert nodecmd.add(fs, s.data_dir, "node-3") == 1
    assert "node node-3 already exists" in capsys.readouterr().out
    assert nodecmd.add(fs, s.data_dir, "Bad_Name") == 1
    s.nodes += [{"name": "node-4", "index": 4}, {"name": "node-5", "index": 5}]
    save_state(s)
    assert nodecmd.add(fs, s.data_dir, None) == 1            # a /29 holds the host end and 5 nodes
    assert "is full" in capsys.readouterr().out
    del fs.procs[2000]                                       # the API server is down
    assert nodecmd.add(fs, s.data_dir, None) == 1
    assert "API server is not running" in capsys.readouterr().out
    assert fs.signals == [] and not any("add" in line for line in fs.lines())
    assert len(load_state(s.data_dir).nodes) == 5
