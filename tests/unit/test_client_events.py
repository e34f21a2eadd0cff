"""client.events.EventRecorder: asynchronous, deferred while busy, aggregated, spam-filtered, bounded."""
from __future__ import annotations

import threading
import time

from client.errors import NotFound
from client.events import ClientEventSink, EventRecorder, FakeEventSink
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


# ------------------------------------------------------ client-go's correlator
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_defaults_are_client_gos():
    rec = EventRecorder(FakeEventSink(), "s")
    assert (rec.spam.burst, rec.spam.qps) == (25, 1.0 / 300.0)          # defaultSpamBurst, defaultSpamQPS
    assert rec.spam.size == rec._cache_size == 4096                       # maxLruCacheEntries
    assert rec.window == 600.0                                            # defaultAggregateIntervalInSeconds


def test_spam_filter_bursts_25_then_refills_one_per_five_minutes():
    sink, clock = FakeEventSink(), Clock()
    rec = EventRecorder(sink, "kubelet", host="n1", clock=clock, aggregate_interval=0)
    pod = make_pod("crashy")
    for i in range(30):
        rec.record(pod, "Warning", "BackOff", f"restart {i}")  # distinct messages: 30 Events wanted
    rec.flush()
    assert len(sink.events) == 25 and rec.filtered == 5
    clock.t += 299
    rec.record(pod, "Warning", "BackOff", "again")
    rec.flush()
    assert len(sink.events) == 25
    clock.t += 1  # 300 s since the bucket ran dry: one token
    rec.record(pod, "Warning", "BackOff", "again")
    rec.record(pod, "Warning", "BackOff", "and again")
    rec.flush()
    assert len(sink.events) == 26 and rec.filtered == 7
    rec.record(make_pod("other"), "Warning", "BackOff", "m")  # per object: another pod has its own bucket
    rec.flush()
    assert len(sink.events) == 27


def test_repeats_within_the_window_patch_the_count_after_it_a_new_event():
    sink, clock = FakeEventSink(), Clock()
    rec = EventRecorder(sink, "kubelet", host="n1", clock=clock, aggregate_interval=0)
    pod = make_pod("web")
    rec.record(pod, "Normal", "Pulled", "image already present")   # any type aggregates, not only warnings
    clock.t += 599
    rec.record(pod, "Normal", "Pulled", "image already present")
    rec.flush()
    assert [e["count"] for e in sink.events] == [2] and sink.patches[0][1] == sink.events[0]["metadata"]["name"]
    clock.t += 601
    rec.record(pod, "Normal", "Pulled", "image already present")
    rec.flush()
    assert [e["count"] for e in sink.events] == [2, 1]
    assert sink.events[1]["source"] == {"component": "kubelet", "host": "n1"}
    assert sink.events[1]["reportingInstance"] == "n1"


def test_aggregation_key_includes_the_object_and_type():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s", aggregate_interval=0)
    a, b = make_pod("a"), make_pod("b")
    for obj, type_ in ((a, "Warning"), (b, "Warning"), (a, "Normal"), (a, "Warning")):
        rec.record(obj, type_, "R", "m")
    rec.flush()
    assert [e["count"] for e in sink.events] == [2, 1, 1]


def test_the_cache_is_an_lru():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s", aggregate_interval=0, cache_size=2)
    pods = {name: make_pod(name) for name in "abc"}
    for name in "abacb":  # "b" was evicted by "c" (the LRU keeps a and c)
        rec.record(pods[name], "Warning", "R", "m")
    rec.flush()
    assert [(e["involvedObject"]["name"], e["count"]) for e in sink.events] == [("a", 2), ("b", 1), ("c", 1), ("b", 1)]


def test_event_names_are_object_dot_hex_nanos():
    sink = FakeEventSink()
    rec = EventRecorder(sink, "s")
    before = time.time_ns()
    rec.record(make_pod("web"), "Normal", "Scheduled", "x")
    rec.flush()
    name = sink.events[0]["metadata"]["name"]
    assert name.startswith("web.") and before <= int(name[4:], 16) <= time.time_ns()


def test_client_sink_writes_through_the_shared_clients_verbs():
    calls = []

    class Writer:
        def create(self, rt, obj, namespace=None):
            calls.append(("create", rt.plural, namespace, obj["reason"]))
            return obj

        def patch(self, rt, name, patch, namespace=None, **kw):
            calls.append(("patch", rt.plural, namespace, name, patch["count"]))
            return {}

    rec = EventRecorder(ClientEventSink(Writer()), "s", aggregate_interval=0)
    pod = make_pod("web", namespace="shop")
    for _ in range(2):
        rec.record(pod, "Warning", "FailedScheduling", "m")
    rec.flush()
    assert calls[0] == ("create", "events", "shop", "FailedScheduling")
    assert calls[1][:3] == ("patch", "events", "shop") and calls[1][4] == 2
