"""WorkQueue guarantees: dedupe, per-key exclusivity, requeue on done, delays, backoff, shutdown."""
from __future__ import annotations

import threading
import time

import pytest

from client.workqueue import ExponentialBackoff, WorkQueue


def test_add_dedupes_while_queued():
    q = WorkQueue()
    for key in ("a", "b", "a", "a", "c", "b"):
        q.add(key)
    assert q.len() == 3
    assert [q.get(0), q.get(0), q.get(0)] == ["a", "b", "c"]  # FIFO
    assert q.get(timeout=0) is None


def test_key_in_processing_is_not_handed_out_again_until_done():
    q = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")  # re-added while processing: marked dirty, not queued
    assert q.len() == 0
    assert q.get(timeout=0.02) is None
    q.add("a")  # still only once
    q.done("a")
    assert q.len() == 1
    assert q.get(0) == "a"
    q.done("a")
    assert q.get(timeout=0) is None


def test_done_without_readd_does_not_requeue():
    q = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    assert q.is_processing("a")
    q.done("a")
    assert not q.is_processing("a")
    assert q.len() == 0


def test_no_concurrent_processing_of_one_key_with_threads():
    q = WorkQueue()
    keys = [f"k{i}" for i in range(5)]
    active: dict[str, int] = {k: 0 for k in keys}
    processed: dict[str, int] = {k: 0 for k in keys}
    violations = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker():
        while True:
            key = q.get(timeout=1.0)
            if key is None:
                return
            with lock:
                active[key] += 1
                if active[key] > 1:
                    violations.append(key)
            time.sleep(0.0005)
            with lock:
                active[key] -= 1
                processed[key] += 1
            q.done(key)

    def producer():
        i = 0
        while not stop.is_set():
            q.add(keys[i % len(keys)])
            i += 1
            if i % 20 == 0:
                time.sleep(0.0005)

    workers = [threading.Thread(target=worker) for _ in range(6)]
    producers = [threading.Thread(target=producer) for _ in range(2)]
    for t in workers + producers:
        t.start()
    time.sleep(0.3)
    stop.set()
    for t in producers:
        t.join(2)
    # Let the queue drain, then stop the workers.
    deadline = time.monotonic() + 2
    while (q.len() or any(q.is_processing(k) for k in keys)) and time.monotonic() < deadline:
        time.sleep(0.01)
    q.shutdown()
    for t in workers:
        t.join(2)
    assert not any(t.is_alive() for t in workers)
    assert violations == []
    assert all(n > 0 for n in processed.values())


def test_readd_during_processing_is_processed_after_done_by_another_worker():
    q = WorkQueue()
    q.add("a")
    first = q.get(0)
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=2)))
    t.start()
    q.add("a")
    time.sleep(0.05)
    assert got == []  # the second worker waits while "a" is processing
    q.done(first)
    t.join(2)
    assert got == ["a"]


def test_get_blocks_until_add():
    q = WorkQueue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=2)))
    t.start()
    time.sleep(0.02)
    q.add("x")
    t.join(2)
    assert got == ["x"]


def test_get_timeout_returns_none():
    q = WorkQueue()
    start = time.monotonic()
    assert q.get(timeout=0.05) is None
    assert 0.04 <= time.monotonic() - start < 0.5


def test_add_after_orders_by_deadline():
    q = WorkQueue()
    q.add_after("late", 0.12)
    q.add_after("early", 0.04)
    q.add_after("mid", 0.08)
    q.add_after("now", 0)
    assert q.len() == 1 and q.num_waiting() == 3
    start = time.monotonic()
    out = []
    for _ in range(4):
        key = q.get(timeout=1)
        out.append((key, time.monotonic() - start))
        q.done(key)
    assert [k for k, _ in out] == ["now", "early", "mid", "late"]
    assert out[1][1] >= 0.035 and out[3][1] >= 0.11
    assert out[3][1] < 0.6


def test_add_after_keeps_earliest_deadline_and_dedupes():
    q = WorkQueue()
    q.add_after("a", 5.0)
    q.add_after("a", 0.03)  # earlier wins
    q.add_after("a", 10.0)  # later is ignored
    assert q.num_waiting() == 1
    assert q.get(timeout=1) == "a"
    q.done("a")
    assert q.get(timeout=0.05) is None  # the superseded heap entries never fire


def test_add_after_wakes_a_waiting_get_earlier():
    q = WorkQueue()
    q.add_after("slow", 10.0)
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=2)))
    t.start()
    time.sleep(0.02)
    q.add_after("fast", 0.02)
    t.join(2)
    assert got == ["fast"]


def test_rate_limited_backoff_grows_and_forget_resets():
    q = WorkQueue(base_delay=0.01, max_delay=0.05)
    delays = []
    for _ in range(5):
        start = time.monotonic()
        q.add_rate_limited("k")
        assert q.get(timeout=1) == "k"
        delays.append(time.monotonic() - start)
        q.done("k")
    assert q.num_requeues("k") == 5
    # 10, 20, 40, 50 (cap), 50 ms
    assert delays[0] >= 0.009 and delays[1] >= 0.019 and delays[2] >= 0.039
    assert delays[4] < 0.3  # capped
    q.forget("k")
    assert q.num_requeues("k") == 0
    start = time.monotonic()
    q.add_rate_limited("k")
    assert q.get(timeout=1) == "k"
    assert time.monotonic() - start < 0.04


def test_exponential_backoff_schedule():
    b = ExponentialBackoff()  # client-go's defaults
    assert [b.when("x") for _ in range(4)] == [0.005, 0.01, 0.02, 0.04]
    for _ in range(100):
        d = b.when("x")
    assert d == 1000.0
    assert b.when("y") == 0.005  # per key
    b.forget("x")
    assert b.num_requeues("x") == 0


def test_shutdown_unblocks_getters_and_stops_adds():
    q = WorkQueue()
    got = []
    threads = [threading.Thread(target=lambda: got.append(q.get())) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.02)
    q.shutdown()
    for t in threads:
        t.join(2)
    assert got == [None, None, None]
    assert q.shutting_down
    q.add("a")
    q.add_after("b", 0.01)
    assert q.get(timeout=0) is None
    assert len(q) == 0


@pytest.mark.parametrize("n", [1, 50])
def test_len(n):
    q = WorkQueue()
    for i in range(n):
        q.add(i)
    assert len(q) == n == q.len()
