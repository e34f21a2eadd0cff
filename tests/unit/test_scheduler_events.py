"""The event recorder: asynchronous, deferred while the scheduler is busy, aggregated, bounded."""
from __future__ import annotations

import threading
import time

from client.errors import NotFound
from scheduler.events import EventRecorder, FakeEventSink
from scheduler.testing import make_pod


def wait_for(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_event_shape():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "default-scheduler", "host_1")
    pod = make_pod("web", namespace="shop")
    rec.record(pod, "Normal", "Scheduled", "Successfully assigned shop/web to n1", "Binding")
    assert rec.flush()
    [ev] = sink.events
    assert ev["metadata"]["namespace"] == "shop" and ev["metadata"]["name"].startswith("web.")
    assert ev["involvedObject"] == {"kind": "Pod", "apiVersion": "v1", "name": "web", "namespace": "shop",
                                    "uid": pod["metadata"]["uid"], "resourceVersion": "1"}
    assert (ev["type"], ev["reason"], ev["message"], ev["action"]) == \
        ("Normal", "Scheduled", "Successfully assigned shop/web to n1", "Binding")
    assert ev["source"] == {"component": "default-scheduler"} and ev["reportingInstance"] == "host_1"
    assert ev["count"] == 1 and ev["firstTimestamp"] == ev["lastTimestamp"]


def test_writes_happen_on_the_writer_thread():
    seen = []

    class Sink(FakeEventSink):
        def create(self, event):
            seen.append(threading.current_thread().name)
            return super().create(event)

    rec = EventRecorder(Sink(), "s")
    rec.start()
    try:
        rec.record(make_pod("a"), "Normal", "Scheduled", "x")
        assert wait_for(lambda: seen)
        assert seen == ["event-writer"]
    finally:
        rec.stop()


def test_deferred_while_busy_but_not_forever():
    busy = [True]
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s", busy=lambda: busy[0], max_defer=0.3, busy_rate=0)
    rec.start()
    try:
        rec.record(make_pod("a"), "Normal", "Scheduled", "x")
        time.sleep(0.15)
        assert sink.events == []          # held back while the scheduler is busy
        assert wait_for(lambda: sink.events, 2)  # ...but at most max_defer
        rec.record(make_pod("b"), "Normal", "Scheduled", "y")
        busy[0] = False
        assert wait_for(lambda: len(sink.events) == 2, 1)
    finally:
        rec.stop()


def test_trickle_while_busy():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s", busy=lambda: True, max_defer=60, busy_rate=10)
    rec.start()
    try:
        for i in range(50):
            rec.record(make_pod(f"p{i}"), "Normal", "Scheduled", "x")
        time.sleep(0.5)
        assert 3 <= len(sink.events) <= 8  # about 10/s, not all 50
    finally:
        rec.stop()


def test_flush_ignores_busy():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s", busy=lambda: True, max_defer=60)
    rec.start()
    try:
        for i in range(5):
            rec.record(make_pod(f"p{i}"), "Normal", "Scheduled", "x")
        assert rec.flush(3)
        assert len(sink.events) == 5
    finally:
        rec.stop()


def test_identical_warnings_become_a_count():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s", aggregate_interval=0)
    pod = make_pod("a")
    for _ in range(4):
        rec.record(pod, "Warning", "FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu.")
    rec.record(pod, "Warning", "FailedScheduling", "0/2 nodes are available: 2 Insufficient cpu.")
    rec.flush()
    assert [e["count"] for e in sink.events] == [4, 1]
    assert len(sink.patches) == 3


def test_counts_within_the_interval_are_written_later():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s", aggregate_interval=0.3)
    rec.start()
    try:
        pod = make_pod("a")
        for _ in range(3):
            rec.record(pod, "Warning", "FailedScheduling", "m")
        rec.flush()
        assert sink.events[0]["count"] == 1 and sink.patches == []
        assert wait_for(lambda: sink.events[0]["count"] == 3, 3)
    finally:
        rec.stop()


def test_expired_event_is_recreated():
    class Sink(FakeEventSink):
        def patch_count(self, namespace, name, count, last_timestamp):
            raise NotFound("events not found")

    sink = Sink()
    rec = EventRecorder(sink, "s", aggregate_interval=0)
    for _ in range(2):
        rec.record(make_pod("a"), "Warning", "FailedScheduling", "m")
    rec.flush()
    assert len(sink.events) == 2


def test_bounded_queue_drops_oldest():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s", max_pending=3)
    for i in range(5):
        rec.record(make_pod(f"p{i}"), "Normal", "Scheduled", str(i))
    rec.flush()
    assert [e["message"] for e in sink.events] == ["2", "3", "4"] and rec.dropped == 2


def test_sink_errors_are_swallowed():
    class Sink(FakeEventSink):
        def create(self, event):
            raise RuntimeError("server down")

    rec = EventRecorder(Sink(), "s")
    rec.record(make_pod("a"), "Normal", "Scheduled", "x")
    assert rec.flush(1)
