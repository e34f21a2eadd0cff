"""Events about pods (``Scheduled``, ``FailedScheduling``), written cheaply and off the hot path.

Every placed pod gets a Normal ``Scheduled`` event, every failed attempt a
Warning ``FailedScheduling`` one: as many event writes as binds, so written
naively they would halve throughput. Three things keep them cheap, as
client-go's event broadcaster and correlator do:

* **asynchronous** - ``record`` only appends to an in-memory queue; one
  writer thread does the HTTP, never the scheduling loop or a bind worker;
* **deferred under load** - while ``busy()`` says the scheduler is in a
  burst (pods waiting, binds in flight, or 20+ binds in the last second:
  ``Scheduler.busy``), the writer only trickles events out
  (``busy_rate`` per second, oldest first) and holds the rest back, each for
  at most ``max_defer`` seconds; binds get the API server first and the
  backlog follows in the quiet right after a burst. On this machine one
  Event costs the API server about as much CPU as a bind, so writing them
  during a burst would cost a third of the throughput. When the scheduler
  is idle (one pod at a time) events are written at once;
* **aggregated** - an event identical to a recent one (same object, type,
  reason and message: a pod failing again for the same reason) is not a new
  object: the existing Event's ``count`` and ``lastTimestamp`` are patched,
  at most once per ``aggregate_interval`` per event.

Events are best effort: when more than ``max_pending`` wait, the oldest are
dropped (upstream drops too when its queue is full) and counted in
``dropped``.

``EventSink`` is the seam: ``ClientEventSink`` writes core/v1 Events through
the lean writer (``client.lean``) or the shared client; ``FakeEventSink`` keeps
them in a list for tests.
"""
from __future__ import annotations

import collections
import datetime as _dt
import logging
import threading
import time
from typing import Any, Callable, Protocol

from api import resources as R
from client.errors import ApiError, NotFound

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def create(self, event: dict) -> dict: ...

    def patch_count(self, namespace: str, name: str, count: int, last_timestamp: str) -> None: ...


class ClientEventSink:
    """Creates through ``writer`` (``client.lean.LeanWriter``) when given, else the shared client."""

    def __init__(self, client: Any, writer: Any | None = None):
        self.client = client
        self.writer = writer

    def create(self, event: dict) -> dict:
        if self.writer is not None:
            return self.writer.create_event(event)
        return self.client.create(R.EVENTS, event, event["metadata"]["namespace"])

    def patch_count(self, namespace: str, name: str, count: int, last_timestamp: str) -> None:
        self.client.patch(R.EVENTS, name, {"count": count, "lastTimestamp": last_timestamp}, namespace)


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


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Series:
    __slots__ = ("namespace", "name", "count", "last_written", "pending")

    def __init__(self, namespace: str, name: str):
        self.namespace = namespace
        self.name = name
        self.count = 1
        self.last_written = 0.0
        self.pending = False


class EventRecorder:
    def __init__(self, sink: EventSink, component: str, instance: str = "", *,
                 busy: Callable[[], bool] | None = None, max_defer: float = 30.0, busy_rate: float = 10.0,
                 max_pending: int = 20000, aggregate_interval: float = 10.0, series_cache: int = 4096):
        self.sink = sink
        self.component = component
        self.instance = instance
        self.busy = busy or (lambda: False)
        self.max_defer = max_defer
        self.busy_interval = 1.0 / busy_rate if busy_rate > 0 else float("inf")
        self._last_write = 0.0
        self.max_pending = max_pending
        self.aggregate_interval = aggregate_interval
        self._cond = threading.Condition()
        self._pending: collections.deque = collections.deque()
        self._series: collections.OrderedDict[tuple, _Series] = collections.OrderedDict()
        self._series_cache = series_cache
        self._seq = 0
        self._writing = 0
        self._idle = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0
        self.aggregated = 0

    # ------------------------------------------------------------ producers
    def record(self, obj: dict, type: str, reason: str, message: str, action: str = "") -> None:
        """Queue an event about ``obj`` (never blocks, never raises)."""
        md = obj.get("metadata") or {}
        item = (time.monotonic(), md.get("namespace") or "default", md.get("name") or "", md.get("uid") or "",
                obj.get("kind") or "Pod", obj.get("apiVersion") or "v1", md.get("resourceVersion") or "",
                type, reason, message, action)
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
        """Wait until every queued event is written (ignoring ``busy``); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing = True
            self._cond.notify_all()
            try:
                while self._pending or self._writing:
                    if self._thread is None:
                        self._cond.release()
                        try:
                            self._drain_once(force=True)
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

    _flushing = False

    # ---------------------------------------------------------------- writer
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    due = self._next_series_due()
                    if due is not None and due <= time.monotonic():
                        break
                    self._idle = True
                    try:
                        self._cond.wait(None if due is None else max(0.01, due - time.monotonic()))
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
        """Write the counts that were folded in since their series was last written."""
        now = time.monotonic()
        with self._cond:
            due = [s for s in self._series.values() if s.pending and s.last_written + self.aggregate_interval <= now]
        for s in due:
            s.pending = False
            s.last_written = now
            try:
                self.sink.patch_count(s.namespace, s.name, s.count, _now())
                self.written += 1
            except Exception as e:  # best effort
                log.debug("event count patch failed: %s", e)

    def _drain_once(self, force: bool = False) -> None:
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
        _, ns, name, uid, kind, api_version, rv, type_, reason, message, action = item
        key = (ns, name, uid, type_, reason, message)
        now = time.monotonic()
        series = self._series.get(key)
        if series is not None:
            series.count += 1
            self._series.move_to_end(key)
            if now - series.last_written < self.aggregate_interval:
                self.aggregated += 1
                series.pending = True  # written by _flush_series when the interval is up
                return
            try:
                self.sink.patch_count(series.namespace, series.name, series.count, _now())
                series.pending = False
                series.last_written = now
                self.written += 1
                return
            except NotFound:
                self._series.pop(key, None)  # expired on the server: write a new one
            except ApiError:
                raise
        ts = _now()
        self._seq += 1
        ev_name = f"{name}.{time.time_ns():x}{self._seq % 1000:03d}"
        ref = {"kind": kind, "apiVersion": api_version, "name": name, "namespace": ns}
        if uid:
            ref["uid"] = uid
        if rv:
            ref["resourceVersion"] = rv
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": ev_name, "namespace": ns},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component},
            "count": 1, "firstTimestamp": ts, "lastTimestamp": ts,
            "reportingComponent": self.component, "reportingInstance": self.instance,
        }
        if action:
            event["action"] = action
        self.sink.create(event)
        self.written += 1
        if type_ == "Warning":  # only failures repeat; don't keep a series per Scheduled event
            s = _Series(ns, ev_name)
            s.last_written = now
            with self._cond:
                self._series[key] = s
                while len(self._series) > self._series_cache:
                    self._series.popitem(last=False)


__all__ = ["EventRecorder", "EventSink", "ClientEventSink", "FakeEventSink"]
