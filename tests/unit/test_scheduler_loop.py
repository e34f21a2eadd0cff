"""The whole scheduling loop without a server: informer handlers in, fake binder out.

The FakeBinder plays the API server and the watch: a successful bind calls
the scheduler's pod-update handler with the bound pod, exactly what the
informer would deliver.
"""
from __future__ import annotations

import copy
import random
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.errors import ServiceUnavailable
from scheduler.binder import BindConflict, FakeBinder
from client.events import EventRecorder, FakeEventSink
from scheduler.queue import BACKOFF, UNSCHEDULABLE, SchedulingQueue
from scheduler.scheduler import Scheduler, node_scheduling_changed
from scheduler.testing import make_node, make_pod
from scheduler.types import PodInfo, pod_key


class Harness:
    def __init__(self, nodes=(), *, can_bind=None, queue=None, **kw):
        self.sink = FakeEventSink()
        self.recorder = EventRecorder(self.sink, "default-scheduler", "test")  # no thread: flush() writes inline
        self.binder = FakeBinder(on_bind=self._bound)
        if queue is None:  # no back-off: run() drains everything that can be tried now
            queue = SchedulingQueue(initial_backoff=0, max_backoff=0)
        self.sched = Scheduler(self.binder, recorder=self.recorder, bind_workers=0, rng=random.Random(0),
                               can_bind=can_bind, queue=queue, **kw)
        self.pods: dict[str, dict] = {}
        self.nodes: dict[str, dict] = {}
        for n in nodes:
            self.add_node(n)

    def add_node(self, node):
        self.nodes[node["metadata"]["name"]] = node
        self.sched.on_node_add(node)

    def create(self, pod):
        self.pods[pod_key(pod)] = pod
        self.sched.on_pod_add(pod)
        return pod

    def update(self, new):
        old = self.pods[pod_key(new)]
        self.pods[pod_key(new)] = new
        self.sched.on_pod_update(old, new)

    def delete(self, key):
        self.sched.on_pod_delete(self.pods.pop(key))

    def _bound(self, pod, node):
        self.update(pod)

    def run(self, limit=100000):
        steps = 0
        while self.sched.schedule_one(timeout=0):
            steps += 1
            assert steps < limit
        self.recorder.flush()

    def placement(self):
        return dict(self.binder.binds)

    def events(self, reason):
        return [e for e in self.sink.events if e["reason"] == reason]


def test_schedules_and_spreads_equal_pods_evenly():
    h = Harness([make_node(f"n{i}", cpu="4") for i in range(3)])
    for i in range(9):
        h.create(make_pod(f"p{i}", cpu="500m", memory="128Mi"))
    h.run()
    assert len(h.placement()) == 9
    assert Counter(h.placement().values()) == {"n0": 3, "n1": 3, "n2": 3}
    scheduled = h.events("Scheduled")
    assert len(scheduled) == 9 and scheduled[0]["type"] == "Normal"
    assert scheduled[0]["message"] == f"Successfully assigned default/p0 to {h.placement()['default/p0']}"
    assert scheduled[0]["involvedObject"]["name"] == "p0" and scheduled[0]["source"]["component"] == "default-scheduler"
    assert h.sched.cache.assumed_count() == 0  # every assumption confirmed by the "watch"


def test_only_our_pending_pods_are_scheduled():
    h = Harness([make_node("n1")])
    h.create(make_pod("other", scheduler_name="my-scheduler"))
    h.create(make_pod("placed", node_name="n1"))
    done = make_pod("done", phase="Succeeded")
    h.create(done)
    deleting = make_pod("deleting")
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    h.create(deleting)
    h.create(make_pod("mine", scheduler_name="default-scheduler"))
    h.create(make_pod("default"))
    h.run()
    assert sorted(h.placement()) == ["default/default", "default/mine"]


def test_other_scheduler_name():
    h = Harness([make_node("n1")], scheduler_name="my-scheduler")
    h.create(make_pod("a"))
    h.create(make_pod("b", scheduler_name="my-scheduler"))
    h.run()
    assert list(h.placement()) == ["default/b"]


def test_unschedulable_condition_event_and_rescheduling_on_node_add():
    gpu = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    h = Harness([make_node("a", cpu="1"), make_node("b", cpu="1"), make_node("c", cpu="8", taints=[gpu])])
    h.create(make_pod("big", cpu="2"))
    h.run()
    msg = "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."
    assert h.binder.conditions == {"default/big": msg}
    [ev] = h.events("FailedScheduling")
    assert ev["type"] == "Warning" and ev["message"] == msg
    assert h.sched.queue.where("default/big") == UNSCHEDULABLE
    h.run()  # nothing changed: no retry
    assert h.sched.stats.attempts == 1
    h.add_node(make_node("d", cpu="2"))
    h.run()
    assert h.placement() == {"default/big": "d"}


def test_unschedulable_pod_retried_when_a_bound_pod_is_deleted():
    h = Harness([make_node("a", cpu="1")])
    h.create(make_pod("first", cpu="800m"))
    h.run()
    h.create(make_pod("second", cpu="800m"))
    h.run()
    assert "default/second" not in h.placement()
    h.delete("default/first")
    h.run()
    assert h.placement()["default/second"] == "a"


def test_node_update_that_matters_moves_pods():
    h = Harness([make_node("a", cpu="1")])
    h.create(make_pod("p", cpu="2"))
    h.run()
    heartbeat = copy.deepcopy(h.nodes["a"])
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
    assert not node_scheduling_changed(h.nodes["a"], heartbeat)
    h.sched.on_node_update(h.nodes["a"], heartbeat)
    assert h.sched.queue.where("default/p") == UNSCHEDULABLE
    bigger = make_node("a", cpu="4")
    assert node_scheduling_changed(heartbeat, bigger)
    h.sched.on_node_update(heartbeat, bigger)
    h.run()
    assert h.placement() == {"default/p": "a"}


def test_bind_conflict_drops_pod_and_forgets_assumption():
    h = Harness([make_node("a", cpu="1")])
    h.binder.fail["default/p"] = BindConflict('pod p is already assigned to node "x"')
    h.create(make_pod("p", cpu="1"))
    h.run()
    assert h.placement() == {}
    assert h.sched.cache.node_info("a").requested.milli_cpu == 0
    assert not h.sched.cache.is_assumed("default/p")
    assert len(h.sched.queue) == 0 and h.sched.stats.bind_conflicts == 1
    h.create(make_pod("q", cpu="1"))  # the freed millicores are usable at once
    h.run()
    assert h.placement() == {"default/q": "a"}


def test_bind_error_is_retried_with_backoff():
    q = SchedulingQueue(initial_backoff=0.01, max_backoff=0.02)
    h = Harness([make_node("a")], queue=q)
    h.binder.fail["default/p"] = ServiceUnavailable("etcdserver: leader changed")
    h.create(make_pod("p"))
    assert h.sched.schedule_one(timeout=0)
    assert q.where("default/p") == BACKOFF
    assert h.sched.cache.assumed_count() == 0
    assert h.sched.schedule_one(timeout=1)
    assert h.placement() == {"default/p": "a"}
    h.recorder.flush()
    assert [e["message"] for e in h.events("FailedScheduling")] == ["Binding rejected: etcdserver: leader changed"]


def test_no_binding_without_leadership():
    leader = [False]
    h = Harness([make_node("a")], can_bind=lambda: leader[0])
    h.create(make_pod("p"))
    assert h.sched.schedule_one(timeout=0)
    assert h.placement() == {} and h.sched.cache.assumed_count() == 0
    assert h.sched.queue.where("default/p") == "active"
    leader[0] = True
    h.run()
    assert h.placement() == {"default/p": "a"}


def test_pod_updated_with_toleration_is_retried():
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    h = Harness([make_node("a", taints=[taint])])
    pod = h.create(make_pod("p"))
    h.run()
    assert h.placement() == {}
    # our own condition coming back through the watch does not re-trigger an attempt
    with_cond = copy.deepcopy(pod)
    with_cond["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    h.update(with_cond)
    h.run()
    assert h.sched.stats.attempts == 1
    tolerant = copy.deepcopy(with_cond)
    tolerant["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    h.update(tolerant)
    h.run()
    assert h.placement() == {"default/p": "a"}


def test_same_owner_pods_spread_across_nodes():
    h = Harness([make_node(f"n{i}", cpu="64", memory="256Gi") for i in range(3)])
    # a busy node that the resource scores alone would still prefer less
    for i in range(6):
        h.create(make_pod(f"web-{i}", cpu="10m", owner="web"))
    h.run()
    assert sorted(Counter(h.placement().values()).values()) == [2, 2, 2]


def test_restarted_scheduler_does_not_double_book():
    nodes = [make_node(f"n{i}", cpu="1", pods=5) for i in range(2)]
    h1 = Harness(nodes)
    for i in range(3):
        h1.create(make_pod(f"a{i}", cpu="600m"))
    h1.run()
    assert len(h1.placement()) == 2
    # a new process: the informers list every node and every pod (bound and pending)
    h2 = Harness()
    for p in h1.pods.values():
        h2.create(p)
    for n in nodes:
        h2.add_node(n)
    h2.create(make_pod("b", cpu="600m"))
    h2.run()
    assert h2.placement() == {}
    assert all(ni.requested.milli_cpu <= 1000 for ni in h2.sched.cache.node_infos())


def test_failed_scheduling_events_are_aggregated():
    h = Harness([make_node("a", cpu="1")])
    h.create(make_pod("p", cpu="2"))
    h.run()
    for _ in range(3):  # three more attempts, same reason
        h.sched.queue.move_all_to_active_or_backoff("Force")
        h.sched.queue._pods["default/p"].last_attempt -= 100  # back-off over
        h.run()
    h.recorder.aggregate_interval = 0
    h.sched.queue.move_all_to_active_or_backoff("Force")
    h.sched.queue._pods["default/p"].last_attempt -= 100
    h.run()
    evs = h.events("FailedScheduling")
    assert len(evs) == 1 and evs[0]["count"] == 5


# -------------------------------------------------------------- property test
node_st = st.tuples(st.integers(0, 4000), st.integers(0, 8192), st.integers(0, 12))
pod_st = st.tuples(st.one_of(st.none(), st.integers(1, 2500)), st.one_of(st.none(), st.integers(1, 4096)),
                   st.one_of(st.none(), st.integers(1, 3000)), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=st.lists(node_st, min_size=0, max_size=8), pods=st.lists(pod_st, min_size=1, max_size=60),
       seed=st.integers(0, 2**32 - 1))
def test_random_pods_never_exceed_allocatable(nodes, pods, seed):
    h = Harness([make_node(f"n{i}", cpu=f"{c}m", memory=f"{m}Mi", pods=n) for i, (c, m, n) in enumerate(nodes)])
    h.sched.framework.rng = random.Random(seed)
    for i, (cpu, mem, init_cpu, sidecar) in enumerate(pods):
        inits = []
        if init_cpu:
            inits = [{"name": "init", "image": "x", "resources": {"requests": {"cpu": f"{init_cpu}m"}},
                      **({"restartPolicy": "Always"} if sidecar else {})}]
        h.create(make_pod(f"p{i}", cpu=f"{cpu}m" if cpu else None, memory=f"{mem}Mi" if mem else None,
                          init_containers=inits))
    h.run()
    placed = h.placement()
    usage: dict[str, list] = {name: [0, 0, 0] for name in h.nodes}
    for key, node in placed.items():
        r = PodInfo(h.pods[key]).requests
        usage[node][0] += r.milli_cpu
        usage[node][1] += r.memory
        usage[node][2] += 1
    for i, (c, m, n) in enumerate(nodes):
        cpu_used, mem_used, count = usage[f"n{i}"]
        assert cpu_used <= c and mem_used <= m * 1024 * 1024 and count <= n
    # and nothing was left out that would still fit somewhere
    for key, pod in h.pods.items():
        if key in placed:
            continue
        r = PodInfo(pod).requests
        for i, (c, m, n) in enumerate(nodes):
            cpu_used, mem_used, count = usage[f"n{i}"]
            fits = count + 1 <= n and (not r.milli_cpu or r.milli_cpu <= c - cpu_used) \
                and (not r.memory or r.memory <= m * 1024 * 1024 - mem_used)
            assert not fits, f"{key} would fit on n{i}"


def test_busy_during_a_stream_of_binds_not_for_a_single_pod():
    h = Harness([make_node("a", cpu="64")], busy_rate=20)
    h.create(make_pod("one"))
    h.run()
    assert not h.sched.busy()  # one pod: its event goes out at once
    for i in range(25):
        h.create(make_pod(f"p{i}"))
        h.run()  # the queue is empty after each pod, like a scheduler keeping up with a stream
    assert h.sched.busy()
    for i in range(len(h.sched._recent_binds)):  # a second later the burst is over
        h.sched._recent_binds[i] -= 2
    assert not h.sched.busy()


def test_unschedulable_condition_keeps_its_transition_time():
    from scheduler.binder import has_unschedulable_condition, unschedulable_condition

    pod = make_pod("p")
    first = unschedulable_condition("0/1 nodes are available: 1 Insufficient cpu.", pod)
    pod["status"]["conditions"] = [dict(first, lastTransitionTime="2020-01-01T00:00:00Z")]
    assert has_unschedulable_condition(pod, "0/1 nodes are available: 1 Insufficient cpu.")
    assert not has_unschedulable_condition(pod, "0/2 nodes are available: 2 Insufficient cpu.")
    again = unschedulable_condition("0/2 nodes are available: 2 Insufficient cpu.", pod)
    assert again["lastTransitionTime"] == "2020-01-01T00:00:00Z" and again["status"] == "False"
    assert "lastProbeTime" not in again
