"""netd's pure parts: which Nodes take part, the desired kernel state per backend, the diff, what it publishes."""
from __future__ import annotations

import json

from netd import backends as B
from nodeutil.netlink import FdbEntry, NeighEntry, RouteEntry


def node(name, cidr="10.244.2.0/24", backend="vxlan", ip="100.64.9.3", mac="0e:00:00:00:00:02", vni=1, **extra):
    ann = {}
    if backend:
        ann[B.BACKEND_TYPE] = backend
        ann[B.PUBLIC_IP] = ip
        ann[B.BACKEND_DATA] = json.dumps({"VNI": vni, "VtepMAC": mac}) if backend == "vxlan" else "null"
        ann[B.KUBE_SUBNET_MANAGER] = "true"
    n = {"metadata": {"name": name, "annotations": ann}, "spec": {}, "status": {}}
    if cidr:
        n["spec"]["podCIDR"] = cidr
    n.update(extra)
    return n


def test_peers_skip_own_unallocated_unannotated_and_other_backends():
    nodes = [
        node("n1", "10.244.1.0/24", ip="100.64.9.2"),
        node("n2", "10.244.2.0/24", ip="100.64.9.3"),
        node("n3", None),                                     # no podCIDR yet
        node("n4", "10.244.4.0/24", backend=None),            # its agent has not published yet
        node("n5", "10.244.5.0/24", backend="host-gw"),       # another backend
        node("n6", "10.244.6.0/24", ip="not-an-ip"),
        node("n7", "10.244.7.0/24", mac="zz"),                # no usable VtepMAC
        node("n8", "10.244.8.0/24", vni=2),                   # another VNI
        node("n9", "10.9.0.0/24"),                            # outside the cluster CIDR
    ]
    got = B.peers(nodes, "n1", "10.244.1.0/24", "vxlan", 1, "10.244.0.0/16")
    assert got == [B.Peer("n2", "10.244.2.0/24", "100.64.9.3", "0e:00:00:00:00:02")]
    hg = B.peers([node("n2", backend="host-gw"), node("n3", "10.244.3.0/24")], "n1", "10.244.1.0/24", "host-gw", 1)
    assert hg == [B.Peer("n2", "10.244.2.0/24", "100.64.9.3")]


def test_overlapping_pod_cidrs_one_route_per_destination():
    nodes = [node("b", "10.244.2.0/24", ip="100.64.9.4", mac="0e:00:00:00:00:0b"),
             node("a", "10.244.2.0/24", ip="100.64.9.3"),      # same range: the first in name order wins
             node("c", "10.244.1.0/24", ip="100.64.9.5")]      # overlaps our own
    got = B.peers(nodes, "me", "10.244.1.0/24", "vxlan", 1)
    assert [p.name for p in got] == ["a"]


def test_host_gw_desired_routes_via_node_ips():
    ps = [B.Peer("n2", "10.244.2.0/24", "100.64.9.3"), B.Peer("n3", "10.244.3.0/24", "100.64.9.4")]
    want = B.desired("host-gw", ps, iface="eth0", vni=1)
    assert want.routes == {"10.244.2.0/24": RouteEntry("10.244.2.0/24", "100.64.9.3", "eth0"),
                           "10.244.3.0/24": RouteEntry("10.244.3.0/24", "100.64.9.4", "eth0")}
    assert not want.neighs and not want.fdbs


def test_vxlan_desired_route_neigh_fdb_per_peer():
    ps = [B.Peer("n2", "10.244.2.0/24", "100.64.9.3", "0e:00:00:00:00:02")]
    want = B.desired("vxlan", ps, iface="eth0", vni=1)
    assert want.routes == {"10.244.2.0/24": RouteEntry("10.244.2.0/24", "10.244.2.0", "flannel.1", onlink=True)}
    assert want.neighs == {("flannel.1", "10.244.2.0"): NeighEntry("flannel.1", "10.244.2.0", "0e:00:00:00:00:02")}
    assert want.fdbs == {FdbEntry("flannel.1", "0e:00:00:00:00:02", "100.64.9.3")}


def test_diff_touches_only_the_difference_in_a_safe_order():
    old = B.vxlan_desired([B.Peer("n2", "10.244.2.0/24", "100.64.9.3", "0e:00:00:00:00:02"),
                           B.Peer("n3", "10.244.3.0/24", "100.64.9.4", "0e:00:00:00:00:03")], "flannel.1")
    assert len(B.diff(old, old.copy())) == 0
    # n2 moved to another node IP and MAC, n3 went, n4 came
    new = B.vxlan_desired([B.Peer("n2", "10.244.2.0/24", "100.64.9.9", "0e:00:00:00:00:22"),
                           B.Peer("n4", "10.244.4.0/24", "100.64.9.5", "0e:00:00:00:00:04")], "flannel.1")
    plan = B.diff(new, old)
    assert [r.dst for r in plan.del_routes] == ["10.244.3.0/24"]
    assert [n.ip for n in plan.del_neighs] == ["10.244.3.0"]
    assert plan.del_fdbs == [FdbEntry("flannel.1", "0e:00:00:00:00:02", "100.64.9.3"),
                             FdbEntry("flannel.1", "0e:00:00:00:00:03", "100.64.9.4")]
    assert plan.add_fdbs == [FdbEntry("flannel.1", "0e:00:00:00:00:04", "100.64.9.5"),
                             FdbEntry("flannel.1", "0e:00:00:00:00:22", "100.64.9.9")]
    assert [(n.ip, n.mac) for n in plan.add_neighs] == [("10.244.2.0", "0e:00:00:00:00:22"),
                                                        ("10.244.4.0", "0e:00:00:00:00:04")]
    assert [r.dst for r in plan.set_routes] == ["10.244.4.0/24"]   # n2's route is unchanged: not rewritten
    assert plan.counts() == {"routes_set": 1, "routes_deleted": 1, "neigh_set": 2, "neigh_deleted": 1,
                             "fdb_added": 2, "fdb_deleted": 2}


def test_vtep_mac_is_stable_unicast_and_locally_administered():
    a = B.vtep_mac("node-1", 1)
    assert a == B.vtep_mac("node-1", 1) != B.vtep_mac("node-2", 1)
    first = int(a.split(":")[0], 16)
    assert first & 1 == 0 and first & 2 == 2 and len(a) == 17


def test_own_annotations_and_the_status_patch():
    vx = B.own_annotations("vxlan", "100.64.9.2", vni=1, mac="0e:11:22:33:44:55")
    assert vx == {"flannel.alpha.coreos.com/backend-type": "vxlan",
                  "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"0e:11:22:33:44:55"}',
                  "flannel.alpha.coreos.com/public-ip": "100.64.9.2",
                  "flannel.alpha.coreos.com/kube-subnet-manager": "true"}
    hg = B.own_annotations("host-gw", "100.64.9.2", vni=1, mac=None)
    assert hg["flannel.alpha.coreos.com/backend-data"] == "null"
    patch = B.status_patch(vx, "2026-01-01T00:00:00Z")
    assert patch == {"metadata": {"annotations": vx}, "status": {"conditions": [{
        "type": "NetworkUnavailable", "status": "False", "reason": "NetdIsUp",
        "message": "pocketkube netd is running on this node",
        "lastTransitionTime": "2026-01-01T00:00:00Z", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}}
    n = node("n1")
    assert not B.published(n, vx)
    n["metadata"]["annotations"] = dict(vx)
    n["status"]["conditions"] = [{"type": "NetworkUnavailable", "status": "True", "reason": "NoNetworkAgent"}]
    assert not B.published(n, vx)                       # the kubelet's "no agent yet" still stands
    n["status"]["conditions"] = [{"type": "NetworkUnavailable", "status": "False", "reason": "NetdIsUp"}]
    assert B.published(n, vx)
    assert not B.published(n, {**vx, B.PUBLIC_IP: "100.64.9.7"})


def test_strategic_patch_keeps_other_conditions_and_annotations():
    from api.patch import strategic_merge_patch

    stored = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "annotations": {"keep": "me"}},
              "status": {"conditions": [
                  {"type": "Ready", "status": "True", "reason": "KubeletReady"},
                  {"type": "NetworkUnavailable", "status": "True", "reason": "NoNetworkAgent"}]}}
    ann = B.own_annotations("host-gw", "100.64.9.2", vni=1, mac=None)
    out = strategic_merge_patch(stored, B.status_patch(ann, "2026-01-01T00:00:00Z"), "Node")
    assert out["metadata"]["annotations"] == {"keep": "me", **ann}
    conds = {c["type"]: c for c in out["status"]["conditions"]}
    assert conds["Ready"]["reason"] == "KubeletReady"
    assert (conds["NetworkUnavailable"]["status"], conds["NetworkUnavailable"]["reason"]) == ("False", "NetdIsUp")
    assert B.published(out, ann)
