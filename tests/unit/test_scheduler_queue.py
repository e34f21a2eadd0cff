"""The scheduling queue: ordering, exponential back-off, event-driven retries, no busy loop."""
from __future__ import annotations

import copy
import threading
import time

import pytest

from scheduler.queue import (ACTIVE, ASSIGNED_POD_DELETE, BACKOFF, IN_FLIGHT, NODE_ADD, UNSCHEDULABLE,
                             SchedulingQueue)
from scheduler.testing import make_pod


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def q(clock):
    return SchedulingQueue(clock=clock)


@pytest.mark.parametrize("attempts,expected", [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (6, 10), (50, 10)])
def test_backoff_doubles_from_1s_to_10s(attempts, expected):
    assert SchedulingQueue().backoff_duration(attempts) == expected


def test_fifo_within_priority_and_priority_first(q, clock):
    for name, prio in [("a", 0), ("b", 0), ("hi", 100), ("c", 0), ("lo", -5)]:
        q.add(make_pod(name, priority=prio))
        clock.advance(0.001)
    order = [q.pop(timeout=0).key for _ in range(5)]
    assert order == ["default/hi", "default/a", "default/b", "default/c", "default/lo"]
    assert q.pop(timeout=0) is None


def test_add_is_deduplicated(q):
    p = make_pod("a")
    q.add(p)
    q.add(p)
    q.update(p, p)
    assert q.pop(timeout=0).key == "default/a"
    assert q.pop(timeout=0) is None


def test_unschedulable_waits_for_an_event_not_a_timer(q, clock):
    q.add(make_pod("a"))
    qp = q.pop(timeout=0)
    q.requeue(qp, unschedulable=True, reason="0/1 nodes are available: 1 Insufficient cpu.")
    assert q.where("default/a") == UNSCHEDULABLE
    clock.advance(60)  # a minute later, still nothing: no retries without an event
    assert q.pop(timeout=0) is None
    assert q.move_all_to_active_or_backoff(NODE_ADD) == 1
    assert q.where("default/a") == ACTIVE
    again = q.pop(timeout=0)
    assert again is qp and again.attempts == 2


def test_moved_pod_still_in_backoff_goes_to_backoff(q, clock):
    q.add(make_pod("a"))
    qp = q.pop(timeout=0)
    q.requeue(qp, unschedulable=True)
    clock.advance(0.5)  # back-off after 1 attempt is 1 s
    q.move_all_to_active_or_backoff(NODE_ADD)
    assert q.where("default/a") == BACKOFF
    assert q.pop(timeout=0) is None
    clock.advance(0.5)
    assert q.pop(timeout=0) is qp


def test_event_during_attempt_sends_pod_to_backoff_not_unschedulable(q, clock):
    q.add(make_pod("a"))
    qp = q.pop(timeout=0)
    q.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE)  # arrives while "a" is being tried
    q.requeue(qp, unschedulable=True)
    assert q.where("default/a") == BACKOFF
    clock.advance(1.0)
    assert q.pop(timeout=0) is qp


def test_errors_back_off_exponentially(q, clock):
    q.add(make_pod("a"))
    qp = q.pop(timeout=0)
    waits = []
    for _ in range(6):
        start = clock()
        q.requeue(qp, unschedulable=False, reason="connection refused")
        assert q.where("default/a") == BACKOFF
        while (got := q.pop(timeout=0)) is None:
            clock.advance(0.25)
        assert got is qp
        waits.append(clock() - start)
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_status_only_update_keeps_pod_unschedulable(q):
    pod = make_pod("a", cpu="8")
    q.add(pod)
    qp = q.pop(timeout=0)
    q.requeue(qp, unschedulable=True)
    with_condition = copy.deepcopy(pod)
    with_condition["status"]["conditions"] = [{"type": "PodScheduled", "status": "False"}]
    with_condition["metadata"]["resourceVersion"] = "2"
    q.update(pod, with_condition)
    assert q.where("default/a") == UNSCHEDULABLE
    assert q.get("default/a").pod is with_condition  # but the newest object is kept
    smaller = copy.deepcopy(with_condition)
    smaller["spec"]["tolerations"] = [{"operator": "Exists"}]
    q.update(with_condition, smaller)
    assert q.where("default/a") in (ACTIVE, BACKOFF)


def test_update_during_attempt_counts_as_a_change(q, clock):
    pod = make_pod("a")
    q.add(pod)
    qp = q.pop(timeout=0)
    changed = copy.deepcopy(pod)
    changed["metadata"]["labels"] = {"x": "y"}
    q.update(pod, changed)
    q.requeue(qp, unschedulable=True)
    assert q.where("default/a") == BACKOFF
    assert qp.pod is changed


def test_delete_removes_everywhere_and_in_flight_pods_are_dropped(q):
    for n in "abc":
        q.add(make_pod(n))
    a = q.pop(timeout=0)
    q.delete(make_pod("b"))
    q.delete("default/a")  # deleted while in flight
    q.requeue(a, unschedulable=True)
    assert q.where("default/a") is None
    assert q.pop(timeout=0).key == "default/c"
    assert q.pop(timeout=0) is None
    assert len(q) == 1  # c is in flight


def test_done_removes_in_flight_pod(q):
    q.add(make_pod("a"))
    qp = q.pop(timeout=0)
    assert q.where(qp.key) == IN_FLIGHT
    q.done(qp.key)
    assert q.where(qp.key) is None and len(q) == 0


def test_add_back_returns_an_untried_pod(q):
    q.add(make_pod("a"))
    qp = q.pop(timeout=0)
    q.add_back(qp)
    assert q.where(qp.key) == ACTIVE and qp.attempts == 0


def test_leftover_unschedulable_pods_are_retried_after_max_duration(clock):
    q = SchedulingQueue(clock=clock, max_unschedulable_duration=300)
    q.add(make_pod("a"))
    qp = q.pop(timeout=0)
    q.requeue(qp, unschedulable=True)
    clock.advance(299)
    assert q.pop(timeout=0) is None
    clock.advance(31)
    assert q.pop(timeout=0) is qp


def test_recreated_pod_is_a_new_entry(q):
    q.add(make_pod("a"))
    old = q.pop(timeout=0)
    q.delete("default/a")
    q.add(make_pod("a"))
    q.requeue(old, unschedulable=True)  # the old attempt's result must not clobber the new pod
    new = q.pop(timeout=0)
    assert new is not old and new.attempts == 1


def test_pop_blocks_without_spinning_and_wakes_on_add():
    q = SchedulingQueue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.pop(timeout=5)))
    start = time.monotonic()
    t.start()
    time.sleep(0.1)
    cpu0 = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - cpu0 < 0.05  # idle: no busy loop
    q.add(make_pod("a"))
    t.join(2)
    assert got and got[0].key == "default/a" and time.monotonic() - start < 2


def test_pop_wakes_exactly_when_backoff_expires():
    q = SchedulingQueue(initial_backoff=0.2)
    q.add(make_pod("a"))
    qp = q.pop(timeout=0)
    q.requeue(qp, unschedulable=False)
    start = time.monotonic()
    assert q.pop(timeout=2) is qp
    assert 0.15 < time.monotonic() - start < 0.6


def test_close_wakes_poppers():
    q = SchedulingQueue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.pop()))
    t.start()
    time.sleep(0.05)
    q.close()
    t.join(2)
    assert got == [None]


def test_counts(q):
    for n in "abcd":
        q.add(make_pod(n))
    a, b = q.pop(timeout=0), q.pop(timeout=0)
    q.pop(timeout=0)  # c stays in flight
    q.requeue(a, unschedulable=True)
    q.requeue(b, unschedulable=False)
    assert q.counts() == {ACTIVE: 1, BACKOFF: 1, UNSCHEDULABLE: 1, IN_FLIGHT: 1}
    assert q.busy()
