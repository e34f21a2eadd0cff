"""Leader election (client.leaderelection) on the in-memory Lease, with the timings scaled down 15x."""
from __future__ import annotations

import threading
import time

import pytest

from client.errors import ServiceUnavailable
from client.leaderelection import (LeaderElectionConfig, LeaderElector, MemoryLeaseLock, format_micro_time,
                                   parse_micro_time, run_forever)

LEASE, RENEW, RETRY = 1.0, 0.66, 0.13


def elector(lock, identity, **kw) -> LeaderElector:
    return LeaderElector(LeaderElectionConfig(lock=lock, identity=identity, lease_duration=LEASE,
                                              renew_deadline=RENEW, retry_period=RETRY, **kw))


def wait_for(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return False


class Runner:
    """Runs an elector in a thread and records its terms."""

    def __init__(self, lock, identity, forever=False, **kw):
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.term_over: threading.Event | None = None
        self.stop = threading.Event()
        self.e = elector(lock, identity, on_started_leading=self._lead, on_stopped_leading=self.stopped.set, **kw)
        target = (lambda: run_forever(self.e, self.stop)) if forever else (lambda: self.e.run(self.stop))
        self.thread = threading.Thread(target=target, daemon=True)

    def _lead(self, term_over):
        self.term_over = term_over
        self.started.set()
        term_over.wait()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def test_config_validation():
    with pytest.raises(ValueError):
        LeaderElectionConfig(lock=MemoryLeaseLock(), lease_duration=10, renew_deadline=10, retry_period=2)


def test_micro_time_round_trip():
    t = 1700000000.123456
    s = format_micro_time(t)
    assert s == "2023-11-14T22:13:20.123456Z"
    assert abs(parse_micro_time(s) - t) < 1e-6
    assert parse_micro_time("2023-11-14T22:13:20Z") == 1700000000.0
    assert parse_micro_time("garbage") is None and parse_micro_time(None) is None


def test_first_candidate_creates_the_lease_and_leads():
    lock = MemoryLeaseLock()
    with Runner(lock, "a") as r:
        assert r.started.wait(2)
        assert r.e.is_leader() and r.e.leader == "a"
        spec = lock.get()["spec"]
        assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 1
        assert spec["leaseTransitions"] == 0
        acquired = spec["acquireTime"]
        first_renew = spec["renewTime"]
        assert wait_for(lambda: lock.get()["spec"]["renewTime"] != first_renew, 2)  # it keeps renewing
        assert lock.get()["spec"]["acquireTime"] == acquired


def test_only_one_of_two_leads_and_a_clean_stop_hands_over_at_once():
    lock = MemoryLeaseLock()
    a = Runner(lock, "a").__enter__()
    assert a.started.wait(2)
    with Runner(lock, "b") as b:
        time.sleep(3 * RETRY)
        assert not b.started.is_set() and not b.e.is_leader() and b.e.leader == "a"
        t0 = time.monotonic()
        a.__exit__()  # stop: a releases the lease
        assert a.stopped.is_set() and not a.e.is_leader()
        assert lock.get()["spec"]["holderIdentity"] in ("", "b")
        assert b.started.wait(2)
        assert time.monotonic() - t0 < 2 * RETRY + 0.2  # no need to wait out the lease
        assert lock.get()["spec"]["leaseTransitions"] == 1


def test_standby_takes_over_a_dead_leader_after_the_lease_duration():
    lock = MemoryLeaseLock()
    dead = elector(lock, "dead")
    assert dead.try_acquire_or_renew()
    with Runner(lock, "standby") as s:
        # the leader renews a few times while the standby watches, then stops (SIGKILL)
        last_renewal = time.monotonic()
        for _ in range(4):
            time.sleep(RETRY)
            assert dead.try_acquire_or_renew()
            last_renewal = time.monotonic()
        assert not s.started.is_set()
        assert s.started.wait(3)
        took = time.monotonic() - last_renewal
        # lease_duration after the last renewal (not after the standby happened to notice it)
        assert LEASE - 0.05 <= took <= LEASE + 0.15, took
        assert lock.holder() == "standby"


def test_leader_that_cannot_renew_steps_down_within_the_renew_deadline():
    lock = MemoryLeaseLock()
    with Runner(lock, "a") as r:
        assert r.started.wait(2)
        lock.fail = ServiceUnavailable("apiserver down")
        t0 = time.monotonic()
        assert wait_for(lambda: not r.e.is_leader(), 2)
        assert time.monotonic() - t0 <= RENEW + 0.05
        assert r.stopped.wait(2) and r.term_over.is_set()


def test_is_leader_turns_false_even_if_the_renew_loop_is_stuck():
    lock = MemoryLeaseLock()
    e = elector(lock, "a")
    assert e.try_acquire_or_renew() and e.is_leader()
    time.sleep(RENEW + 0.05)
    assert not e.is_leader()


def test_lost_leader_stands_again_with_run_forever():
    lock = MemoryLeaseLock()
    with Runner(lock, "a", forever=True) as r:
        assert r.started.wait(2)
        lock.fail = ServiceUnavailable("down")
        assert r.stopped.wait(2)
        r.started.clear()
        lock.fail = None
        assert r.started.wait(LEASE + 1)  # its own old lease; no one else wants it
        assert r.e.is_leader()


def test_racing_candidates_cannot_both_win():
    lock = MemoryLeaseLock()
    es = [elector(lock, f"c{i}") for i in range(8)]
    barrier = threading.Barrier(len(es))
    wins = []

    def go(e):
        barrier.wait()
        if e.try_acquire_or_renew():
            wins.append(e.identity)

    threads = [threading.Thread(target=go, args=(e,)) for e in es]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and lock.holder() == wins[0]


def test_skewed_holder_clock_does_not_let_a_newcomer_steal():
    lock = MemoryLeaseLock()
    skewed = LeaderElector(LeaderElectionConfig(lock=lock, identity="old", lease_duration=LEASE,
                                                renew_deadline=RENEW, retry_period=RETRY,
                                                wall_clock=lambda: time.time() - 3600))
    assert skewed.try_acquire_or_renew()  # renewTime says "an hour ago"
    newcomer = elector(lock, "new")
    assert not newcomer.try_acquire_or_renew()  # first look: counts from now
    time.sleep(LEASE / 2)
    assert not newcomer.try_acquire_or_renew()
    assert skewed.try_acquire_or_renew()  # renewed: the clamp puts it inside the newcomer's window
    time.sleep(RETRY)
    assert not newcomer.try_acquire_or_renew()
    time.sleep(LEASE + RETRY)
    assert newcomer.try_acquire_or_renew()


def test_leader_stops_acting_as_soon_as_it_sees_another_holder():
    lock = MemoryLeaseLock()
    with Runner(lock, "a") as r:
        assert r.started.wait(2)
        thief = elector(lock, "thief")
        lease = lock.get()
        spec = dict(lease["spec"], holderIdentity="thief")
        lock.update(lease, spec)  # e.g. a candidate with a badly skewed clock
        t0 = time.monotonic()
        assert wait_for(lambda: not r.e.is_leader(), 2)
        assert time.monotonic() - t0 < 2 * RETRY + 0.1  # at its next renewal, not at the deadline
        assert r.stopped.wait(2)
        assert thief.identity == lock.holder()
