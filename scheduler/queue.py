"""The scheduling queue: which pending pod to try next, and when to try a failed one again.

Upstream's PriorityQueue, three places a pending pod can wait:

* **active** - ready to be tried now; highest ``spec.priority`` first, then
  the order in which pods arrived;
* **back-off** - tried recently; the wait doubles with every failed attempt,
  1 s, 2 s, 4 s, 8 s, then 10 s at most (``initial_backoff``,
  ``max_backoff``), so a pod that keeps failing for a transient reason (an
  API error) costs little;
* **unschedulable** - no node fits and nothing has changed since. Such pods
  are *not* retried on a timer: they wait for a cluster event that could
  make them fit - a node added or changed (``NodeAdd``/``NodeUpdate``), a
  bound pod deleted or finished (``AssignedPodDelete``) - and then
  ``move_all_to_active_or_backoff`` sends each to active, or to back-off if
  its back-off has not run out yet. As a safety net (upstream's
  ``podMaxInUnschedulablePodsDuration``) a pod that has waited
  ``max_unschedulable_duration`` (5 min) is retried anyway.

An event that arrives *while* a pod is being tried could be the very event
that makes it fit, and would be lost if the pod then went to unschedulable.
So every pop starts a new scheduling cycle, and a failed pod whose cycle
began before the last move request goes to back-off instead
(``move_request_cycle``, as upstream).

An update to a pending pod replaces the stored object; if the pod was
unschedulable and its *spec or labels* changed (a toleration added, a
request lowered), it is moved to active/back-off; status-only updates (our
own PodScheduled condition) leave it where it is, so writing the condition
never re-triggers scheduling.

Nothing polls: ``pop`` sleeps on a condition variable until a pod is active,
or exactly until the earliest back-off expires (or the unschedulable
safety-net check is due), whichever comes first.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from scheduler.types import pod_key

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"
IN_FLIGHT = "in-flight"

# Cluster events that can make an unschedulable pod fit.
NODE_ADD = "NodeAdd"
NODE_UPDATE = "NodeUpdate"
ASSIGNED_POD_DELETE = "AssignedPodDelete"
UNSCHEDULABLE_TIMEOUT = "UnschedulableTimeout"
FORCE = "Force"


@dataclass(eq=False)
class QueuedPod:
    """A pending pod and its scheduling history."""

    pod: dict
    key: str
    timestamp: float                # when it first entered the queue (ordering, latency)
    attempts: int = 0
    last_attempt: float = 0.0      # when the last attempt started (back-off base)
    where: str = ""
    cycle: int = 0                  # scheduling cycle of the last pop
    seq: int = 0                    # invalidates stale heap entries
    unschedulable_since: float = 0.0
    last_failure: str = ""
    updated_in_flight: bool = False
    deleted: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def priority(self) -> int:
        return int((self.pod.get("spec") or {}).get("priority") or 0)


def _spec_changed(old: dict, new: dict) -> bool:
    """Did anything that scheduling looks at change (spec, labels, annotations)?"""
    if old.get("spec") != new.get("spec"):
        return True
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return om.get("labels") != nm.get("labels") or om.get("annotations") != nm.get("annotations")


class SchedulingQueue:
    def __init__(self, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable_duration: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable_duration = max_unschedulable_duration
        self.clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, str]] = []   # (-priority, timestamp, seq, key)
        self._backoff: list[tuple[float, int, str]] = []        # (expiry, seq, key)
        self._unschedulable: dict[str, QueuedPod] = {}
        self._seq = itertools.count(1)
        self._closed = False
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._next_leftover_check = clock() + min(30.0, max_unschedulable_duration)

    # ---------------------------------------------------------------- helpers
    def backoff_duration(self, attempts: int) -> float:
        d = self.initial_backoff
        for _ in range(1, attempts):
            d *= 2
            if d >= self.max_backoff:
                return self.max_backoff
        return min(d, self.max_backoff)

    def backoff_expiry(self, qp: QueuedPod) -> float:
        return qp.last_attempt + self.backoff_duration(qp.attempts)

    def _push_active(self, qp: QueuedPod) -> None:
        qp.where = ACTIVE
        qp.seq = next(self._seq)
        heapq.heappush(self._active, (-qp.priority, qp.timestamp, qp.seq, qp.key))
        self._cond.notify()

    def _push_backoff(self, qp: QueuedPod) -> None:
        qp.where = BACKOFF
        qp.seq = next(self._seq)
        heapq.heappush(self._backoff, (self.backoff_expiry(qp), qp.seq, qp.key))
        self._cond.notify()  # the popper may need to wake earlier

    def _to_unschedulable(self, qp: QueuedPod) -> None:
        qp.where = UNSCHEDULABLE
        qp.seq = next(self._seq)
        qp.unschedulable_since = self.clock()
        self._unschedulable[qp.key] = qp

    def _detach(self, qp: QueuedPod) -> None:
        """Take ``qp`` out of wherever it waits (heap entries go stale by seq)."""
        if qp.where == UNSCHEDULABLE:
            self._unschedulable.pop(qp.key, None)
        qp.seq = next(self._seq)
        qp.where = ""

    def _activate_or_backoff(self, qp: QueuedPod, now: float) -> None:
        self._detach(qp)
        if qp.attempts and self.backoff_expiry(qp) > now:
            self._push_backoff(qp)
        else:
            self._push_active(qp)

    # ----------------------------------------------------------------- events
    def add(self, pod: dict) -> None:
        """A new pending pod (or one seen again): straight to active unless already known."""
        key = pod_key(pod)
        with self._cond:
            if self._closed:
                return
            qp = self._pods.get(key)
            if qp is not None:
                self._update_locked(qp, pod)
                return
            qp = QueuedPod(pod=pod, key=key, timestamp=self.clock())
            self._pods[key] = qp
            self._push_active(qp)

    def update(self, old: dict | None, new: dict) -> None:
        key = pod_key(new)
        with self._cond:
            if self._closed:
                return
            qp = self._pods.get(key)
            if qp is None:
                qp = QueuedPod(pod=new, key=key, timestamp=self.clock())
                self._pods[key] = qp
                self._push_active(qp)
                return
            self._update_locked(qp, new)

    def _update_locked(self, qp: QueuedPod, new: dict) -> None:
        old = qp.pod
        qp.pod = new
        if qp.where == IN_FLIGHT:
            if _spec_changed(old, new):
                qp.updated_in_flight = True
            return
        if qp.where == UNSCHEDULABLE and _spec_changed(old, new):
            self._activate_or_backoff(qp, self.clock())
        elif qp.where == ACTIVE and old.get("spec", {}).get("priority") != new.get("spec", {}).get("priority"):
            self._detach(qp)
            self._push_active(qp)

    def delete(self, pod_or_key: dict | str) -> None:
        """The pod is gone or bound: forget it wherever it waits."""
        key = pod_or_key if isinstance(pod_or_key, str) else pod_key(pod_or_key)
        with self._cond:
            qp = self._pods.pop(key, None)
            if qp is None:
                return
            if qp.where == IN_FLIGHT:
                qp.deleted = True
            self._detach(qp)

    def move_all_to_active_or_backoff(self, event: str) -> int:
        """A cluster event that may make unschedulable pods fit; returns how many moved."""
        with self._cond:
            self.move_request_cycle = self.scheduling_cycle
            if not self._unschedulable:
                return 0
            now = self.clock()
            moved = list(self._unschedulable.values())
            for qp in moved:
                qp.extra["moved_by"] = event
                self._activate_or_backoff(qp, now)
            return len(moved)

    # --------------------------------------------------------------- consuming
    def pop(self, timeout: float | None = None) -> QueuedPod | None:
        """The next pod to try, marked in flight; None on timeout or after ``close``."""
        end = None if timeout is None else self.clock() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = self.clock()
                self._flush_backoff(now)
                if now >= self._next_leftover_check:
                    self._flush_leftover(now)
                while self._active:
                    _, _, seq, key = heapq.heappop(self._active)
                    qp = self._pods.get(key)
                    if qp is None or qp.seq != seq or qp.where != ACTIVE:
                        continue  # stale entry
                    self.scheduling_cycle += 1
                    qp.cycle = self.scheduling_cycle
                    qp.where = IN_FLIGHT
                    qp.attempts += 1
                    qp.last_attempt = now
                    qp.updated_in_flight = False
                    return qp
                wait = self._next_leftover_check - now
                if self._backoff:
                    wait = min(wait, self._backoff[0][0] - now)
                if end is not None:
                    if end - now <= 0:
                        return None
                    wait = min(wait, end - now)
                self._cond.wait(max(wait, 0.001))

    def _flush_backoff(self, now: float) -> None:
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            qp = self._pods.get(key)
            if qp is None or qp.seq != seq or qp.where != BACKOFF:
                continue
            self._push_active(qp)

    def _flush_leftover(self, now: float) -> None:
        self._next_leftover_check = now + min(30.0, self.max_unschedulable_duration)
        for qp in list(self._unschedulable.values()):
            if now - qp.unschedulable_since >= self.max_unschedulable_duration:
                qp.extra["moved_by"] = UNSCHEDULABLE_TIMEOUT
                self._activate_or_backoff(qp, now)

    def done(self, key: str) -> None:
        """The pod was placed (assumed and handed to the binder): it leaves the queue."""
        with self._cond:
            qp = self._pods.get(key)
            if qp is not None and qp.where == IN_FLIGHT:
                del self._pods[key]

    def requeue(self, qp: QueuedPod, *, unschedulable: bool, reason: str = "") -> None:
        """After a failed attempt: unschedulable (waits for an event) or back-off (an error).

        A pod updated or touched by a move request during its attempt goes to
        back-off instead of unschedulable; a pod deleted meanwhile is dropped.
        """
        with self._cond:
            qp.last_failure = reason
            if qp.deleted or self._closed or self._pods.get(qp.key) is not qp:
                return
            now = self.clock()
            if unschedulable and not qp.updated_in_flight and self.move_request_cycle < qp.cycle:
                self._to_unschedulable(qp)
            else:
                qp.where = ""
                if self.backoff_expiry(qp) > now:
                    self._push_backoff(qp)
                else:
                    self._push_active(qp)

    def add_back(self, qp: QueuedPod) -> None:
        """Return an in-flight pod untried (e.g. leadership lost before binding)."""
        with self._cond:
            if qp.deleted or self._closed:
                return
            if self._pods.get(qp.key) is not qp:
                if qp.key in self._pods:
                    return
                self._pods[qp.key] = qp
            qp.attempts = max(0, qp.attempts - 1)
            qp.where = ""
            self._push_active(qp)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -------------------------------------------------------------- inspection
    def where(self, key: str) -> str | None:
        with self._cond:
            qp = self._pods.get(key)
            return qp.where if qp else None

    def get(self, key: str) -> QueuedPod | None:
        with self._cond:
            return self._pods.get(key)

    def counts(self) -> dict[str, int]:
        with self._cond:
            out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
            for qp in self._pods.values():
                if qp.where in out:
                    out[qp.where] += 1
            return out

    def busy(self) -> bool:
        """Are pods waiting to be tried right now? (Cheap; may count a stale entry.)"""
        with self._cond:
            return bool(self._active)

    def active_len(self) -> int:
        with self._cond:
            return sum(1 for qp in self._pods.values() if qp.where == ACTIVE)

    def __len__(self) -> int:
        with self._cond:
            return len(self._pods)


__all__ = [
    "SchedulingQueue", "QueuedPod", "ACTIVE", "BACKOFF", "UNSCHEDULABLE", "IN_FLIGHT",
    "NODE_ADD", "NODE_UPDATE", "ASSIGNED_POD_DELETE", "UNSCHEDULABLE_TIMEOUT", "FORCE",
]
