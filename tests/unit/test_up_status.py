"""`pocketkube status` rendering: every node with Ready/NotReady, podCIDR and network, every process per node
with its restarts, and the API server's real scheme."""
from __future__ import annotations

from deploy import status
from deploy.state import Settings, node_key, process_keys


def node(name, ready=True, cidr="10.244.0.0/24", net="False", unschedulable=False):
    conds = [{"type": "Ready", "status": "True" if ready else "False",
              "reason": "KubeletReady" if ready else "KubeletNotReady"}]
    if net is not None:
        conds.append({"type": "NetworkUnavailable", "status": net, "reason": "NetdIsUp" if net == "False"
                      else "NoNetworkAgent"})
    spec = {"podCIDR": cidr} if cidr else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name}, "spec": spec, "status": {"conditions": conds}}


def info(tmp_path, nodes, running=True, tls=True):
    s = Settings(data_dir=str(tmp_path / "pk"), nodes=[{"name": "node-1", "index": 1}, {"name": "node-2", "index": 2}])
    keys = process_keys(s.node_names) + [node_key(n, "runtime") for n in s.node_names] + ["supervisor"]
    return {"exists": True, "data_dir": s.data_dir, "settings": s, "tls": tls, "fabric": True, "link": True,
            "netns": {"node-1": True, "node-2": True},
            "processes": {k: {"pid": 100 + i, "running": running} for i, k in enumerate(keys)},
            "restarts": {"node-2/kubelet": 3}, "nodes": nodes, "api_error": None,
            "pods": {"total": 3, "phases": {"Running": 3}, "per_node": {"node-1": 1, "node-2": 2}}}


def test_every_node_and_process_is_listed(tmp_path):
    text, rc = status.render(info(tmp_path, {"node-1": node("node-1"), "node-2": node("node-2", cidr="10.244.1.0/24")}))
    assert rc == 0
    assert "https://127.0.0.1:6443 and https://100.64.0.1:6443" in text and "http://" not in text
    assert "node node-1 (100.64.0.2): Ready, podCIDR 10.244.0.0/24, network up; 1 pod(s)" in text
    assert "node node-2 (100.64.0.3): Ready, podCIDR 10.244.1.0/24, network up; 2 pod(s)" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ") and
             len(line.split()) >= 4 and line.split()[0].count("/") <= 1 and line.split()[-1].isdigit()}
    for key in ("apiserver", "node-1/kubelet", "node-2/netd", "node-2/runtime", "supervisor", "dns"):
        assert lines[key][2] == "running", key
    assert lines["node-2/kubelet"][-1] == "3" and lines["apiserver"][-1] == "0"
    assert "pods: 3 (3 Running)" in text


def test_not_ready_and_missing_nodes_and_dead_processes_fail(tmp_path):
    text, rc = status.render(info(tmp_path, {"node-1": node("node-1", net="True", cidr=None)}, running=False, tls=False))
    assert rc == 1
    assert "http://127.0.0.1:6443" in text
    assert "node node-1 (100.64.0.2): Ready, podCIDR none yet, network unavailable (NoNetworkAgent)" in text
    assert "node node-2 (100.64.0.3): NotReady (not registered)" in text
    assert "not running" in text
    ok, line = status.node_summary(node("x", ready=False, unschedulable=True))
    assert not ok and line.startswith("NotReady (KubeletNotReady)") and line.endswith("cordoned")


def test_no_cluster(tmp_path):
    text, rc = status.render({"exists": False, "data_dir": str(tmp_path)})
    assert rc == 3 and f"--data-dir {tmp_path}" in text
