"""The one EventRecorder of every component: asynchronous, deferred under load, aggregated, spam-filtered.

The scheduler writes a ``Scheduled``/``FailedScheduling`` Event per attempt,
the kubelet ``Pulled``/``Created``/``Started``/``Killing`` per container, the
controllers theirs: as many Event writes as the real work, so written naively
they would halve throughput, and an object failing in a loop would fill the
store. What client-go's broadcaster and ``EventCorrelator`` do, done once:

* **asynchronous** - ``record`` only appends to an in-memory queue; one
  writer thread does the HTTP, never the caller's loop or worker;
* **deferred under load** - while ``busy()`` says the component is in a
  burst (the scheduler passes ``Scheduler.busy``: pods waiting, binds in
  flight), the writer only trickles events out (``busy_rate`` per second,
  oldest first) and holds the rest back, each for at most ``max_defer``
  seconds; the real writes get the API server first and the backlog follows
  in the quiet after the burst. On this machine one Event costs the API
  server about as much CPU as a bind. Without ``busy`` events go out at once;
* **aggregated** - an event identical to one seen within ``window`` (same
  involvedObject, reason, message, type and source: a pod failing again for
  the same reason) is not a new object: the existing Event's ``count`` and
  ``lastTimestamp`` are patched, at most once per ``aggregate_interval`` per
  Event (repeats in between are folded into the next patch). The series live
  in an LRU of ``cache_size`` keys, as client-go's ``eventLogger``; an Event
  gone from the server (404 on the patch) is created afresh;
* **spam-filtered** - per object (and source), a token bucket of
  ``spam_burst`` events refilled at ``spam_qps``, as client-go's
  ``EventSourceObjectSpamFilter``: an object always unhealthy costs a burst,
  then one event every five minutes. Filtered events are counted in
  ``filtered``.

Defaults are client-go's (``tools/record/events_cache.go``): burst 25, refill
1/300 s, LRU 4096, window 600 s. Event names are client-go's
``<object>.<hex nanoseconds>``. ``clock`` (monotonic seconds) drives the
window, the aggregation interval and the buckets, so tests control time.
Client-go's second aggregator (ten *similar* events, differing only in the
message, combined into one) is not modelled.

Events are best effort: when more than ``max_pending`` wait, the oldest are
dropped (upstream drops too when its queue is full) and counted in
``dropped``; a failed write is logged at debug level and forgotten.

``EventSink`` is the seam: ``ClientEventSink`` writes core/v1 Events through a
``client.rest.Writer`` (the shared ``Client``, whose Event writes take its lean
transport); ``FakeEventSink`` keeps them in a list for tests.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable, Protocol

from api import resources as R
from api.meta import now as meta_now
from api.resources import ResourceType
from client import bodies
from client.errors import ApiError, NotFound

log = logging.getLogger(__name__)

DEFAULT_SPAM_BURST = 25
DEFAULT_SPAM_QPS = 1.0 / 300.0
DEFAULT_CACHE_SIZE = 4096
DEFAULT_WINDOW = 600.0


class EventSink(Protocol):
    def create(self, event: dict) -> dict: ...

    def patch_count(self, namespace: str, name: str, count: int, last_timestamp: str) -> None: ...


class ClientEventSink:
    """Writes Events through ``client`` (a ``client.rest.Writer``)."""

    def __init__(self, client) -> None:
        self.client = client

    def create(self, event: dict) -> dict:
        return self.client.create(R.EVENTS, event, event["metadata"]["namespace"])

    def patch_count(self, namespace: str, name: str, count: int, last_timestamp: str) -> None:
        self.client.patch(R.EVENTS, name, bodies.event_count_patch(count, last_timestamp), namespace)


class FakeEventSink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.patches: list[tuple[str, str, int]] = []

    def create(self, event: dict) -> dict:
        with self.lock:
            self.events.append(event)
        return event

    def patch_count(self, namespace: str, name: str, count: int, last_timestamp: str) -> None:
        with self.lock:
            self.patches.append((namespace, name, count))
            for ev in self.events:
                if ev["metadata"]["name"] == name and ev["metadata"]["namespace"] == namespace:
                    ev["count"] = count
                    ev["lastTimestamp"] = last_timestamp

    def reasons(self) -> list[str]:
        with self.lock:
            return [e["reason"] for e in self.events]


class SpamFilter:
    """One token bucket per key (``burst`` tokens, ``qps`` refill), the least recently used forgotten first."""

    def __init__(self, burst: int = DEFAULT_SPAM_BURST, qps: float = DEFAULT_SPAM_QPS,
                 clock: Callable[[], float] = time.monotonic, size: int = DEFAULT_CACHE_SIZE):
        self.burst = burst
        self.qps = qps
        self.clock = clock
        self.size = size
        self._buckets: collections.OrderedDict[tuple, list[float]] = collections.OrderedDict()

    def allow(self, key: tuple) -> bool:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(self.burst), now]
            while len(self._buckets) > self.size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.qps)
            bucket[1] = now
        if bucket[0] < 1.0:
            return False
        bucket[0] -= 1.0
        return True


class _Series:
    __slots__ = ("namespace", "name", "count", "last_written", "last_seen", "pending")

    def __init__(self, namespace: str, name: str, now: float):
        self.namespace = namespace
        self.name = name
        self.count = 1
        self.last_written = now
        self.last_seen = now
        self.pending = False


class EventRecorder:
    def __init__(self, sink: EventSink, component: str, instance: str = "", *, host: str = "",
                 busy: Callable[[], bool] | None = None, max_defer: float = 30.0, busy_rate: float = 10.0,
                 max_pending: int = 20000, aggregate_interval: float = 10.0, window: float = DEFAULT_WINDOW,
                 cache_size: int = DEFAULT_CACHE_SIZE, spam_burst: int = DEFAULT_SPAM_BURST,
                 spam_qps: float = DEFAULT_SPAM_QPS, clock: Callable[[], float] = time.monotonic):
        self.sink = sink
        self.component = component
        self.instance = instance or host
        self.host = host
        self.busy = busy or (lambda: False)
        self.max_defer = max_defer
        self.busy_interval = 1.0 / busy_rate if busy_rate > 0 else float("inf")
        self._last_write = 0.0
        self.max_pending = max_pending
        self.aggregate_interval = aggregate_interval
        self.window = window
        self.clock = clock
        self.spam = SpamFilter(spam_burst, spam_qps, clock, cache_size)
        self._cond = threading.Condition()
        self._pending: collections.deque = collections.deque()
        self._series: collections.OrderedDict[tuple, _Series] = collections.OrderedDict()
        self._cache_size = cache_size
        self._writing = 0
        self._idle = False
        self._stop = False
        self._flushing = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.filtered = 0
        self.written = 0
        self.aggregated = 0

    # ------------------------------------------------------------ producers
    def record(self, obj: dict, type: str, reason: str, message: str, action: str = "",
               rt: ResourceType = R.PODS) -> None:
        """Queue an event about ``obj`` (never blocks, never raises); ``rt`` fills a missing kind."""
        item = (time.monotonic(), bodies.object_reference(obj, rt), type, reason, message, action)
        with self._cond:
            self._pending.append(item)
            if len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1
            if self._idle:  # wake the writer only if it sleeps for lack of work, not while it defers
                self._cond.notify()

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
            self._thread.start()

    def stop(self, flush_timeout: float = 2.0) -> None:
        self.flush(flush_timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is written (ignoring ``busy``); False on timeout.

        Without a writer thread (``start`` not called) the events are written
        on the calling thread.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing = True
            self._cond.notify_all()
            try:
                while self._pending or self._writing:
                    if self._thread is None:
                        self._cond.release()
                        try:
                            self._drain_once()
                        finally:
                            self._cond.acquire()
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, 0.05))
                return True
            finally:
                self._flushing = False

    # ---------------------------------------------------------------- writer
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    due = self._next_series_due()
                    if due is not None and due <= self.clock():
                        break
                    self._idle = True
                    try:
                        self._cond.wait(None if due is None else max(0.01, due - self.clock()))
                    finally:
                        self._idle = False
                if self._stop and not self._pending:
                    return
                oldest = self._pending[0][0] if self._pending else None
            if oldest is None:
                self._flush_series()
                continue
            if not self._flushing and not self._stop and self.busy():
                now = time.monotonic()
                hold = min(self.max_defer - (now - oldest), self.busy_interval - (now - self._last_write))
                if hold > 0:
                    with self._cond:
                        self._cond.wait(min(0.05, hold))
                    continue
            self._last_write = time.monotonic()
            self._drain_once()

    def _next_series_due(self) -> float | None:
        due = None
        for s in self._series.values():
            if s.pending:
                t = s.last_written + self.aggregate_interval
                due = t if due is None or t < due else due
        return due

    def _flush_series(self) -> None:
        """Write the counts that were folded in since their Event was last written."""
        now = self.clock()
        with self._cond:
            due = [s for s in self._series.values() if s.pending and s.last_written + self.aggregate_interval <= now]
        for s in due:
            s.pending = False
            s.last_written = now
            try:
                self.sink.patch_count(s.namespace, s.name, s.count, meta_now())
                self.written += 1
            except Exception as e:  # best effort
                log.debug("event count patch failed: %s", e)

    def _drain_once(self) -> None:
        with self._cond:
            if not self._pending:
                return
            item = self._pending.popleft()
            self._writing += 1
        try:
            self._write(item)
        except Exception as e:  # best effort: log and move on
            log.debug("event write failed: %s", e)
        finally:
            with self._cond:
                self._writing -= 1
                self._cond.notify_all()

    def _write(self, item: tuple) -> None:
        _, ref, type_, reason, message, action = item
        obj_key = (ref["kind"], ref.get("namespace", ""), ref["name"], ref.get("uid", ""), ref["apiVersion"])
        if not self.spam.allow(obj_key):
            self.filtered += 1
            return
        key = (obj_key, type_, reason, message)
        now = self.clock()
        series = self._series.get(key)
        if series is not None and now - series.last_seen > self.window:
            series = None  # an old repeat: a new Event, as client-go's aggregation interval has it
        if series is not None:
            series.count += 1
            series.last_seen = now
            self._series.move_to_end(key)
            if now - series.last_written < self.aggregate_interval:
                self.aggregated += 1
                series.pending = True  # written by _flush_series when the interval is up
                return
            try:
                self.sink.patch_count(series.namespace, series.name, series.count, meta_now())
                series.pending = False
                series.last_written = now
                self.written += 1
                return
            except NotFound:
                pass  # expired on the server: write a new one
            except ApiError:
                raise
        event = bodies.event(ref, reason, message, type=type_, component=self.component, host=self.host,
                             instance=self.instance, action=action)
        self.sink.create(event)
        self.written += 1
        md = event["metadata"]
        with self._cond:
            self._series[key] = _Series(md["namespace"], md["name"], now)
            self._series.move_to_end(key)
            while len(self._series) > self._cache_size:
                self._series.popitem(last=False)


__all__ = ["EventRecorder", "EventSink", "ClientEventSink", "FakeEventSink", "SpamFilter",
           "DEFAULT_SPAM_BURST", "DEFAULT_SPAM_QPS", "DEFAULT_CACHE_SIZE", "DEFAULT_WINDOW"]
