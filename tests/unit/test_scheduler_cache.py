"""The scheduler cache: assume / confirm / forget / expire, nodes coming and going, rebuild on restart."""
from __future__ import annotations

import copy

import pytest

from scheduler.cache import SchedulerCache
from scheduler.testing import make_node, make_pod
from scheduler.types import PodInfo


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def bound(pod: dict, node: str) -> dict:
    p = copy.deepcopy(pod)
    p["spec"]["nodeName"] = node
    return p


def cpu(cache: SchedulerCache, node: str) -> int:
    return cache.node_info(node).requested.milli_cpu


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cache(clock):
    c = SchedulerCache(assumed_ttl=30, clock=clock)
    c.add_node(make_node("n1", cpu="2"))
    c.add_node(make_node("n2", cpu="2"))
    return c


def test_assume_then_confirm(cache):
    pod = make_pod("a", cpu="500m")
    cache.assume_pod(PodInfo(pod), "n1")
    assert cache.is_assumed("default/a") and cpu(cache, "n1") == 500
    cache.finish_binding("default/a")
    cache.add_pod(bound(pod, "n1"))  # the watch shows it bound: confirmed, counted once
    assert not cache.is_assumed("default/a") and cpu(cache, "n1") == 500
    assert cache.pod_count() == 1


def test_assume_then_forget(cache):
    cache.assume_pod(PodInfo(make_pod("a", cpu="500m")), "n1")
    cache.forget_pod("default/a")
    assert cpu(cache, "n1") == 0 and not cache.is_assumed("default/a") and cache.pod_count() == 0


def test_forget_after_confirmation_is_a_no_op(cache):
    pod = make_pod("a", cpu="500m")
    cache.assume_pod(PodInfo(pod), "n1")
    cache.add_pod(bound(pod, "n1"))
    cache.forget_pod("default/a")
    assert cpu(cache, "n1") == 500


def test_confirmed_on_another_node_moves_the_pod(cache):
    pod = make_pod("a", cpu="500m")
    cache.assume_pod(PodInfo(pod), "n1")
    cache.add_pod(bound(pod, "n2"))  # someone else bound it elsewhere first
    assert cpu(cache, "n1") == 0 and cpu(cache, "n2") == 500


def test_assumption_expires_only_after_binding_finished(cache, clock):
    cache.assume_pod(PodInfo(make_pod("a", cpu="500m")), "n1")
    clock.t = 100
    assert cache.cleanup_expired() == []  # bind still in flight: never expires
    cache.finish_binding("default/a")
    clock.t = 129
    assert cache.cleanup_expired() == []
    clock.t = 131
    assert cache.cleanup_expired() == ["default/a"]
    assert cpu(cache, "n1") == 0


def test_assumptions_never_expire_by_default(clock):
    c = SchedulerCache(clock=clock)
    c.add_node(make_node("n1"))
    c.assume_pod(PodInfo(make_pod("a", cpu="500m")), "n1")
    c.finish_binding("default/a")
    clock.t = 10**9
    assert c.cleanup_expired() == [] and c.is_assumed("default/a")


def test_double_assume_is_refused(cache):
    pi = PodInfo(make_pod("a", cpu="1"))
    cache.assume_pod(pi, "n1")
    with pytest.raises(ValueError):
        cache.assume_pod(pi, "n2")


def test_remove_pod_frees_resources(cache):
    pod = bound(make_pod("a", cpu="1"), "n1")
    cache.add_pod(pod)
    cache.update_pod(pod, pod)
    assert cpu(cache, "n1") == 1000
    cache.remove_pod(pod)
    assert cpu(cache, "n1") == 0


def test_terminal_pods_hold_nothing(cache):
    pod = bound(make_pod("a", cpu="1"), "n1")
    cache.add_pod(pod)
    done = copy.deepcopy(pod)
    done["status"]["phase"] = "Succeeded"
    cache.update_pod(pod, done)
    assert cpu(cache, "n1") == 0 and cache.pod_count() == 0


def test_pods_on_unknown_node_are_kept_and_count_when_it_arrives(cache):
    cache.add_pod(bound(make_pod("a", cpu="1"), "n3"))
    assert [n.name for n in cache.node_infos()] == ["n1", "n2"]  # not a candidate without a Node
    cache.add_node(make_node("n3", cpu="2"))
    assert [n.name for n in cache.node_infos()] == ["n1", "n2", "n3"]
    assert cpu(cache, "n3") == 1000


def test_node_removed_with_pods_keeps_accounting(cache):
    cache.add_pod(bound(make_pod("a", cpu="1"), "n1"))
    cache.remove_node("n1")
    assert [n.name for n in cache.node_infos()] == ["n2"]
    assert cpu(cache, "n1") == 1000
    cache.remove_pod("default/a")
    assert cache.node_info("n1") is None
    cache.remove_node("n2")
    assert cache.node_infos() == [] and cache.node_info("n2") is None


def test_node_update_keeps_pods(cache):
    cache.add_pod(bound(make_pod("a", cpu="1"), "n1"))
    cache.update_node(make_node("n1", cpu="4", labels={"zone": "a"}))
    ni = cache.node_info("n1")
    assert ni.allocatable.milli_cpu == 4000 and ni.labels["zone"] == "a" and ni.requested.milli_cpu == 1000


def test_rebuilt_cache_equals_the_cluster():
    """A restarted scheduler lists nodes and bound pods and ends with the same accounting."""
    nodes = [make_node(f"n{i}", cpu="4") for i in range(3)]
    pods = [bound(make_pod(f"p{i}", cpu=f"{100 * (i + 1)}m", memory="64Mi"), f"n{i % 3}") for i in range(9)]
    first = SchedulerCache()
    for n in nodes:
        first.add_node(n)
    for p in pods:
        first.assume_pod(PodInfo(make_pod(p["metadata"]["name"], cpu=p["spec"]["containers"][0]["resources"]["requests"]["cpu"],
                                          memory="64Mi")), p["spec"]["nodeName"])
        first.finish_binding(f"default/{p['metadata']['name']}")
    second = SchedulerCache()
    for p in pods:  # the informer may deliver pods before nodes
        second.add_pod(p)
    for n in nodes:
        second.add_node(n)
    assert first.dump() == second.dump()
    assert second.assumed_count() == 0


def test_status_only_updates_keep_the_pod_info_and_node_generation(cache):
    pod = make_pod("a", cpu="500m", labels={"app": "web"})
    pi = PodInfo(pod)
    cache.assume_pod(pi, "n1")
    gen = cache.node_info("n1").generation
    confirmed = bound(pod, "n1")
    cache.add_pod(confirmed)  # confirmation: same PodInfo, no new generation
    assert cache.node_info("n1").pods["default/a"] is pi and pi.obj is confirmed
    assert cache.node_info("n1").generation == gen and not cache.is_assumed("default/a")
    running = copy.deepcopy(confirmed)
    running["status"] = {"phase": "Running", "podIP": "10.244.0.5"}
    cache.update_pod(confirmed, running)
    assert cache.node_info("n1").pods["default/a"] is pi and cache.node_info("n1").generation == gen
    relabeled = copy.deepcopy(running)
    relabeled["metadata"]["labels"] = {"app": "db"}
    cache.update_pod(running, relabeled)
    new_pi = cache.node_info("n1").pods["default/a"]
    assert new_pi is not pi and new_pi.labels == {"app": "db"} and cache.node_info("n1").generation != gen
    resized = copy.deepcopy(relabeled)
    resized["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "700m"
    cache.update_pod(relabeled, resized)
    assert cpu(cache, "n1") == 700
