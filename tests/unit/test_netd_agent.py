"""netd's Agent against FakeNetlink: both backends converge, follow changes, adopt on restart, repair drift."""
from __future__ import annotations

import errno
import threading

import pytest

from api.patch import strategic_merge_patch
from client.workqueue import WorkQueue
from netd import backends as B
from netd.agent import KEY, Agent, ApplyError, Config, NotReady, node_ready, relevant, wait_for_node
from netd.main import build_parser, config_from_args
from nodeutil.netlink import FakeNetlink, FdbEntry, NeighEntry, RouteEntry, VxlanSpec
from tests.unit.test_netd_backends import node

WRITES = {"ensure_vxlan", "replace_route", "delete_route", "replace_neighbour", "delete_neighbour", "add_fdb",
          "delete_fdb", "delete_link"}


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Cluster:
    """The informer cache and a client whose patches land in it (as the watch would bring them back)."""

    def __init__(self, *nodes):
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.patches = []

    def list(self):
        return list(self.nodes.values())

    def get(self, name):
        return self.nodes.get(name)

    def patch(self, rt, name, body, namespace=None, *, patch_type, subresource=None):
        assert (rt.plural, patch_type, subresource) == ("nodes", "strategic", "status")
        self.patches.append((name, body))
        self.nodes[name] = strategic_merge_patch(self.nodes[name], body, "Node")
        return self.nodes[name]


def own(name="n1", cidr="10.244.1.0/24", ip="100.64.9.2"):
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def fake():
    nl = FakeNetlink()
    nl.add_link("eth0", mtu=1500, addresses=["100.64.9.2/29"])
    return nl


def agent(nl, cluster, backend="vxlan", clock=None, **cfg):
    return Agent(nl, cluster, Config("n1", backend=backend, resync_period=10.0, **cfg), nodes=cluster.list,
                 get_node=cluster.get, clock=clock or Clock(), now=lambda: "2026-01-01T00:00:00Z")


def writes(nl):
    return [c for c in nl.calls if c[0] in WRITES]


def test_vxlan_converges_device_entries_and_publishes():
    nl, cl = fake(), Cluster(own(), node("n2", "10.244.2.0/24", ip="100.64.9.3", mac="0e:00:00:00:00:02"),
                             node("n3", "10.244.3.0/24", ip="100.64.9.4", mac="0e:00:00:00:00:03"))
    a = agent(nl, cl)
    out = a.sync()
    mac = B.vtep_mac("n1", 1)
    dev = nl.vxlan("flannel.1")
    assert (dev.vni, dev.port, dev.local, dev.dev, dev.learning, dev.mtu, dev.mac, dev.addresses, dev.up) == \
        (1, 8472, "100.64.9.2", "eth0", False, 1450, mac, ["10.244.1.0/32"], True)
    assert sorted(nl.owned_routes(B.RT_PROTO), key=lambda r: r.dst) == [
        RouteEntry("10.244.2.0/24", "10.244.2.0", "flannel.1", onlink=True),
        RouteEntry("10.244.3.0/24", "10.244.3.0", "flannel.1", onlink=True)]
    assert sorted(nl.neighbours("flannel.1"), key=lambda n: n.ip) == [
        NeighEntry("flannel.1", "10.244.2.0", "0e:00:00:00:00:02"),
        NeighEntry("flannel.1", "10.244.3.0", "0e:00:00:00:00:03")]
    assert nl.fdb_entries("flannel.1") == [FdbEntry("flannel.1", "0e:00:00:00:00:02", "100.64.9.3"),
                                           FdbEntry("flannel.1", "0e:00:00:00:00:03", "100.64.9.4")]
    assert out["full"] and out["peers"] == 2 and out["published"]
    [(name, body)] = cl.patches
    assert name == "n1" and body == B.status_patch(B.own_annotations("vxlan", "100.64.9.2", vni=1, mac=mac),
                                                   "2026-01-01T00:00:00Z")
    # converged: a second sync writes nothing and patches nothing
    nl.calls.clear()
    assert a.sync()["published"] is False
    assert writes(nl) == [] and len(cl.patches) == 1


def test_vxlan_follows_a_changed_and_a_deleted_node():
    nl, cl = fake(), Cluster(own(), node("n2", "10.244.2.0/24", ip="100.64.9.3", mac="0e:00:00:00:00:02"),
                             node("n3", "10.244.3.0/24", ip="100.64.9.4", mac="0e:00:00:00:00:03"))
    a = agent(nl, cl)
    a.sync()
    n3_route = nl.node_routes["10.244.3.0/24"][0]
    nl.calls.clear()
    cl.nodes["n2"] = node("n2", "10.244.2.0/24", ip="100.64.9.5", mac="0e:00:00:00:00:02")   # n2 moved
    a.sync()
    assert writes(nl) == [("delete_fdb", FdbEntry("flannel.1", "0e:00:00:00:00:02", "100.64.9.3")),
                          ("add_fdb", FdbEntry("flannel.1", "0e:00:00:00:00:02", "100.64.9.5"))]
    assert nl.node_routes["10.244.3.0/24"][0] is n3_route
    nl.calls.clear()
    del cl.nodes["n3"]
    a.sync()
    assert "10.244.3.0/24" not in nl.node_routes
    assert ("flannel.1", "10.244.3.0") not in nl.neighs
    assert FdbEntry("flannel.1", "0e:00:00:00:00:03", "100.64.9.4") not in nl.fdb
    assert [c[0] for c in writes(nl)] == ["delete_route", "delete_neighbour", "delete_fdb"]
    # a node that loses its podCIDR, or its annotations (its agent reset), is removed the same way
    cl.nodes["n4"] = node("n4", "10.244.4.0/24", ip="100.64.9.6", mac="0e:00:00:00:00:04")
    a.sync()
    assert "10.244.4.0/24" in nl.node_routes
    del cl.nodes["n4"]["spec"]["podCIDR"]
    a.sync()
    assert "10.244.4.0/24" not in nl.node_routes and ("flannel.1", "10.244.4.0") not in nl.neighs
    cl.nodes["n2"]["metadata"]["annotations"] = {}
    a.sync()
    assert nl.owned_routes(B.RT_PROTO) == [] and nl.neighbours("flannel.1") == [] and nl.fdb_entries("flannel.1") == []


def test_restart_adopts_everything_without_a_write():
    nl, cl = fake(), Cluster(own(), node("n2", "10.244.2.0/24", ip="100.64.9.3"),
                             node("n3", "10.244.3.0/24", ip="100.64.9.4", mac="0e:00:00:00:00:03"))
    agent(nl, cl).sync()
    before = dict(nl.node_routes)
    dev = nl.vxlan("flannel.1")
    nl.calls.clear()
    out = agent(nl, cl).sync()                 # a new process: no record, reads the kernel back
    assert out["full"] and not out["published"]
    assert writes(nl) == []
    assert all(nl.node_routes[d] is before[d] for d in before) and nl.node_routes.keys() == before.keys()
    assert nl.vxlan("flannel.1").index == dev.index


def test_restart_keeps_an_existing_devices_mac_and_fixes_its_mtu_in_place():
    nl, cl = fake(), Cluster(own())
    nl.ensure_vxlan(VxlanSpec("flannel.1", 1, 8472, "100.64.9.2", "eth0", 1400, "0e:aa:aa:aa:aa:aa", "10.244.1.0/32"))
    index = nl.vxlan("flannel.1").index
    a = agent(nl, cl)
    a.sync()
    dev = nl.vxlan("flannel.1")
    assert (dev.index, dev.mac, dev.mtu) == (index, "0e:aa:aa:aa:aa:aa", 1450)
    assert '"VtepMAC":"0e:aa:aa:aa:aa:aa"' in cl.nodes["n1"]["metadata"]["annotations"][B.BACKEND_DATA]
    # an incompatible device (another VNI's port, say) is recreated
    nl.ensure_vxlan(VxlanSpec("flannel.1", 1, 4789, "100.64.9.2", "eth0", 1450, "0e:aa:aa:aa:aa:aa", "10.244.1.0/32"))
    a.force_full()
    a.sync()
    assert nl.vxlan("flannel.1").port == 8472


def test_drift_is_repaired_on_the_periodic_resync():
    clock = Clock()
    nl, cl = fake(), Cluster(own(), node("n2", "10.244.2.0/24", ip="100.64.9.3"))
    a = agent(nl, cl, clock=clock)
    a.sync()
    del nl.node_routes["10.244.2.0/24"]        # someone ran `ip route del` by hand
    del nl.neighs[("flannel.1", "10.244.2.0")]
    clock.t += 1
    assert a.sync()["full"] is False            # between resyncs the record is trusted
    assert "10.244.2.0/24" not in nl.node_routes
    assert a.next_full_in() == pytest.approx(9.0)
    clock.t += 9
    out = a.sync()
    assert out["full"] and out["routes_set"] == 1 and out["neigh_set"] == 1
    assert nl.node_routes["10.244.2.0/24"][0] == RouteEntry("10.244.2.0/24", "10.244.2.0", "flannel.1", onlink=True)


def test_a_failed_write_does_not_hold_back_the_others_and_the_next_sync_reads_the_kernel():
    nl, cl = fake(), Cluster(own(), node("n2", "10.244.2.0/24", ip="100.64.9.3"),
                             node("n3", "10.244.3.0/24", ip="100.64.9.4", mac="0e:00:00:00:00:03"))
    a = agent(nl, cl, backend="host-gw")
    cl.nodes["n2"] = node("n2", "10.244.2.0/24", backend="host-gw", ip="100.64.9.3")
    cl.nodes["n3"] = node("n3", "10.244.3.0/24", backend="host-gw", ip="100.64.9.4")
    nl.fail["replace_route"] = OSError(errno.ENETUNREACH, "Network is unreachable")   # the first route only
    with pytest.raises(ApplyError, match="1 of 2 writes failed"):
        a.sync()
    assert list(nl.node_routes) == ["10.244.3.0/24"]
    out = a.sync()
    assert out["full"] and out["routes_set"] == 1 and "10.244.2.0/24" in nl.node_routes


def test_host_gw_routes_leave_foreign_routes_alone_and_clean_up_vxlan_leftovers():
    nl, cl = fake(), Cluster(own(), node("n2", "10.244.2.0/24", backend="host-gw", ip="100.64.9.3"),
                             node("n3", "10.244.3.0/24", backend="vxlan", ip="100.64.9.4"))
    agent(nl, cl).sync()                        # a vxlan run before
    nl.replace_route(RouteEntry("10.1.0.0/16", "100.64.9.6", "eth0"), 3)   # someone else's route (proto boot)
    cl.nodes["n3"] = node("n3", "10.244.3.0/24", backend="host-gw", ip="100.64.9.4")
    cl.nodes["n4"] = node("n4", None, backend="host-gw", ip="100.64.9.5")  # no podCIDR yet
    a = agent(nl, cl, backend="host-gw")
    out = a.sync()
    assert nl.vxlan("flannel.1") is None
    assert sorted(nl.owned_routes(B.RT_PROTO), key=lambda r: r.dst) == [
        RouteEntry("10.244.2.0/24", "100.64.9.3", "eth0"), RouteEntry("10.244.3.0/24", "100.64.9.4", "eth0")]
    assert nl.node_routes["10.1.0.0/16"][1] == 3
    assert out["peers"] == 2
    assert cl.nodes["n1"]["metadata"]["annotations"][B.BACKEND_DATA] == "null"
    cl.nodes["n4"]["spec"]["podCIDR"] = "10.244.4.0/24"
    a.sync()
    assert nl.node_routes["10.244.4.0/24"][0] == RouteEntry("10.244.4.0/24", "100.64.9.5", "eth0")


def test_own_node_not_ready_and_the_bounded_wait():
    cfg = Config("n1")
    assert "does not exist" in node_ready(None, cfg)
    assert "podCIDR" in node_ready({"metadata": {"name": "n1"}, "spec": {}}, cfg)
    assert "InternalIP" in node_ready({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}}, cfg)
    assert node_ready({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}},
                      Config("n1", public_ip="100.64.9.2")) is None
    nl, cl = fake(), Cluster()
    with pytest.raises(NotReady):
        agent(nl, cl).sync()
    answers = iter([None, {"metadata": {"name": "n1"}}, own()])
    stop = threading.Event()
    assert wait_for_node(lambda: next(answers), cfg, stop, interval=0.001) == own()
    stop.set()
    assert wait_for_node(lambda: None, cfg, stop, interval=0.001) is None
    # the interface is found by the public IP; a public IP no link holds is "not ready", not a crash
    cl = Cluster(own(ip="100.64.9.99"))
    with pytest.raises(NotReady, match="no interface holds 100.64.9.99"):
        agent(nl, cl).sync()


def test_heartbeats_do_not_enqueue():
    n = own()
    beat = {**n, "status": {**n["status"], "conditions": [{"type": "Ready", "status": "True",
                                                           "lastHeartbeatTime": "later"}]}}
    assert relevant(n) == relevant(beat)
    assert relevant(n) != relevant(node("n1", "10.244.1.0/24"))
    calls = []
    handler = Agent(fake(), None, Config("n1"), nodes=list, get_node=lambda _: None).on_update(
        lambda: calls.append(1))
    handler(n, beat)
    handler(n, {**n, "spec": {"podCIDR": "10.244.9.0/24"}})
    assert calls == [1]


def test_run_loop_syncs_then_stops():
    nl, cl = fake(), Cluster(own(), node("n2", "10.244.2.0/24", ip="100.64.9.3"))
    a = agent(nl, cl)
    q, stop = WorkQueue(name="t"), threading.Event()
    t = threading.Thread(target=a.run, args=(q, stop), daemon=True)
    t.start()
    for _ in range(200):
        if a.syncs:
            break
        stop.wait(0.01)
    stop.set()
    q.shutdown()
    t.join(5)
    assert not t.is_alive() and a.syncs >= 1 and "10.244.2.0/24" in nl.node_routes
    assert q.num_waiting() == 1 and KEY == "network"    # the next resync is scheduled


def test_flag_defaults():
    args = build_parser().parse_args([])
    assert (args.backend, args.iface, args.public_ip, args.cluster_cidr, args.vni, args.vxlan_port,
            args.resync_period, args.log_level, args.node_name) == \
        ("vxlan", None, None, "10.244.0.0/16", 1, 8472, 10.0, "info", None)
    cfg = config_from_args(build_parser().parse_args(["--node-name", "n1", "--backend", "host-gw"]))
    assert (cfg.node_name, cfg.backend, cfg.protocol) == ("n1", "host-gw", 75)
    with pytest.raises(SystemExit):
        config_from_args(build_parser().parse_args(["--vni", "0"]))


def test_an_unreachable_api_server_does_not_stop_the_kernel_following_the_cache():
    nl, cl = fake(), Cluster(own(), node("n2", "10.244.2.0/24", ip="100.64.9.3"))

    def down(*_a, **_k):
        raise ConnectionError("API server down")

    cl.patch = down
    a = agent(nl, cl)
    with pytest.raises(ConnectionError):
        a.sync()
    assert "10.244.2.0/24" in nl.node_routes      # programmed all the same
