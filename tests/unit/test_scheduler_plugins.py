"""Table-driven tests of the scheduler's request arithmetic and of every filter and score plugin."""
from __future__ import annotations

import pytest

from scheduler.framework import Code
from scheduler.plugins import (DEFAULT_WEIGHTS, BalancedAllocation, LeastAllocated, NodeAffinity, NodeName,
                               NodePorts, NodeReady, NodeResourcesFit, NodeUnschedulable, SelectorSpread,
                               TaintToleration, parse_weights)
from scheduler.testing import expr, make_node, make_pod, preferred_affinity, required_affinity
from scheduler.types import NodeInfo, PodInfo, Resources, host_ports, pod_requests

MI = 1024 * 1024


def ni(node: dict, *pods: dict) -> NodeInfo:
    info = NodeInfo(node["metadata"]["name"], node)
    for p in pods:
        info.add_pod(PodInfo(p))
    return info


def container(name: str, cpu: str | None = None, memory: str | None = None, *, limits: dict | None = None,
              restart: str | None = None) -> dict:
    req = {}
    if cpu:
        req["cpu"] = cpu
    if memory:
        req["memory"] = memory
    c = {"name": name, "image": "x", "resources": {"requests": req}}
    if limits:
        c["resources"]["limits"] = limits
    if restart:
        c["restartPolicy"] = restart
    return c


# ------------------------------------------------------------------ requests
@pytest.mark.parametrize("containers,inits,overhead,cpu,mem", [
    ([container("a", "100m", "64Mi"), container("b", "250m", "64Mi")], [], None, 350, 128 * MI),
    # quantities are exact: 0.5 == 500m, 1.5Gi == 1536Mi, 1 cpu == 1000m
    ([container("a", "0.5", "1.5Gi")], [], None, 500, 1536 * MI),
    ([container("a", "1")], [], None, 1000, 0),
    # sub-millicore requests round up, like Quantity.MilliValue()
    ([container("a", "0.0001")], [], None, 1, 0),
    # an ordinary init container runs alone: the pod needs the max of it and the containers
    ([container("a", "100m", "64Mi")], [container("i", "500m", "32Mi")], None, 500, 64 * MI),
    ([container("a", "100m")], [container("i1", "300m"), container("i2", "200m")], None, 300, 0),
    # a sidecar (restartPolicy Always) adds to the containers and to later init containers
    ([container("a", "100m")], [container("s", "50m", restart="Always"), container("i", "400m")], None, 450, 0),
    ([container("a", "600m")], [container("s", "50m", restart="Always"), container("i", "400m")], None, 650, 0),
    # overhead is added on top
    ([container("a", "100m", "10Mi")], [], {"cpu": "10m", "memory": "1Mi"}, 110, 11 * MI),
    # limits without requests request the limits
    ([container("a", limits={"cpu": "300m", "memory": "1Gi"})], [], None, 300, 1024 * MI),
    ([{"name": "a", "image": "x"}], [], None, 0, 0),
])
def test_pod_requests(containers, inits, overhead, cpu, mem):
    pod = make_pod("p", containers=containers, init_containers=inits)
    if overhead:
        pod["spec"]["overhead"] = overhead
    r = pod_requests(pod)
    assert (r.milli_cpu, r.memory) == (cpu, mem)


def test_non_zero_requests_for_scoring():
    pi = PodInfo(make_pod("p", containers=[{"name": "a", "image": "x"}, container("b", "1")]))
    assert pi.requests.milli_cpu == 1000 and pi.requests.memory == 0
    assert pi.non_zero_cpu == 1100 and pi.non_zero_memory == 400 * MI


def test_extended_resources_and_ephemeral_storage():
    r = pod_requests(make_pod("p", extra_requests={"nvidia.com/gpu": "2", "ephemeral-storage": "1Gi"}))
    assert r.scalar == {"nvidia.com/gpu": 2} and r.ephemeral_storage == 1024 * MI


def test_host_ports_including_host_network():
    pod = make_pod("p", host_ports=[80])
    assert host_ports(pod) == [("0.0.0.0", "TCP", 80)]
    hn = make_pod("h", containers=[{"name": "a", "image": "x", "ports": [{"containerPort": 53, "protocol": "UDP"}]}])
    assert host_ports(hn) == []
    hn["spec"]["hostNetwork"] = True
    assert host_ports(hn) == [("0.0.0.0", "UDP", 53)]


def test_node_info_accounting_add_remove():
    info = ni(make_node("n", cpu="2"))
    a, b = PodInfo(make_pod("a", cpu="300m", host_ports=[80])), PodInfo(make_pod("b", cpu="200m", owner="rs"))
    info.add_pod(a)
    info.add_pod(b)
    info.add_pod(a)  # re-adding replaces, never double counts
    assert info.requested.milli_cpu == 500 and len(info.pods) == 2
    assert info.used_ports and info.owner_counts["rs-rs"] == 1
    info.remove_pod(a.key)
    info.remove_pod(b.key)
    assert info.requested == Resources() and not info.used_ports and not info.owner_counts
    assert info.non_zero_cpu == 0 and info.non_zero_memory == 0


# ---------------------------------------------------------------- NodeResourcesFit
FIT_CASES = [
    # (node cpu/mem/pods, pods already there, new pod, expected reasons)
    (("1", "1Gi", 10), [], ("1", "1Gi"), ()),
    (("1", "1Gi", 10), [("999m", None)], ("1m", None), ()),            # exactly the last millicore
    (("1", "1Gi", 10), [("999m", None)], ("2m", None), ("Insufficient cpu",)),
    (("1", "1Gi", 10), [], ("1001m", None), ("Insufficient cpu",)),
    (("1", "1Gi", 10), [(None, "512Mi")], (None, "513Mi"), ("Insufficient memory",)),
    (("1", "1Gi", 10), [(None, "512Mi")], (None, "512Mi"), ()),
    (("1", "1Gi", 10), [], ("2", "2Gi"), ("Insufficient cpu", "Insufficient memory")),
    (("1", "1Gi", 1), [(None, None)], (None, None), ("Too many pods",)),
    (("1", "1Gi", 1), [("1", None)], ("1m", None), ("Too many pods", "Insufficient cpu")),
    (("1", "1Gi", 0), [], (None, None), ("Too many pods",)),
    # a pod requesting nothing fits anywhere there is room for one more pod
    (("0", "0", 5), [], (None, None), ()),
]


@pytest.mark.parametrize("node,existing,new,reasons", FIT_CASES)
def test_node_resources_fit(node, existing, new, reasons):
    cpu, mem, pods = node
    info = ni(make_node("n", cpu=cpu, memory=mem, pods=pods),
              *[make_pod(f"e{i}", cpu=c, memory=m) for i, (c, m) in enumerate(existing)])
    st = NodeResourcesFit().filter(PodInfo(make_pod("new", cpu=new[0], memory=new[1])), info)
    assert st.reasons == reasons
    assert st.code == (Code.UNSCHEDULABLE if reasons else Code.SUCCESS)


def test_node_resources_fit_extended_resource():
    info = ni(make_node("n", extra={"nvidia.com/gpu": "1"}))
    f = NodeResourcesFit()
    assert f.filter(PodInfo(make_pod("p", extra_requests={"nvidia.com/gpu": "1"})), info).ok
    assert f.filter(PodInfo(make_pod("p", extra_requests={"nvidia.com/gpu": "2"})), info).reasons == \
        ("Insufficient nvidia.com/gpu",)
    other = ni(make_node("m"))
    assert not f.filter(PodInfo(make_pod("p", extra_requests={"nvidia.com/gpu": "1"})), other).ok


# ------------------------------------------------------------- NodeAffinity
LABELS = {"zone": "a", "disk": "ssd", "cores": "8"}


@pytest.mark.parametrize("terms,fits", [
    ([[expr("zone", "In", "a", "b")]], True),
    ([[expr("zone", "In", "b")]], False),
    ([[expr("zone", "NotIn", "b")]], True),
    ([[expr("zone", "NotIn", "a")]], False),
    ([[expr("missing", "NotIn", "a")]], True),       # NotIn is true for a missing label
    ([[expr("disk", "Exists")]], True),
    ([[expr("gpu", "Exists")]], False),
    ([[expr("gpu", "DoesNotExist")]], True),
    ([[expr("disk", "DoesNotExist")]], False),
    ([[expr("cores", "Gt", "4")]], True),
    ([[expr("cores", "Gt", "8")]], False),
    ([[expr("cores", "Lt", "16")]], True),
    ([[expr("cores", "Lt", "8")]], False),
    ([[expr("zone", "Gt", "1")]], False),             # not an integer label
    ([[expr("cores", "Gt", "x")]], False),            # not an integer value
    ([[expr("missing", "Lt", "100")]], False),
    ([[expr("zone", "In", "a"), expr("disk", "In", "hdd")]], False),  # AND within a term
    ([[expr("zone", "In", "b")], [expr("disk", "In", "ssd")]], True),  # OR across terms
    ([[]], False),                                    # an empty term matches nothing
    ([[expr("zone", "Bogus", "a")]], False),
])
def test_required_node_affinity(terms, fits):
    pod = PodInfo(make_pod("p", affinity=required_affinity(*terms)))
    assert NodeAffinity().filter(pod, ni(make_node("n", labels=LABELS))).ok is fits


def test_match_fields_and_empty_terms_list():
    node = ni(make_node("n1"))
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}
    assert NodeAffinity().filter(PodInfo(make_pod("p", affinity=aff)), node).ok
    aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchFields"][0][
        "operator"] = "NotIn"
    assert not NodeAffinity().filter(PodInfo(make_pod("p", affinity=aff)), node).ok
    none = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
    assert not NodeAffinity().filter(PodInfo(make_pod("p", affinity=none)), node).ok


@pytest.mark.parametrize("selector,fits", [
    ({}, True), ({"zone": "a"}, True), ({"zone": "a", "disk": "ssd"}, True),
    ({"zone": "b"}, False), ({"gpu": "yes"}, False),
])
def test_node_selector(selector, fits):
    st = NodeAffinity().filter(PodInfo(make_pod("p", node_selector=selector)), ni(make_node("n", labels=LABELS)))
    assert st.ok is fits
    if not fits:
        assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert st.reasons == ("node(s) didn't match Pod's node affinity/selector",)


def test_preferred_node_affinity_score():
    plugin = NodeAffinity()
    nodes = [ni(make_node("a", labels={"zone": "a"})), ni(make_node("b", labels={"zone": "b", "ssd": "1"})),
             ni(make_node("c"))]
    pod = PodInfo(make_pod("p", affinity=preferred_affinity((10, [expr("zone", "In", "a")]),
                                                            (30, [expr("ssd", "Exists")]))))
    assert plugin.pre_score(pod, nodes).ok
    raw = [plugin.score(pod, n) for n in nodes]
    assert raw == [10, 30, 0]
    plugin.normalize(pod, raw)
    assert raw == [33, 100, 0]
    assert plugin.pre_score(PodInfo(make_pod("q")), nodes).code == Code.SKIP


# ----------------------------------------------------------- TaintToleration
GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize("taints,tolerations,fits", [
    ([], [], True),
    ([GPU], [], False),
    ([GPU], [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}], True),
    ([GPU], [{"key": "dedicated", "value": "gpu"}], True),                     # Equal is the default; any effect
    ([GPU], [{"key": "dedicated", "operator": "Equal", "value": "cpu"}], False),
    ([GPU], [{"key": "dedicated", "operator": "Exists"}], True),
    ([GPU], [{"operator": "Exists"}], True),                                   # tolerates everything
    ([GPU], [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], False),
    ([{"key": "k", "effect": "NoExecute"}], [], False),
    ([{"key": "k", "effect": "NoExecute"}], [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                                               "tolerationSeconds": 30}], True),
    ([{"key": "k", "effect": "PreferNoSchedule"}], [], True),                  # only a preference
    ([GPU, {"key": "k", "effect": "NoExecute"}], [{"key": "dedicated", "operator": "Exists"}], False),
])
def test_taint_toleration_filter(taints, tolerations, fits):
    st = TaintToleration().filter(PodInfo(make_pod("p", tolerations=tolerations)), ni(make_node("n", taints=taints)))
    assert st.ok is fits


def test_taint_reason_text():
    st = TaintToleration().filter(PodInfo(make_pod("p")), ni(make_node("n", taints=[GPU])))
    assert st.reasons == ("node(s) had untolerated taint {dedicated: gpu}",)
    st = TaintToleration().filter(PodInfo(make_pod("p")), ni(make_node("n", taints=[{"key": "k", "effect": "NoExecute"}])))
    assert st.reasons == ("node(s) had untolerated taint {k: }",)


def test_taint_toleration_prefer_no_schedule_score():
    plugin = TaintToleration()
    prefer = {"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}
    nodes = [ni(make_node("a")), ni(make_node("b", taints=[prefer])),
             ni(make_node("c", taints=[prefer, {"key": "x", "effect": "PreferNoSchedule"}]))]
    pod = PodInfo(make_pod("p"))
    assert plugin.pre_score(pod, nodes).ok
    raw = [plugin.score(pod, n) for n in nodes]
    plugin.normalize(pod, raw)
    assert raw == [100, 50, 0]
    tolerant = PodInfo(make_pod("t", tolerations=[{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]))
    plugin.pre_score(tolerant, nodes)
    raw = [plugin.score(tolerant, n) for n in nodes]
    plugin.normalize(tolerant, raw)
    assert raw == [100, 100, 0]
    assert plugin.pre_score(pod, nodes[:1]).code == Code.SKIP


# ------------------------------------------------- cordon, readiness, name, ports
@pytest.mark.parametrize("unschedulable,tolerations,fits", [
    (False, [], True),
    (True, [], False),
    (True, [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}], True),
])
def test_node_unschedulable(unschedulable, tolerations, fits):
    st = NodeUnschedulable().filter(PodInfo(make_pod("p", tolerations=tolerations)),
                                    ni(make_node("n", unschedulable=unschedulable)))
    assert st.ok is fits
    if not fits:
        assert st.reasons == ("node(s) were unschedulable",)


@pytest.mark.parametrize("ready,tolerations,reason", [
    ("True", [], None),
    ("False", [], "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"),
    ("Unknown", [], "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
    (None, [], "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
    ("False", [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}], None),
    ("False", [{"operator": "Exists"}], None),
])
def test_node_ready(ready, tolerations, reason):
    st = NodeReady().filter(PodInfo(make_pod("p", tolerations=tolerations)), ni(make_node("n", ready=ready)))
    assert st.ok is (reason is None)
    if reason:
        assert st.reasons == (reason,)


def test_node_name():
    p = PodInfo(make_pod("p", node_name="n1"))
    assert NodeName().filter(p, ni(make_node("n1"))).ok
    assert NodeName().filter(p, ni(make_node("n2"))).reasons == ("node(s) didn't match the requested node name",)
    assert NodeName().filter(PodInfo(make_pod("q")), ni(make_node("n2"))).ok


def _ports_pod(name, *ports):
    return make_pod(name, containers=[{"name": "a", "image": "x", "ports": [
        {"containerPort": port, "hostPort": port, "protocol": proto, **({"hostIP": ip} if ip else {})}
        for ip, proto, port in ports]}])


@pytest.mark.parametrize("used,wanted,fits", [
    ([], [(None, "TCP", 80)], True),
    ([(None, "TCP", 80)], [(None, "TCP", 80)], False),
    ([(None, "TCP", 80)], [(None, "UDP", 80)], True),
    ([(None, "TCP", 80)], [(None, "TCP", 81)], True),
    ([("10.0.0.1", "TCP", 80)], [("10.0.0.2", "TCP", 80)], True),
    ([("10.0.0.1", "TCP", 80)], [("10.0.0.1", "TCP", 80)], False),
    ([("10.0.0.1", "TCP", 80)], [(None, "TCP", 80)], False),       # wildcard wants every address
    ([(None, "TCP", 80)], [("10.0.0.2", "TCP", 80)], False),
])
def test_node_ports(used, wanted, fits):
    node = ni(make_node("n"), _ports_pod("old", *used)) if used else ni(make_node("n"))
    st = NodePorts().filter(PodInfo(_ports_pod("new", *wanted)), node)
    assert st.ok is fits
    if not fits:
        assert st.reasons == ("node(s) didn't have free ports for the requested pod ports",)


# ---------------------------------------------------------------- resource scores
@pytest.mark.parametrize("node_cpu,node_mem,used,pod,least,balanced", [
    # empty 4-cpu/8Gi node, pod 1 cpu + 2Gi: 75% free of both, perfectly balanced
    ("4", "8Gi", [], ("1", "2Gi"), 75, 100),
    # cpu half used, memory untouched -> less free, unbalanced
    ("4", "8Gi", [("2", "1Gi")], ("1", "1Gi"), 50, 75),
    # a pod asking for nothing counts as 100m / 200Mi
    ("1", "2000Mi", [], (None, None), 90, 100),
    # over-full cpu scores 0; memory (2 x 200Mi counted) 60 -> mean 30; fractions 1 vs 0.39
    ("1", "1Gi", [("2", None)], ("1", None), 30, 69),
])
def test_resource_scores(node_cpu, node_mem, used, pod, least, balanced):
    info = ni(make_node("n", cpu=node_cpu, memory=node_mem), *[make_pod(f"u{i}", cpu=c, memory=m)
                                                              for i, (c, m) in enumerate(used)])
    p = PodInfo(make_pod("p", cpu=pod[0], memory=pod[1]))
    assert LeastAllocated().score(p, info) == least
    assert BalancedAllocation().score(p, info) == balanced


# --------------------------------------------------------------- SelectorSpread
def test_selector_spread_by_owner_and_service():
    services = {"default": [{"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}},
                            {"metadata": {"name": "all"}, "spec": {}}]}
    plugin = SelectorSpread(lambda ns: services.get(ns, []))
    nodes = [
        ni(make_node("a"), make_pod("w1", labels={"app": "web"}, owner="rs1"), make_pod("w2", labels={"app": "web"}, owner="rs1")),
        ni(make_node("b"), make_pod("w3", labels={"app": "web"}, owner="rs1")),
        ni(make_node("c"), make_pod("x", labels={"app": "db"}), make_pod("y", namespace="other", labels={"app": "web"})),
    ]
    pod = PodInfo(make_pod("new", labels={"app": "web"}, owner="rs1"))
    assert plugin.pre_score(pod, nodes).ok
    raw = [plugin.score(pod, n) for n in nodes]
    assert raw == [2, 1, 0]
    plugin.normalize(pod, raw)
    assert raw == [0, 50, 100]
    # owner only: the per-node owner counts
    plain = SelectorSpread()
    owned = PodInfo(make_pod("o", owner="rs1"))
    assert plain.pre_score(owned, nodes).ok
    assert [plain.score(owned, n) for n in nodes] == [2, 1, 0]
    # neither a service nor an owner: nothing to spread
    assert plain.pre_score(PodInfo(make_pod("lone", labels={"app": "web"})), nodes).code == Code.SKIP
    # a selector-less service selects nothing
    assert plugin.pre_score(PodInfo(make_pod("z", labels={"app": "zzz"})), nodes).code == Code.SKIP


# ----------------------------------------------------------------------- weights
def test_parse_weights():
    assert parse_weights(None) == DEFAULT_WEIGHTS
    w = parse_weights("LeastAllocated=5, SelectorSpread=0")
    assert w["LeastAllocated"] == 5 and w["SelectorSpread"] == 0 and w["TaintToleration"] == 3
    for bad in ("Nope=1", "LeastAllocated", "LeastAllocated=x", "LeastAllocated=-1"):
        with pytest.raises(ValueError):
            parse_weights(bad)
