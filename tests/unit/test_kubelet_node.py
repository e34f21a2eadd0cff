"""The kubelet's Node registration, heartbeats and pod-CIDR wait against a fake API client (no root, no server).

The fake applies patches with the API server's own code (``api.patch``), so a
strategic-merge heartbeat is checked for what it really does to a condition
another component owns.
"""
from __future__ import annotations

import copy
import json
import threading

import pytest

from api import resources as R
from api.patch import merge_patch, strategic_merge_patch
from client.errors import AlreadyExists, Conflict, ConnectionFailed, NotFound
from kubelet import node as node_mod
from kubelet.cni.invoke import default_conflist
from kubelet.cni import plugin
from kubelet.main import build_parser
from kubelet.node import (NETWORK_UNAVAILABLE_TAINT, NodeAgent, wait_for_pod_cidr)
from nodeutil.netlink import FakeNetlink


class FakeClient:
    """Nodes and Leases in a dict; records every call; patches applied as the API server does."""

    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple] = []
        self.rv = 0
        self.before_patch = None  # hook(name, body): runs before a patch is applied (a concurrent writer)

    def _store(self, plural, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[(plural, obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    def create(self, rt, obj, namespace=None):
        self.calls.append(("create", rt.plural, copy.deepcopy(obj)))
        if (rt.plural, obj["metadata"]["name"]) in self.objects:
            raise AlreadyExists(f"{rt.plural} {obj['metadata']['name']} already exists")
        return self._store(rt.plural, copy.deepcopy(obj))

    def get(self, rt, name, namespace=None):
        self.calls.append(("get", rt.plural, name))
        try:
            return copy.deepcopy(self.objects[(rt.plural, name)])
        except KeyError:
            raise NotFound(f"{rt.plural} {name} not found") from None

    def patch(self, rt, name, patch, namespace=None, *, patch_type="merge", subresource=None):
        self.calls.append(("patch", rt.plural, name, copy.deepcopy(patch), patch_type, subresource))
        if self.before_patch is not None:
            self.before_patch(name, patch)
        try:
            old = self.objects[(rt.plural, name)]
        except KeyError:
            raise NotFound(f"{rt.plural} {name} not found") from None
        want_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified")
        if patch_type == "strategic":
            new = strategic_merge_patch(copy.deepcopy(old), patch, "Node" if rt.plural == "nodes" else "Lease")
        else:
            new = merge_patch(copy.deepcopy(old), patch)
        if subresource == "status":
            new = {**old, "status": new.get("status")}
        return self._store(rt.plural, new)

    def patches(self, subresource="status"):
        return [c for c in self.calls if c[0] == "patch" and c[1] == "nodes" and c[5] == subresource]


def agent(client, **kw):
    kw.setdefault("pod_cidr", None)
    return NodeAgent(client, node_name="n1", node_ip="100.64.0.2", port=10250, **kw)


def conditions(node):
    return {c["type"]: c for c in node["status"]["conditions"]}


def netd_ready(client, name="n1"):
    """What the network agent writes: NetworkUnavailable=False through a strategic patch of nodes/status."""
    client.patch(R.NODES, name, {"status": {"conditions": [
        {"type": "NetworkUnavailable", "status": "False", "reason": "NetdIsUp", "message": "netd is up",
         "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
        patch_type="strategic", subresource="status")


# ------------------------------------------------------------------ defaults
def test_defaults():
    args = build_parser().parse_args([])
    assert args.register_network_unavailable is False
    assert args.cni_mtu is None and args.pod_cidr is None
    assert node_mod.HEARTBEAT == 10.0
    assert node_mod.POD_CIDR_POLL == 0.5 and node_mod.POD_CIDR_LOG_EVERY == 5.0
    assert NodeAgent(FakeClient(), node_name="n", node_ip="1.2.3.4", pod_cidr=None,
                     port=1).register_network_unavailable is False


@pytest.mark.parametrize("mtu", ["67", "65536", "0"])
def test_cni_mtu_is_validated(mtu, capsys):
    from kubelet.main import main
    with pytest.raises(SystemExit) as e:
        main(["--cni-mtu", mtu])
    assert e.value.code == 2
    assert "--cni-mtu must be between 68 and 65535" in capsys.readouterr().err


# --------------------------------------------------------------- registration
def test_create_without_network_flag():
    c = FakeClient()
    node = agent(c, pod_cidr="10.244.3.0/24").register()
    (create,) = [x for x in c.calls if x[0] == "create" and x[1] == "nodes"]
    body = create[2]
    assert body["spec"] == {"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"]}
    assert set(conditions(body)) == {"MemoryPressure", "DiskPressure", "PIDPressure", "Ready"}
    assert conditions(node)["Ready"]["status"] == "True"
    assert ("leases", "n1") in c.objects
    assert "taints" not in node["spec"]


def test_create_with_network_unavailable_taint_and_condition():
    c = FakeClient()
    node = agent(c, register_network_unavailable=True).register()
    assert node["spec"]["taints"] == [NETWORK_UNAVAILABLE_TAINT]
    assert NETWORK_UNAVAILABLE_TAINT == {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}
    nu = conditions(node)["NetworkUnavailable"]
    assert (nu["status"], nu["reason"]) == ("True", "NoNetworkAgent") and "netd" in nu["message"]
    assert "podCIDR" not in node["spec"]  # the controller-manager allocates it
    # The status went in with the create: no window in which the Node exists without the condition.
    assert c.patches() == []


def test_heartbeats_are_strategic_and_never_touch_network_unavailable():
    c = FakeClient()
    a = agent(c, register_network_unavailable=True)
    a.register()
    netd_ready(c)
    a.heartbeat()
    a.heartbeat()
    beats = [p for p in c.patches() if p[3]["status"].get("capacity")]
    assert len(beats) == 2
    for _, _, _, body, patch_type, sub in beats:
        assert (patch_type, sub) == ("strategic", "status")
        assert "NetworkUnavailable" not in {x["type"] for x in body["status"]["conditions"]}
    node = c.objects[("nodes", "n1")]
    cond = conditions(node)
    assert cond["NetworkUnavailable"]["status"] == "False" and cond["NetworkUnavailable"]["reason"] == "NetdIsUp"
    assert cond["Ready"]["status"] == "True"


def test_existing_node_without_the_condition_gets_it_with_a_precondition():
    c = FakeClient()
    c.objects[("nodes", "n1")] = {"apiVersion": "v1", "kind": "Node",
                                  "metadata": {"name": "n1", "resourceVersion": "0"},
                                  "spec": {"podCIDR": "10.244.7.0/24"}, "status": {}}
    node = agent(c, register_network_unavailable=True).register()
    assert conditions(node)["NetworkUnavailable"]["status"] == "True"
    (status_patch,) = c.patches()
    assert status_patch[3]["metadata"]["resourceVersion"]
    assert "taints" not in node["spec"]  # the taint controller adds it for an existing Node
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"


def test_existing_node_keeps_the_agents_condition():
    c = FakeClient()
    agent(c, register_network_unavailable=True).register()
    netd_ready(c)
    # A kubelet restart: registration must not put NetworkUnavailable back to True.
    again = agent(c, register_network_unavailable=True)
    node = again.register()
    assert conditions(node)["NetworkUnavailable"]["status"] == "False"
    last = c.patches()[-1][3]
    assert "NetworkUnavailable" not in {x["type"] for x in last["status"]["conditions"]}
    assert "metadata" not in last


def test_a_concurrent_agent_write_wins_over_registration():
    c = FakeClient()
    c.objects[("nodes", "n1")] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                                  "spec": {}, "status": {}}
    c.rv = 1
    c.objects[("nodes", "n1")]["metadata"]["resourceVersion"] = "1"
    fired = []

    def netd_first(name, body):
        # The network agent writes between the kubelet's read and its status patch (once).
        if not fired and (body.get("status") or {}).get("conditions") and body.get("metadata"):
            fired.append(1)
            c.before_patch = None
            netd_ready(c)
            c.before_patch = netd_first
    c.before_patch = netd_first
    node = agent(c, register_network_unavailable=True).register()
    assert fired and conditions(node)["NetworkUnavailable"]["status"] == "False"


def test_last_transition_time_is_kept_for_an_unchanged_status():
    c = FakeClient()
    old = "2020-01-01T00:00:00Z"
    c.objects[("nodes", "n1")] = {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "resourceVersion": "1"}, "spec": {},
        "status": {"conditions": [
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "lastTransitionTime": old},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "lastTransitionTime": old}]}}
    a = agent(c)
    node = a.register()
    cond = conditions(node)
    assert cond["MemoryPressure"]["lastTransitionTime"] == old    # still False: no transition
    assert cond["Ready"]["lastTransitionTime"] != old             # Unknown -> True: a transition, now
    ready_since = cond["Ready"]["lastTransitionTime"]
    a.heartbeat()
    cond = conditions(c.objects[("nodes", "n1")])
    assert cond["Ready"]["lastTransitionTime"] == ready_since and cond["MemoryPressure"]["lastTransitionTime"] == old


# ---------------------------------------------------------------- pod CIDR wait
class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class TickingStop(threading.Event):
    """A stop event whose wait() advances the fake clock instead of sleeping."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        self.clock.t += timeout or 0
        return self.is_set()


def test_wait_for_pod_cidr_polls_until_the_controller_manager_sets_it(caplog):
    c = FakeClient()
    c.objects[("nodes", "n1")] = {"metadata": {"name": "n1", "resourceVersion": "1"}, "spec": {}}
    clock = Clock()
    stop = TickingStop(clock)
    reads = []
    real_get = c.get

    def get(rt, name, namespace=None):
        reads.append(clock.t)
        if len(reads) == 3:
            raise ConnectionFailed("connection refused")
        if len(reads) == 25:  # 12 s in: the IPAM controller got to it
            c.objects[("nodes", "n1")]["spec"]["podCIDR"] = "10.244.9.0/24"
        return real_get(rt, name, namespace)
    c.get = get
    caplog.set_level("INFO", logger="kubelet.node")
    assert wait_for_pod_cidr(c, "n1", stop, clock=clock) == "10.244.9.0/24"
    assert set(stop.waits) == {0.5} and len(reads) == 25
    waiting = [r.getMessage() for r in caplog.records if "waiting for node n1's spec.podCIDR" in r.getMessage()]
    assert len(waiting) == 3  # at 0 s, 5 s, 10 s
    assert "--allocate-node-cidrs" in waiting[0]
    assert any("has podCIDR 10.244.9.0/24" in r.getMessage() for r in caplog.records)


def test_wait_for_pod_cidr_ends_on_stop():
    c = FakeClient()
    c.objects[("nodes", "n1")] = {"metadata": {"name": "n1", "resourceVersion": "1"}, "spec": {}}
    clock = Clock()
    stop = TickingStop(clock)
    real_wait = stop.wait

    def wait(timeout=None):
        if len(stop.waits) == 4:
            stop.set()
        return real_wait(timeout)
    stop.wait = wait
    assert wait_for_pod_cidr(c, "n1", stop, clock=clock) is None


def test_wait_for_pod_cidr_returns_at_once_when_set():
    c = FakeClient()
    c.objects[("nodes", "n1")] = {"metadata": {"name": "n1", "resourceVersion": "1"},
                                  "spec": {"podCIDR": "10.244.2.0/24"}}
    stop = TickingStop(Clock())
    assert wait_for_pod_cidr(c, "n1", stop) == "10.244.2.0/24" and stop.waits == []


# ----------------------------------------------------------------------- MTU
class MtuNetlink(FakeNetlink):
    """The fake, also recording the MTUs the plugin asks for."""

    def __init__(self, *a):
        super().__init__(*a)
        self.mtus: list[tuple[str, int | None]] = []

    def ensure_bridge(self, name, address, mtu=None):
        self.mtus.append(("bridge", mtu))
        return super().ensure_bridge(name, address, mtu)

    def add_veth(self, host_name, netns, ifname, mtu=None):
        self.mtus.append(("veth", mtu))
        return super().add_veth(host_name, netns, ifname, mtu)


def test_cni_mtu_reaches_the_bridge_and_the_pod_veth(tmp_path):
    conflist = default_conflist("10.244.4.0/24", data_dir=str(tmp_path), mtu=1450)
    (net,) = conflist["plugins"]
    assert net["mtu"] == 1450
    assert "mtu" not in default_conflist("10.244.4.0/24")["plugins"][0]
    nl = MtuNetlink({"/var/run/netns/p"})
    conf = dict(net, name=conflist["name"], cniVersion=conflist["cniVersion"])
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/p", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/opt/cni/bin"}
    code, out = plugin.main(env, json.dumps(conf).encode(), netlink=nl)
    assert code == 0, out
    assert ("bridge", 1450) in nl.mtus and ("veth", 1450) in nl.mtus


def test_a_restart_with_the_same_mtu_finds_its_own_conflist(tmp_path):
    from kubelet.cni.invoke import write_default_conflist
    from kubelet.main import _default_conflist_mtu
    assert _default_conflist_mtu(str(tmp_path)) is None
    write_default_conflist(str(tmp_path), "10.244.4.0/24", mtu=1450)
    assert _default_conflist_mtu(str(tmp_path)) == 1450
