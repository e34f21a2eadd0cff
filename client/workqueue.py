"""The work queue between informer events and a controller's ``sync(key)``.

Every reconcile loop in pocketkube has the same shape (docs/design.md, style 1-2):
watch handlers only ``add(key)``; worker threads ``get()`` a key, call
``sync(key)``, then ``done(key)``. The queue carries the guarantees that keep
``sync`` simple, exactly as client-go's workqueue does:

* **dedupe**: a key added many times while waiting is processed once, so a
  burst of events costs one sync;
* **one at a time per key**: a key being processed is never handed to a
  second worker; if it is added meanwhile it is marked dirty and queued again
  when ``done(key)`` is called, so the latest state is always synced after
  the last event;
* **delays**: ``add_after(key, seconds)`` for "check again later"; a key
  already waiting keeps the earlier of its two deadlines;
* **rate-limited retries**: ``add_rate_limited(key)`` requeues after a
  per-key exponential backoff (5 ms, 10 ms, 20 ms ... capped at 1000 s);
  ``forget(key)`` after a success resets it. Retry policy stays here, out of
  business logic.

There is no timer thread and no polling: delayed keys sit in a heap and
``get()`` waits on the condition variable exactly until the earliest
deadline (or an ``add`` wakes it).

Typical worker::

    while (key := queue.get()) is not None:
        try:
            sync(key)
            queue.forget(key)
        except Exception:
            queue.add_rate_limited(key)
        finally:
            queue.done(key)
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from typing import Hashable


class ExponentialBackoff:
    """Per-key delay ``base * 2**failures``, capped; not thread-safe on its own."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0):
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        """The delay before the next retry of ``key``; counts one more failure."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        if n >= 64:  # 2**64 * base is far past any cap; avoid float overflow
            return self.max_delay
        return min(self.base_delay * (2 ** n), self.max_delay)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class WorkQueue:
    """Deduplicating, per-key exclusive, delaying, rate-limited queue (see module docstring)."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0, *,
                 rate_limiter: ExponentialBackoff | None = None, name: str = ""):
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()        # queued or to be requeued on done()
        self._processing: set[Hashable] = set()   # handed out, done() not yet called
        self._waiting: dict[Hashable, float] = {}  # key -> monotonic deadline of add_after
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._limiter = rate_limiter or ExponentialBackoff(base_delay, max_delay)
        self._shutting_down = False

    # --------------------------------------------------------------- adding
    def add(self, key: Hashable) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: Hashable) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds have passed (at once if ``delay <= 0``)."""
        with self._cond:
            if self._shutting_down:
                return
            if delay <= 0:
                self._add_locked(key)
                return
            deadline = time.monotonic() + delay
            current = self._waiting.get(key)
            if current is not None and current <= deadline:
                return
            self._waiting[key] = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), key))
            # A waiting get() may need to wake earlier than it planned.
            self._cond.notify_all()

    def add_rate_limited(self, key: Hashable) -> None:
        """Requeue ``key`` after its backoff delay, which doubles on every call until ``forget``."""
        with self._cond:
            delay = self._limiter.when(key)
        self.add_after(key, delay)

    def forget(self, key: Hashable) -> None:
        """Reset the backoff of ``key`` (call after a successful sync)."""
        with self._cond:
            self._limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        with self._cond:
            return self._limiter.num_requeues(key)

    # ------------------------------------------------------------ consuming
    def get(self, timeout: float | None = None) -> Hashable | None:
        """The next key, marked as processing; None on timeout or after shutdown."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                now = time.monotonic()
                self._promote_due(now)
                if self._queue:
                    key = self._queue.popleft()
                    self._processing.add(key)
                    self._dirty.discard(key)
                    return key
                wait = None if end is None else end - now
                if wait is not None and wait <= 0:
                    return None
                if self._heap:
                    until_due = self._heap[0][0] - now
                    wait = until_due if wait is None else min(wait, until_due)
                self._cond.wait(wait)

    def done(self, key: Hashable) -> None:
        """Mark ``key`` processed; if it was added meanwhile, queue it again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutting_down:
                self._queue.append(key)
                self._cond.notify()

    def _promote_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            deadline, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) != deadline:
                continue  # superseded by an earlier add_after of the same key
            del self._waiting[key]
            self._add_locked(key)

    # ------------------------------------------------------------- lifecycle
    def shutdown(self) -> None:
        """Stop handing out keys: every blocked and future ``get()`` returns None."""
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down

    def len(self) -> int:
        """Keys ready to be handed out (not counting delayed or in-process ones)."""
        with self._cond:
            self._promote_due(time.monotonic())
            return len(self._queue)

    __len__ = len

    def num_waiting(self) -> int:
        """Keys scheduled by ``add_after``/``add_rate_limited`` and not yet due."""
        with self._cond:
            return len(self._waiting)

    def num_processing(self) -> int:
        """Keys handed out by get() and not yet done()."""
        with self._cond:
            return len(self._processing)

    def is_processing(self, key: Hashable) -> bool:
        with self._cond:
            return key in self._processing


__all__ = ["WorkQueue", "ExponentialBackoff"]
