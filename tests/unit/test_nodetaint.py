"""Taints by node condition: the mapping, the list computed, the patch sent, and Conflict retries."""
from __future__ import annotations

import pytest

from api import resources as R
from api.kinds import node as node_kind
from client.cache import Store
from client.errors import Conflict, NotFound
from client.workqueue import WorkQueue
from controllers.nodetaint import (MANAGED_KEYS, NodeTaintController, compute_taints, desired_taint_keys,
                                   taint_patch)

TS = "2026-01-01T00:00:00Z"
HEALTHY = [{"type": "MemoryPressure", "status": "False"}, {"type": "DiskPressure", "status": "False"},
           {"type": "PIDPressure", "status": "False"}, {"type": "Ready", "status": "True"}]


def node(conditions=None, taints=None, unschedulable=False, rv="7", name="n1"):
    spec: dict = {}
    if taints is not None:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "resourceVersion": rv},
            "spec": spec, "status": {"conditions": HEALTHY if conditions is None else conditions}}


def cond(type_, status):
    return {"type": type_, "status": status}


def test_keys_are_kubernetes_well_known_taints_and_the_schedulers_strings():
    assert node_kind.TAINT_NOT_READY == "node.kubernetes.io/not-ready"
    assert node_kind.TAINT_UNREACHABLE == "node.kubernetes.io/unreachable"
    assert node_kind.TAINT_UNSCHEDULABLE == "node.kubernetes.io/unschedulable"
    assert node_kind.TAINT_MEMORY_PRESSURE == "node.kubernetes.io/memory-pressure"
    assert node_kind.TAINT_DISK_PRESSURE == "node.kubernetes.io/disk-pressure"
    assert node_kind.TAINT_PID_PRESSURE == "node.kubernetes.io/pid-pressure"
    assert node_kind.TAINT_NETWORK_UNAVAILABLE == "node.kubernetes.io/network-unavailable"
    assert len(MANAGED_KEYS) == 7
    from scheduler.types import node_ready_taint  # tests may look across components
    # Same rule as the scheduler's virtual ready taint, for every Ready state.
    for conds in ([cond("Ready", "False")], [cond("Ready", "Unknown")], [], [cond("Ready", "True")]):
        n = node(conds)
        virtual = node_ready_taint(n)
        ready_keys = [k for k in desired_taint_keys(n) if k in (node_kind.TAINT_NOT_READY, node_kind.TAINT_UNREACHABLE)]
        assert ready_keys == ([virtual["key"]] if virtual else [])


@pytest.mark.parametrize("conditions,unschedulable,want", [
    (HEALTHY, False, []),
    ([cond("Ready", "False")], False, [node_kind.TAINT_NOT_READY]),
    ([cond("Ready", "Unknown")], False, [node_kind.TAINT_UNREACHABLE]),
    ([], False, [node_kind.TAINT_UNREACHABLE]),  # no Ready condition yet: as the scheduler, unreachable
    ([cond("MemoryPressure", "True"), cond("Ready", "True")], False, [node_kind.TAINT_MEMORY_PRESSURE]),
    ([cond("DiskPressure", "True"), cond("Ready", "True")], False, [node_kind.TAINT_DISK_PRESSURE]),
    ([cond("PIDPressure", "True"), cond("Ready", "True")], False, [node_kind.TAINT_PID_PRESSURE]),
    ([cond("NetworkUnavailable", "True"), cond("Ready", "True")], False, [node_kind.TAINT_NETWORK_UNAVAILABLE]),
    ([cond("NetworkUnavailable", "False"), cond("Ready", "True")], False, []),
    ([cond("MemoryPressure", "Unknown"), cond("Ready", "True")], False, []),
    (HEALTHY, True, [node_kind.TAINT_UNSCHEDULABLE]),
    ([cond("Ready", "False"), cond("NetworkUnavailable", "True")], True,
     [node_kind.TAINT_NOT_READY, node_kind.TAINT_NETWORK_UNAVAILABLE, node_kind.TAINT_UNSCHEDULABLE]),
    # the first condition of a type wins, as in the scheduler
    ([cond("Ready", "True"), cond("Ready", "False")], False, []),
])
def test_desired_keys(conditions, unschedulable, want):
    assert desired_taint_keys(node(conditions, unschedulable=unschedulable)) == want


def test_adds_with_time_and_removes_only_its_own_keys():
    user = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    noexec = {"key": node_kind.TAINT_NOT_READY, "effect": "NoExecute"}  # not ours: another effect
    stale = {"key": node_kind.TAINT_DISK_PRESSURE, "effect": "NoSchedule"}
    n = node([cond("Ready", "True"), cond("NetworkUnavailable", "True")], taints=[user, stale, noexec])
    assert compute_taints(n, TS) == [user, noexec, {"key": node_kind.TAINT_NETWORK_UNAVAILABLE,
                                                    "effect": "NoSchedule", "timeAdded": TS}]


def test_a_wanted_taint_is_kept_as_it_is_and_nothing_to_do_is_none():
    ours = {"key": node_kind.TAINT_NETWORK_UNAVAILABLE, "effect": "NoSchedule", "value": "x",
            "timeAdded": "2020-01-01T00:00:00Z"}
    n = node([cond("Ready", "True"), cond("NetworkUnavailable", "True")], taints=[ours])
    assert compute_taints(n, TS) is None
    n = node([cond("Ready", "True"), cond("NetworkUnavailable", "True")], taints=[ours], unschedulable=True)
    assert compute_taints(n, TS) == [ours, {"key": node_kind.TAINT_UNSCHEDULABLE, "effect": "NoSchedule",
                                            "timeAdded": TS}]
    assert compute_taints(node(HEALTHY, taints=[{"key": "a", "effect": "NoExecute"}]), TS) is None
    assert compute_taints(node(HEALTHY), TS) is None


def test_removing_the_last_taint_sends_null_and_the_resource_version():
    n = node(HEALTHY, taints=[{"key": node_kind.TAINT_NETWORK_UNAVAILABLE, "effect": "NoSchedule"}], rv="42")
    taints = compute_taints(n, TS)
    assert taints == []
    assert taint_patch(n, taints) == {"spec": {"taints": None}, "metadata": {"resourceVersion": "42"}}
    t = [{"key": "a", "effect": "NoSchedule"}]
    assert taint_patch(n, t) == {"spec": {"taints": t}, "metadata": {"resourceVersion": "42"}}


class FakeClient:
    def __init__(self):
        self.patches: list[tuple] = []
        self.fail: Exception | None = None

    def patch(self, rt, name, patch, namespace=None, *, patch_type="merge", **_):
        assert rt is R.NODES
        self.patches.append((name, patch, patch_type))
        if self.fail:
            raise self.fail
        return {}


@pytest.fixture
def ctl():
    c = NodeTaintController(FakeClient(), Store(), queue=WorkQueue(base_delay=30.0), workers=1)
    return c


def drain(c):
    while c.process_one(timeout=0):
        pass


def test_sync_patches_strategic_with_the_whole_list(ctl):
    ctl.nodes.add(node([cond("Ready", "False")], taints=[{"key": "k", "effect": "NoExecute"}], rv="9"))
    ctl.queue.add("n1")
    drain(ctl)
    [(name, patch, ptype)] = ctl.client.patches
    assert name == "n1" and ptype == "strategic"
    assert patch["metadata"] == {"resourceVersion": "9"}
    assert [(t["key"], t["effect"]) for t in patch["spec"]["taints"]] == [
        ("k", "NoExecute"), (node_kind.TAINT_NOT_READY, "NoSchedule")]
    assert patch["spec"]["taints"][1]["timeAdded"]


def test_conflict_is_retried_from_the_queue_and_gone_nodes_are_ignored(ctl):
    ctl.nodes.add(node([cond("Ready", "False")]))
    ctl.client.fail = Conflict("the object has been modified")
    ctl.queue.add("n1")
    drain(ctl)
    assert ctl.queue.num_requeues("n1") == 1 and ctl.queue.num_waiting() == 1
    ctl.client.fail = NotFound("gone")
    ctl.sync("n1")  # no raise
    ctl.sync("never-seen")
    assert len(ctl.client.patches) == 2


def test_heartbeats_do_not_enqueue_but_condition_changes_do(ctl):
    a = node(HEALTHY, rv="1")
    b = node(HEALTHY, rv="2")
    ctl._on_update(a, b)
    assert ctl.queue.len() == 0
    ctl._on_update(b, node([cond("Ready", "True"), cond("NetworkUnavailable", "True")], rv="3"))
    assert ctl.queue.len() == 1
    ctl._on_update(a, a)  # a resync replay
    assert ctl.queue.len() == 1  # deduplicated, still queued
    c = node(HEALTHY, taints=[{"key": node_kind.TAINT_UNREACHABLE, "effect": "NoSchedule"}], name="n2")
    ctl._on_update(node(HEALTHY, name="n2"), c)  # someone edited the taints: converge again
    assert ctl.queue.len() == 2
