"""Node IPAM: the CIDRSet allocator alone, then the controller against a Store and a recording client."""
from __future__ import annotations

import copy
import ipaddress
import time

import pytest

from api import resources as R
from client.cache import Store
from client.errors import ConnectionFailed, Invalid, NotFound
from client.events import EventRecorder, FakeEventSink
from client.workqueue import WorkQueue
from controllers import main as cm
from controllers.cidrset import (CIDROutOfRange, CIDRReserved, CIDRSet, CIDRSetError, CIDRsExhausted,
                                 CIDRWrongSize)
from controllers.nodeipam import NodeIPAMController, cidr_patch, node_cidrs


# ------------------------------------------------------------------ CIDRSet
def test_allocates_in_order_from_the_start():
    s = CIDRSet("10.244.0.0/16", 24)
    assert s.max_cidrs == 256 and s.free == 256
    assert [s.allocate_next() for _ in range(3)] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert s.allocated == 3 and s.free == 253


def test_exhaustion_raises_a_typed_error_with_upstreams_message():
    s = CIDRSet("10.10.0.0/23", 24)
    assert {s.allocate_next(), s.allocate_next()} == {"10.10.0.0/24", "10.10.1.0/24"}
    with pytest.raises(CIDRsExhausted, match="no remaining CIDRs left to allocate in the accepted range"):
        s.allocate_next()
    assert isinstance(CIDRsExhausted("x"), CIDRSetError)
    s.release("10.10.1.0/24")
    assert s.allocate_next() == "10.10.1.0/24"


def test_released_block_is_reused_only_when_the_cursor_wraps_as_upstream():
    s = CIDRSet("10.0.0.0/22", 24)
    blocks = [s.allocate_next() for _ in range(3)]  # .0 .1 .2; cursor at 3
    assert s.release(blocks[0]) is True
    assert s.release(blocks[0]) is False  # already free
    assert s.allocate_next() == "10.0.3.0/24"  # nextCandidate, not the freed .0
    assert s.allocate_next() == "10.0.0.0/24"  # wrapped round to the freed block
    with pytest.raises(CIDRsExhausted):
        s.allocate_next()


def test_restart_occupies_what_nodes_hold_then_fills_the_gaps_from_the_start():
    first = CIDRSet("10.244.0.0/16", 24)
    held = [first.allocate_next() for _ in range(4)]
    first.release(held[1])
    held.pop(1)  # node 1 deleted: .0 .2 .3 remain
    second = CIDRSet("10.244.0.0/16", 24)  # a restarted controller
    for c in held:
        assert second.occupy(c) is True
    assert second.occupy(held[0]) is False  # twice: not an error, counted once
    assert second.allocated == 3
    assert second.allocate_next() == "10.244.1.0/24"
    assert second.allocate_next() == "10.244.4.0/24"


def test_occupy_refuses_out_of_range_and_wrong_size_with_clear_errors():
    s = CIDRSet("10.244.0.0/16", 24)
    with pytest.raises(CIDROutOfRange, match=r"10\.245\.0\.0/24 is outside the cluster CIDR 10\.244\.0\.0/16"):
        s.occupy("10.245.0.0/24")
    with pytest.raises(CIDRWrongSize, match=r"10\.244\.0\.0/23 is a /23, not a /24 block"):
        s.occupy("10.244.0.0/23")
    with pytest.raises(CIDRWrongSize):
        s.occupy("10.244.0.0/25")
    with pytest.raises(CIDROutOfRange):
        s.occupy("10.0.0.0/8")  # bigger than the range: not inside it
    with pytest.raises(CIDROutOfRange):
        s.occupy("fd00::/64")
    with pytest.raises(CIDRSetError, match="not a CIDR"):
        s.occupy("10.244.0.1/24")  # host bits set
    with pytest.raises(CIDRSetError, match="not a CIDR"):
        s.occupy("garbage")
    with pytest.raises(CIDRWrongSize):
        s.release("10.244.0.0/23")
    assert s.allocated == 0


def test_service_range_overlapping_the_cluster_cidr_is_never_handed_out():
    s = CIDRSet("10.96.0.0/22", 24)
    assert s.reserve("10.96.0.0/23") == 2
    assert s.free == 2
    assert [s.allocate_next(), s.allocate_next()] == ["10.96.2.0/24", "10.96.3.0/24"]
    with pytest.raises(CIDRsExhausted):
        s.allocate_next()
    with pytest.raises(CIDRReserved):
        s.occupy("10.96.0.0/24")
    with pytest.raises(CIDRReserved):
        s.release("10.96.1.0/24")
    assert s.is_reserved("10.96.1.0/24") and not s.is_reserved("10.96.2.0/24")
    # A service range inside one block takes that whole block; one outside takes nothing.
    t = CIDRSet("10.244.0.0/16", 24)
    assert t.reserve("10.244.7.128/28") == 1 and t.is_used("10.244.7.0/24")
    assert t.reserve("10.96.0.0/12") == 0 and t.free == 255
    # The cluster range inside the service range: nothing is left.
    u = CIDRSet("10.100.0.0/16", 24)
    assert u.reserve("10.96.0.0/12") == 256 and u.free == 0
    with pytest.raises(CIDRsExhausted):
        u.allocate_next()


def test_constructor_checks_mask_sizes():
    with pytest.raises(CIDRSetError, match="shorter than the cluster CIDR"):
        CIDRSet("10.244.0.0/16", 15)
    with pytest.raises(CIDRSetError, match="more than 2\\^16 blocks"):
        CIDRSet("10.0.0.0/8", 25)
    with pytest.raises(CIDRSetError, match="longer than an IPv4 address"):
        CIDRSet("10.0.0.0/30", 33)
    with pytest.raises(CIDRSetError):
        CIDRSet("10.244.0.1/16", 24)
    one = CIDRSet("10.244.5.0/24", 24)
    assert one.max_cidrs == 1 and one.allocate_next() == "10.244.5.0/24"
    v6 = CIDRSet("fd00:10::/48", 64)
    assert v6.allocate_next() == "fd00:10::/64" and v6.allocate_next() == "fd00:10:0:1::/64"


def test_a_thousand_nodes_in_a_slash_12_are_fast_and_distinct():
    s = CIDRSet("10.0.0.0/12", 24)
    t0 = time.perf_counter()
    got = [s.allocate_next() for _ in range(1000)]
    elapsed = time.perf_counter() - t0
    assert len(set(got)) == 1000
    assert got[0] == "10.0.0.0/24" and got[-1] == "10.3.231.0/24"
    assert all(ipaddress.ip_network(c).subnet_of(ipaddress.ip_network("10.0.0.0/12")) for c in got)
    assert elapsed < 0.5, f"1,000 allocations took {elapsed:.3f}s"
    # and the full 4,096, then exhaustion, still quickly
    rest = [s.allocate_next() for _ in range(4096 - 1000)]
    assert rest[-1] == "10.15.255.0/24"
    with pytest.raises(CIDRsExhausted):
        s.allocate_next()


# --------------------------------------------------------------- controller
def node(name, cidr=None, uid=None, rv="1"):
    n = {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": rv}, "spec": {}, "status": {}}
    if cidr:
        n["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    return n


class FakeClient:
    """Applies the CIDR patch to the Store, as the API server and then the informer would."""

    def __init__(self, nodes: Store):
        self.nodes = nodes
        self.patches: list[tuple[str, dict, str]] = []
        self.fail: Exception | None = None
        self.apply = True

    def patch(self, rt, name, patch, namespace=None, *, patch_type="merge", **_):
        assert rt is R.NODES
        self.patches.append((name, patch, patch_type))
        if self.fail:
            raise self.fail
        cur = self.nodes.get_by_key(name)
        if cur is None:
            raise NotFound(f"nodes {name!r} not found")
        if cur["spec"].get("podCIDR") and cur["spec"]["podCIDR"] != patch["spec"]["podCIDR"]:
            raise Invalid("node updates may not change podCIDR except from \"\" to valid")
        new = copy.deepcopy(cur)
        new["spec"].update(patch["spec"])
        if self.apply:
            self.nodes.add(new)
        return new


@pytest.fixture
def ctl():
    nodes = Store()
    sink = FakeEventSink()
    recorder = EventRecorder(sink, "cidrAllocator")
    # A long backoff, so a failed key stays waiting while the test looks at it.
    c = NodeIPAMController(FakeClient(nodes), nodes, CIDRSet("10.244.0.0/22", 24), recorder,
                           queue=WorkQueue(base_delay=30.0, max_delay=60.0))
    c.sink = sink  # for the tests
    return c


def drain(c, max_keys=50):
    n = 0
    while n < max_keys and c.process_one(timeout=0):
        n += 1
    return n


def events(c):
    c.recorder.flush(2)
    return [(e["type"], e["reason"], e["message"], e["involvedObject"]["kind"], e["involvedObject"]["name"])
            for e in c.sink.events]


def test_node_cidrs_and_patch_body():
    assert node_cidrs(node("a")) == []
    assert node_cidrs(node("a", "10.244.1.0/24")) == ["10.244.1.0/24"]
    assert node_cidrs({"spec": {"podCIDR": "10.244.2.0/24"}}) == ["10.244.2.0/24"]
    assert cidr_patch("10.244.3.0/24") == {"spec": {"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"]}}


def test_nodes_without_a_block_get_one_in_order_by_a_strategic_patch(ctl):
    for name in ("a", "b", "c"):
        ctl.nodes.add(node(name))
        ctl.queue.add(name)
    drain(ctl)
    assert [(n, p, t) for n, p, t in ctl.client.patches] == [
        ("a", cidr_patch("10.244.0.0/24"), "strategic"), ("b", cidr_patch("10.244.1.0/24"), "strategic"),
        ("c", cidr_patch("10.244.2.0/24"), "strategic")]
    assert ctl.held() == {"a": "10.244.0.0/24", "b": "10.244.1.0/24", "c": "10.244.2.0/24"}
    # Syncing again changes nothing: the Nodes hold their blocks now.
    for name in ("a", "b", "c"):
        ctl.sync(name)
    assert len(ctl.client.patches) == 3


def test_existing_blocks_are_occupied_before_anything_is_allocated(ctl):
    ctl.nodes.add(node("old1", "10.244.0.0/24"))
    ctl.nodes.add(node("old2", "10.244.2.0/24"))
    ctl.nodes.add(node("new"))
    ctl.occupy_existing()
    assert ctl.cidrs.allocated == 2
    ctl.queue.add("new")
    ctl.queue.add("old1")
    drain(ctl)
    assert ctl.client.patches == [("new", cidr_patch("10.244.1.0/24"), "strategic")]


def test_deleted_node_releases_its_block_from_the_name_map(ctl):
    ctl.nodes.add(node("a"))
    ctl.queue.add("a")
    drain(ctl)
    assert ctl.cidrs.is_used("10.244.0.0/24")
    ctl.nodes.delete("a")  # the informer's cache drops it before the delete event
    ctl.queue.add("a")
    drain(ctl)
    assert not ctl.cidrs.is_used("10.244.0.0/24") and ctl.held() == {}


def test_recreated_node_is_a_delete_plus_an_add(ctl):
    ctl.nodes.add(node("a"))
    ctl.sync("a")
    ctl.nodes.add(node("a", uid="uid-a2"))  # deleted and recreated between two syncs, without a podCIDR
    ctl.sync("a")
    assert ctl.held() == {"a": "10.244.1.0/24"}  # the old block was released, a new one given
    assert not ctl.cidrs.is_used("10.244.0.0/24")


def test_exhaustion_records_cidr_not_available_and_retries_until_a_block_frees(ctl):
    for name in ("a", "b", "c", "d", "e"):
        ctl.nodes.add(node(name))
        ctl.queue.add(name)
    drain(ctl)
    assert ctl.held() == {"a": "10.244.0.0/24", "b": "10.244.1.0/24", "c": "10.244.2.0/24", "d": "10.244.3.0/24"}
    assert events(ctl) == [("Normal", "CIDRNotAvailable", "Node e status is now: CIDRNotAvailable", "Node", "e")]
    assert ctl.sink.events[0]["source"]["component"] == "cidrAllocator"
    assert ctl.sink.events[0]["involvedObject"]["uid"] == "e"  # the Node convention: uid = name
    assert ctl.queue.num_requeues("e") == 1 and ctl.queue.num_waiting() == 1  # backed off, not dropped
    ctl.nodes.delete("b")
    ctl.sync("b")  # release wakes the waiting node at once
    assert ctl.queue.len() == 1
    drain(ctl)
    assert ctl.held()["e"] == "10.244.1.0/24"


def test_block_outside_the_range_or_of_another_size_is_reported_once_and_left_alone(ctl):
    ctl.nodes.add(node("far", "10.99.0.0/24"))
    ctl.nodes.add(node("wide", "10.244.0.0/23"))
    ctl.occupy_existing()
    ctl.sync("far")  # again, as a heartbeat would: no second event
    assert ctl.client.patches == [] and ctl.cidrs.allocated == 0 and ctl.held() == {}
    got = sorted(events(ctl), key=lambda e: e[4])
    assert [(t, r, n) for t, r, _, _, n in got] == [("Warning", "InvalidPodCIDR", "far"),
                                                    ("Warning", "InvalidPodCIDR", "wide")]
    assert "outside the cluster CIDR 10.244.0.0/22" in got[0][2]
    assert "is a /23, not a /24 block" in got[1][2]


def test_two_nodes_claiming_one_block_keep_it_until_both_are_gone(ctl):
    ctl.nodes.add(node("a", "10.244.0.0/24"))
    ctl.nodes.add(node("b", "10.244.0.0/24"))
    ctl.occupy_existing()
    assert [e[1] for e in events(ctl)] == ["InvalidPodCIDR"]
    ctl.nodes.delete("a")
    ctl.sync("a")
    assert ctl.cidrs.is_used("10.244.0.0/24")
    ctl.nodes.delete("b")
    ctl.sync("b")
    assert not ctl.cidrs.is_used("10.244.0.0/24")


def test_someone_else_setting_the_block_first_wins(ctl):
    # The cache shows no podCIDR, but a kubelet set its own --pod-cidr just before our patch.
    ctl.nodes.add(node("a"))

    def racing_patch(rt, name, patch, namespace=None, **kw):
        ctl.client.patches.append((name, patch, kw.get("patch_type")))
        raise Invalid("node updates may not change podCIDR except from \"\" to valid")

    ctl.client.patch = racing_patch
    with pytest.raises(Invalid):
        ctl.sync("a")
    assert ctl.held() == {} and ctl.cidrs.allocated == 0  # our block went back
    ctl.nodes.add(node("a", "10.244.3.0/24"))  # the cache catches up
    ctl.sync("a")
    assert ctl.held() == {"a": "10.244.3.0/24"}


def test_failed_patch_keeps_the_block_for_the_retry_and_not_found_releases_it(ctl):
    ctl.nodes.add(node("a"))
    ctl.client.fail = ConnectionFailed("server down")
    ctl.queue.add("a")
    drain(ctl)
    assert ctl.held() == {"a": "10.244.0.0/24"} and ctl.queue.num_waiting() == 1
    ctl.client.fail = None
    ctl.sync("a")  # the retry sends the same block, not a second one
    assert [p[1]["spec"]["podCIDR"] for p in ctl.client.patches] == ["10.244.0.0/24", "10.244.0.0/24"]
    assert ctl.cidrs.allocated == 1
    ctl.nodes.add(node("b"))
    ctl.client.fail = NotFound("gone")
    ctl.sync("b")
    assert "b" not in ctl.held() and ctl.cidrs.allocated == 1


def test_update_events_skip_heartbeats_of_nodes_with_a_tracked_block(ctl):
    ctl.nodes.add(node("a", "10.244.0.0/24"))
    ctl.occupy_existing()
    old, new = node("a", "10.244.0.0/24", rv="1"), node("a", "10.244.0.0/24", rv="2")
    ctl._on_update(old, new)
    assert ctl.queue.len() == 0
    ctl._on_update(node("b"), node("b", rv="2"))
    assert ctl.queue.len() == 1


# ------------------------------------------------------------------- flags
def parse(*argv):
    return cm.build_parser().parse_args(list(argv))


def test_flag_defaults_are_kubernetes_and_the_plans():
    a = parse()
    assert a.allocate_node_cidrs is False            # kube-controller-manager: off
    assert a.cluster_cidr == "10.244.0.0/16"         # DESIGN.md's cluster pod CIDR
    assert a.node_cidr_mask_size == 24               # kube-controller-manager's IPv4 default
    assert a.service_cluster_ip_range == "10.96.0.0/12"
    assert a.controllers == "*"
    controllers, cidrs, reserved = cm.validate(a)
    assert controllers == {"endpoint", "nodeipam", "nodelifecycle"} and cidrs is None and reserved == 0


def test_allocate_node_cidrs_takes_go_booleans():
    assert parse("--allocate-node-cidrs").allocate_node_cidrs is True
    assert parse("--allocate-node-cidrs=true").allocate_node_cidrs is True
    assert parse("--allocate-node-cidrs=false").allocate_node_cidrs is False
    with pytest.raises(SystemExit):
        parse("--allocate-node-cidrs=maybe")


def test_validation_errors_are_clear():
    def err(*argv):
        with pytest.raises(ValueError) as e:
            cm.validate(parse(*argv))
        return str(e.value)

    assert "--cluster-cidr" in err("--cluster-cidr", "10.244.0.1/16")
    assert "--service-cluster-ip-range" in err("--service-cluster-ip-range", "nope")
    assert "must be at least the --cluster-cidr prefix length (16)" in err("--node-cidr-mask-size", "15")
    assert "at most 30 for IPv4" in err("--cluster-cidr", "10.0.0.0/24", "--node-cidr-mask-size", "31")
    assert "more than 2^16 blocks" in err("--cluster-cidr", "10.0.0.0/8", "--node-cidr-mask-size", "26")
    assert "no block is left" in err("--allocate-node-cidrs", "--cluster-cidr", "10.100.0.0/16")
    assert "unknown controller 'bogus'" in err("--controllers", "*,bogus")


def test_controllers_flag_follows_kube_controller_manager():
    assert cm.parse_controllers("*,-nodelifecycle") == {"endpoint", "nodeipam"}
    assert cm.parse_controllers("endpoint") == {"endpoint"}
    assert cm.parse_controllers("-endpoint,*") == {"nodeipam", "nodelifecycle"}
    assert cm.parse_controllers("") == set()


def test_allocator_built_from_flags_reserves_the_overlapping_service_range():
    _, cidrs, reserved = cm.validate(parse("--allocate-node-cidrs", "--cluster-cidr", "10.100.0.0/22",
                                           "--service-cluster-ip-range", "10.100.0.0/24"))
    assert reserved == 1 and cidrs.free == 3 and cidrs.allocate_next() == "10.100.1.0/24"
