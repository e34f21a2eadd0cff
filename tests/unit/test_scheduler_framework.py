"""The framework: statuses, the unschedulable message, scoring with weights, ties, node sampling."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from scheduler.framework import (SKIP, SUCCESS, Code, FitError, Framework, PluginError, Status,
                                 default_normalize, fit_error_message)
from scheduler.plugins import default_plugins
from scheduler.testing import make_node, make_pod
from scheduler.types import NodeInfo, PodInfo

GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def infos(*nodes: dict) -> list[NodeInfo]:
    return [NodeInfo(n["metadata"]["name"], n) for n in nodes]


def default_framework(seed: int = 1, **kw) -> Framework:
    filters, scores = default_plugins(kw.pop("weights", None))
    return Framework(filters, scores, rng=random.Random(seed), **kw)


# ------------------------------------------------------------------ Status
def test_status_codes():
    assert SUCCESS.ok and not SUCCESS.is_unschedulable
    st = Status.unschedulable("Insufficient cpu", "Insufficient memory", plugin="NodeResourcesFit")
    assert st.code == Code.UNSCHEDULABLE and st.is_unschedulable and not st.ok
    assert st.message == "Insufficient cpu, Insufficient memory"
    assert Status.unresolvable("x").code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert Status.error("boom").code == Code.ERROR
    assert str(st) == "UNSCHEDULABLE(Insufficient cpu, Insufficient memory)"


# ----------------------------------------------------------------- message
@pytest.mark.parametrize("n,reasons,expected", [
    (3, [("Insufficient cpu",), ("Insufficient cpu",), ("node(s) had untolerated taint {dedicated: gpu}",)],
     "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."),
    (1, [("Insufficient cpu", "Insufficient memory")],
     "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
    (12, [("Too many pods",)] * 10 + [("node(s) were unschedulable",)] * 2,
     "0/12 nodes are available: 10 Too many pods, 2 node(s) were unschedulable."),
    (2, [("node(s) didn't match Pod's node affinity/selector",), ("node(s) were unschedulable",)],
     "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable."),
    (0, [], "no nodes available to schedule pods"),
])
def test_fit_error_message(n, reasons, expected):
    statuses = {f"n{i}": Status.unschedulable(*r) for i, r in enumerate(reasons)}
    assert fit_error_message(n, statuses) == expected


def test_fit_error_from_real_plugins_matches_issue_text():
    nodes = infos(make_node("a", cpu="1"), make_node("b", cpu="1"), make_node("c", cpu="8", taints=[GPU]))
    with pytest.raises(FitError) as e:
        default_framework().schedule(PodInfo(make_pod("p", cpu="2")), nodes)
    assert e.value.message == \
        "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."


def test_first_failing_filter_decides_the_reason():
    # tainted AND too small: upstream reports the taint (TaintToleration runs before NodeResourcesFit)
    nodes = infos(make_node("a", cpu="1", taints=[GPU]))
    with pytest.raises(FitError) as e:
        default_framework().schedule(PodInfo(make_pod("p", cpu="2")), nodes)
    assert e.value.message == "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."


def test_default_normalize():
    s = [0, 5, 10]
    default_normalize(s)
    assert s == [0, 50, 100]
    s = [0, 5, 10]
    default_normalize(s, reverse=True)
    assert s == [100, 50, 0]
    s = [0, 0]
    default_normalize(s, reverse=True)
    assert s == [100, 100]
    s = [0, 0]
    default_normalize(s)
    assert s == [0, 0]


# ----------------------------------------------------------------- scoring
class Fixed:
    """A score plugin that gives each named node a fixed score."""

    def __init__(self, name, table):
        self.name = name
        self.table = table

    def score(self, pod, node):
        return self.table.get(node.name, 0)


class Reject:
    name = "Reject"

    def __init__(self, bad):
        self.bad = bad

    def filter(self, pod, node):
        return Status.unschedulable("rejected") if node.name in self.bad else SUCCESS


def test_weights_combine_scores():
    nodes = infos(make_node("a"), make_node("b"))
    a_wins = Framework([], [(Fixed("x", {"a": 100}), 1), (Fixed("y", {"b": 60}), 1)], rng=random.Random(0))
    assert a_wins.schedule(PodInfo(make_pod("p")), nodes).node == "a"
    b_wins = Framework([], [(Fixed("x", {"a": 100}), 1), (Fixed("y", {"b": 60}), 2)], rng=random.Random(0))
    assert b_wins.schedule(PodInfo(make_pod("p")), nodes).node == "b"
    off = Framework([], [(Fixed("x", {"a": 100}), 0), (Fixed("y", {"b": 60}), 1)], rng=random.Random(0))
    assert off.schedule(PodInfo(make_pod("p")), nodes).node == "b"


def test_pre_score_skip_and_normalize_hooks():
    calls = []

    class Skipper(Fixed):
        def pre_score(self, pod, nodes):
            calls.append("pre")
            return SKIP

    class Norm(Fixed):
        def normalize(self, pod, scores):
            calls.append("norm")
            default_normalize(scores, reverse=True)

    nodes = infos(make_node("a"), make_node("b"))
    fw = Framework([], [(Skipper("s", {"a": 100}), 10), (Norm("n", {"a": 1, "b": 2}), 1)], rng=random.Random(0))
    res = fw.schedule(PodInfo(make_pod("p")), nodes, keep_scores=True)
    assert res.node == "a" and res.scores == {"a": 50, "b": 0}
    assert calls == ["pre", "norm"]


def test_ties_are_broken_at_random_and_evenly():
    nodes = infos(*[make_node(f"n{i}") for i in range(4)])
    fw = Framework([], [(Fixed("flat", {}), 1)], rng=random.Random(7))
    picks = Counter(fw.schedule(PodInfo(make_pod("p")), nodes).node for _ in range(4000))
    assert set(picks) == {"n0", "n1", "n2", "n3"}
    assert all(800 < c < 1200 for c in picks.values()), picks


def test_single_feasible_node_skips_scoring():
    class Boom(Fixed):
        def score(self, pod, node):
            raise AssertionError("scored")

    nodes = infos(make_node("a"), make_node("b"))
    fw = Framework([Reject({"a"})], [(Boom("b", {}), 1)])
    assert fw.schedule(PodInfo(make_pod("p")), nodes).node == "b"


def test_filter_error_is_a_plugin_error():
    class Broken:
        name = "Broken"

        def filter(self, pod, node):
            return Status.error("cannot read node")

    with pytest.raises(PluginError, match="Broken"):
        Framework([Broken()], []).schedule(PodInfo(make_pod("p")), infos(make_node("a")))


def test_pre_filter_rejection_message():
    class PreReject:
        name = "PreReject"

        def pre_filter(self, pod):
            return Status.unresolvable("pod has unbound immediate PersistentVolumeClaims")

        def filter(self, pod, node):
            return SUCCESS

    with pytest.raises(FitError) as e:
        Framework([PreReject()], []).schedule(PodInfo(make_pod("p")), infos(make_node("a"), make_node("b")))
    assert e.value.message == "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."


# ----------------------------------------------------------- node sampling
@pytest.mark.parametrize("nodes,pct,expected", [
    (10, 0, 10), (99, 0, 99), (100, 0, 100), (500, 0, 230), (1000, 0, 420), (5000, 0, 500), (10000, 0, 500),
    (500, 100, 500), (500, 10, 100), (500, 50, 250),
])
def test_num_feasible_nodes_to_find(nodes, pct, expected):
    assert Framework([], [], percentage_of_nodes_to_score=pct).num_feasible_nodes_to_find(nodes) == expected


def test_sampling_rotates_so_every_node_gets_a_turn():
    nodes = infos(*[make_node(f"n{i:03}") for i in range(500)])
    fw = Framework([], [(Fixed("flat", {}), 1)], rng=random.Random(3))
    chosen = set()
    for _ in range(20):
        res = fw.schedule(PodInfo(make_pod("p")), nodes)
        assert res.feasible == 230
        chosen.add(res.node)
    # consecutive cycles start where the previous stopped, so picks spread over the whole list
    assert len({int(n[1:]) // 100 for n in chosen}) >= 4


def test_unschedulable_pod_evaluates_every_node():
    nodes = infos(*[make_node(f"n{i}", cpu="1") for i in range(300)])
    with pytest.raises(FitError) as e:
        default_framework().schedule(PodInfo(make_pod("p", cpu="2")), nodes)
    assert e.value.message == "0/300 nodes are available: 300 Insufficient cpu."


def test_default_profile_prefers_emptier_node():
    a, b = make_node("a"), make_node("b")
    nodes = infos(a, b)
    nodes[0].add_pod(PodInfo(make_pod("big", cpu="3", memory="6Gi", node_name="a")))
    assert default_framework().schedule(PodInfo(make_pod("p", cpu="100m")), nodes).node == "b"


# ------------------------------------------------------------ memoization
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from scheduler.framework import MEMO_CLASSES  # noqa: E402
from scheduler.testing import expr, preferred_affinity  # noqa: E402

POD_CLASSES = [
    dict(cpu="100m", memory="64Mi"),
    dict(cpu="1", memory="1Gi", owner="rs"),
    dict(cpu="300m", tolerations=[{"key": "dedicated", "operator": "Exists"}]),
    dict(cpu="200m", node_selector={"zone": "a"}),
    dict(cpu="50m", affinity=preferred_affinity((5, [expr("zone", "In", "b")]))),
    dict(host_ports=[8080]),
    dict(cpu="3"),
]
ops = st.lists(st.one_of(
    st.tuples(st.just("schedule"), st.integers(0, len(POD_CLASSES) - 1)),
    st.tuples(st.just("relabel"), st.integers(0, 5)),
    st.tuples(st.just("remove"), st.integers(0, 1000)),
), min_size=1, max_size=60)


@settings(max_examples=80, deadline=None)
@given(ops=ops, seed=st.integers(0, 1000))
def test_memoized_results_equal_fresh_results(ops, seed):
    """Memoizing node-local plugin results never changes a decision or a score."""
    def cluster():
        return [NodeInfo(f"n{i}", make_node(f"n{i}", cpu=str(2 + i % 3), labels={"zone": "ab"[i % 2]},
                                            taints=[GPU] if i == 4 else None)) for i in range(6)]

    worlds = []
    for memoize in (True, False):
        filters, scores = default_plugins()
        worlds.append((Framework(filters, scores, rng=random.Random(seed), memoize=memoize), cluster(), []))
    for step, (op, arg) in enumerate(ops):
        results = []
        for fw, nodes, placed in worlds:
            if op == "schedule":
                pi = PodInfo(make_pod(f"p{step}", **POD_CLASSES[arg]))
                try:
                    res = fw.schedule(pi, nodes, keep_scores=True)
                except FitError as e:
                    results.append(("unschedulable", e.message))
                    continue
                node = next(n for n in nodes if n.name == res.node)
                node.add_pod(pi)
                placed.append((node, pi.key))
                results.append((res.node, res.scores))
            elif op == "relabel":
                n = nodes[arg]
                n.set_node(make_node(n.name, cpu=str(1 + step % 4), labels={"zone": "ab"[step % 2]}))
            elif op == "remove" and placed:
                node, key = placed.pop(arg % len(placed))
                node.remove_pod(key)
        if results:
            assert results[0] == results[1]
    assert len(worlds[0][0]._memo) <= MEMO_CLASSES


def test_memo_is_used_for_identical_pods():
    nodes = infos(*[make_node(f"n{i}") for i in range(50)])
    fw = default_framework()
    for i in range(3):
        pi = PodInfo(make_pod(f"p{i}", cpu="100m"))
        res = fw.schedule(pi, nodes)
        next(n for n in nodes if n.name == res.node).add_pod(pi)
    # first pod: 50 misses; then only the node that changed is re-evaluated
    assert fw.memo_hits == 2 * 49
