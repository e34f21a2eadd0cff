"""The scheduler's whole loop: informer events in, one placement decision at a time, binds out.

Data flow (upstream kube-scheduler's, in one file)::

    pods informer ──┬─ unassigned, ours ─────────────► SchedulingQueue
                    └─ bound (spec.nodeName) ────────► SchedulerCache (confirms assumptions)
    nodes informer ───────────────────────────────────► SchedulerCache + "move unschedulable pods"
    services informer ──────────────────────────────── (read by SelectorSpread)

    schedule_one():  pop ─► filter + score (cache locked) ─► assume ─► bind worker ─► POST pods/binding
                                   │ no node fits
                                   └─► queue as unschedulable, PodScheduled=False + FailedScheduling event

Handlers only route objects (level-triggered: what matters is the state in
the cache and queue, not the event). The scheduling loop is a single thread,
so decisions are sequential and each one sees the previous one's assumption.
Binding runs on ``bind_workers`` threads sharing the client's keep-alive
pool, so the loop never waits for the API server: while pod N is being
bound, pod N+1 is being placed.

Which pods are ours: no ``spec.nodeName``, ``spec.schedulerName`` equal to
ours (absent means ``default-scheduler``), not terminating, not finished.

Outcomes of an attempt:

* placed -> bind succeeds -> Normal ``Scheduled`` event
  ("Successfully assigned ns/pod to node"), assumption kept until the watch
  confirms it;
* bind answers 409/404 (bound elsewhere, being deleted, gone) -> the
  assumption is forgotten and the pod dropped: the informer shows the truth;
* bind fails otherwise, or a plugin errs -> back-off and retry;
* no node fits -> ``PodScheduled=False``/``Unschedulable`` with the
  Kubernetes message (patched only when it changed) and a Warning
  ``FailedScheduling`` event; the pod waits for a cluster change.

``can_bind`` is checked right before every bind: with leader election it is
"do I still hold the lease", so a leader that lost it stops binding at once,
even mid-burst.
"""
from __future__ import annotations

import collections
import logging
import queue as _queue
import random
import threading
import time
from typing import Any, Callable

from scheduler.binder import Binder, BindConflict, has_unschedulable_condition
from scheduler.cache import SchedulerCache, is_terminal
from client.events import EventRecorder
from scheduler.framework import FitError, Framework, PluginError
from scheduler.plugins import default_plugins
from scheduler.queue import ASSIGNED_POD_DELETE, NODE_ADD, NODE_UPDATE, QueuedPod, SchedulingQueue
from scheduler.types import PodInfo, pod_key

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"


def _ready_status(node: dict) -> str | None:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status")
    return None


def node_scheduling_changed(old: dict, new: dict) -> bool:
    """Did a node change in a way that can make a pending pod fit? (Heartbeats do not.)"""
    os_, ns_ = old.get("spec") or {}, new.get("spec") or {}
    if bool(os_.get("unschedulable")) != bool(ns_.get("unschedulable")) or os_.get("taints") != ns_.get("taints"):
        return True
    if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
        return True
    ost, nst = old.get("status") or {}, new.get("status") or {}
    if (ost.get("allocatable") or ost.get("capacity")) != (nst.get("allocatable") or nst.get("capacity")):
        return True
    return _ready_status(old) != _ready_status(new)


class Workers:
    """A fixed set of threads draining one FIFO of tasks (lighter than ThreadPoolExecutor: no futures)."""

    def __init__(self, n: int, name: str):
        self._tasks: _queue.SimpleQueue = _queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(n)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable, *args: Any) -> None:
        self._tasks.put((fn, args))

    def _run(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            fn, args = item
            fn(*args)

    def shutdown(self) -> None:
        """Finish every queued task, then stop the threads."""
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            t.join()


class Stats:
    """Counters for logs, the benchmark and tests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts = 0
        self.scheduled = 0
        self.unschedulable = 0
        self.bind_conflicts = 0
        self.errors = 0
        self.schedule_seconds = 0.0

    def add(self, **kw: float) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, float]:
        with self.lock:
            return {k: v for k, v in self.__dict__.items() if k != "lock"}


class Scheduler:
    def __init__(self, binder: Binder, *, recorder: EventRecorder | None = None,
                 scheduler_name: str = DEFAULT_SCHEDULER_NAME, weights: dict[str, int] | None = None,
                 services: Callable[[str], Any] | None = None, cache: SchedulerCache | None = None,
                 queue: SchedulingQueue | None = None, framework: Framework | None = None,
                 bind_workers: int = 8, percentage_of_nodes_to_score: int = 0,
                 can_bind: Callable[[], bool] | None = None, rng: random.Random | None = None,
                 busy_rate: int = 20):
        self.binder = binder
        self.recorder = recorder
        self.scheduler_name = scheduler_name
        self.cache = cache if cache is not None else SchedulerCache()
        self.queue = queue if queue is not None else SchedulingQueue()
        if framework is None:
            filters, scores = default_plugins(weights, services)
            framework = Framework(filters, scores, percentage_of_nodes_to_score=percentage_of_nodes_to_score,
                                  rng=rng)
        self.framework = framework
        self.bind_workers = bind_workers
        self.can_bind = can_bind or (lambda: True)
        self.stats = Stats()
        self._executor: Workers | None = None
        self._inflight_binds = 0
        self._inflight_cond = threading.Condition()
        self._last_cleanup = 0.0
        self.busy_rate = busy_rate
        self._recent_binds: collections.deque[float] = collections.deque(maxlen=max(1, busy_rate))

    # ---------------------------------------------------------------- wiring
    def responsible_for(self, pod: dict) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == self.scheduler_name

    def register(self, pods: Any, nodes: Any, services: Any | None = None) -> None:
        """Attach the handlers to the pod and node informers (services are only read)."""
        nodes.add_handler(self.on_node_add, self.on_node_update, self.on_node_delete)
        pods.add_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)

    # -------------------------------------------------------------- handlers
    def on_node_add(self, node: dict) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff(NODE_ADD)

    def on_node_update(self, old: dict, new: dict) -> None:
        self.cache.update_node(new)
        if node_scheduling_changed(old, new):
            self.queue.move_all_to_active_or_backoff(NODE_UPDATE)

    def on_node_delete(self, node: dict) -> None:
        self.cache.remove_node(node)

    def on_pod_add(self, pod: dict) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.cache.add_pod(pod)
        elif self._pending_and_ours(pod):
            self.queue.add(pod)

    def on_pod_update(self, old: dict, new: dict) -> None:
        if (new.get("spec") or {}).get("nodeName"):
            if not (old.get("spec") or {}).get("nodeName"):
                self.queue.delete(new)
            if is_terminal(new):
                if self.cache.pod_node(pod_key(new)) is not None:
                    self.cache.remove_pod(new)
                    self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE)
            else:
                self.cache.update_pod(old, new)
            return
        if not self._pending_and_ours(new):
            self.queue.delete(new)
            return
        if self.cache.is_assumed(pod_key(new)):
            return  # being bound; the bound version will arrive
        self.queue.update(old, new)

    def on_pod_delete(self, pod: dict) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        if self.cache.pod_node(key) is not None:
            self.cache.remove_pod(key)
            self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE)

    def _pending_and_ours(self, pod: dict) -> bool:
        return (self.responsible_for(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")
                and not is_terminal(pod))

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event) -> None:
        """Schedule until ``stop`` is set; in-flight binds finish (or are handed back) before return."""
        log.info("scheduling as %s", self.scheduler_name)
        self.start_binding()
        try:
            while not stop.is_set():
                if not self.can_bind():
                    stop.wait(0.1)  # lease being lost or not yet confirmed: decide nothing
                    continue
                self.schedule_one(timeout=0.5)
        finally:
            self.stop_binding()

    def start_binding(self) -> None:
        if self.bind_workers > 0 and self._executor is None:
            self._executor = Workers(self.bind_workers, "bind")

    def stop_binding(self) -> None:
        ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown()

    def schedule_one(self, timeout: float | None = None) -> bool:
        """Try one pod; False when none was waiting within ``timeout``."""
        now = time.monotonic()
        if now - self._last_cleanup > 1.0:
            self._last_cleanup = now
            for key in self.cache.cleanup_expired():
                log.warning("assumed pod %s was never seen bound; its resources are released", key)
        qp = self.queue.pop(timeout)
        if qp is None:
            return False
        pod = qp.pod
        if (pod.get("spec") or {}).get("nodeName") or not self._pending_and_ours(pod) \
                or self.cache.is_assumed(qp.key):
            self.queue.done(qp.key)
            return True
        pi = PodInfo(pod)
        cache = self.cache
        started = time.perf_counter()
        fit: FitError | None = None
        err: Exception | None = None
        node = ""
        with cache.lock:
            try:
                node = self.framework.schedule(pi, cache.node_infos()).node
                cache.assume_pod(pi, node)
            except FitError as e:
                fit = e
            except (PluginError, ValueError) as e:
                err = e
        self.stats.add(attempts=1, schedule_seconds=time.perf_counter() - started)
        if fit is not None:
            self._unschedulable(qp, fit.message)
        elif err is not None:
            self.stats.add(errors=1)
            log.warning("scheduling %s failed: %s", qp.key, err)
            self.queue.requeue(qp, unschedulable=False, reason=str(err))
            self._event(pod, "Warning", "FailedScheduling", str(err))
        else:
            self._submit(self._bind, qp, pi, node)
        return True

    def _submit(self, fn: Callable, *args: Any) -> None:
        with self._inflight_cond:
            self._inflight_binds += 1
        ex = self._executor
        if ex is None:
            self._run_task(fn, args)
        else:
            ex.submit(self._run_task, fn, args)

    def _run_task(self, fn: Callable, args: tuple) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("scheduler task %s failed", getattr(fn, "__name__", fn))
        finally:
            with self._inflight_cond:
                self._inflight_binds -= 1
                self._inflight_cond.notify_all()

    def busy(self) -> bool:
        """In a burst? Pods waiting, binds in flight, or >= ``busy_rate`` binds in the last second.

        The event writer yields to the scheduler while this is true. The rate
        matters: a scheduler that keeps up with a stream of pods often has
        an empty queue for an instant, and writing an event in every such
        instant would cost the API server as much as the binds themselves.
        """
        if self.queue.busy() or self._inflight_binds > 0:
            return True
        recent = self._recent_binds
        horizon = time.monotonic() - 1.0
        while recent and recent[0] < horizon:
            recent.popleft()
        return len(recent) >= self.busy_rate

    def wait_binds(self, timeout: float = 10.0) -> bool:
        """Wait until no bind or status write is in flight (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._inflight_cond:
            while self._inflight_binds:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._inflight_cond.wait(left)
        return True

    # --------------------------------------------------------------- outcomes
    def _bind(self, qp: QueuedPod, pi: PodInfo, node: str) -> None:
        key = qp.key
        pod = qp.pod
        if not self.can_bind():
            self.cache.forget_pod(key)
            self.queue.add_back(qp)
            return
        try:
            self.binder.bind(pod, node)
        except BindConflict as e:
            self.stats.add(bind_conflicts=1)
            log.info("not binding %s: %s", key, e)
            self.cache.forget_pod(key)
            self.queue.done(key)
            return
        except Exception as e:
            self.stats.add(errors=1)
            log.warning("binding %s to %s failed: %s", key, node, e)
            self.cache.forget_pod(key)
            self.queue.requeue(qp, unschedulable=False, reason=str(e))
            self._event(pod, "Warning", "FailedScheduling", f"Binding rejected: {e}")
            return
        self.cache.finish_binding(key)
        self.queue.done(key)
        self.stats.add(scheduled=1)
        self._recent_binds.append(time.monotonic())
        log.debug("bound %s to %s", key, node)
        self._event(pod, "Normal", "Scheduled", f"Successfully assigned {pi.namespace}/{pi.name} to {node}",
                    "Binding")

    def _unschedulable(self, qp: QueuedPod, message: str) -> None:
        self.stats.add(unschedulable=1)
        pod = qp.pod
        log.info("unable to schedule %s: %s", qp.key, message)
        self.queue.requeue(qp, unschedulable=True, reason=message)
        if not has_unschedulable_condition(pod, message):
            self._submit(self._write_condition, pod, message)
        self._event(pod, "Warning", "FailedScheduling", message, "Scheduling")

    def _write_condition(self, pod: dict, message: str) -> None:
        if not self.can_bind():
            return
        try:
            self.binder.set_unschedulable(pod, message)
        except Exception as e:
            log.warning("cannot record why %s is unschedulable: %s", pod_key(pod), e)

    def _event(self, pod: dict, type_: str, reason: str, message: str, action: str = "") -> None:
        if self.recorder is not None:
            self.recorder.record(pod, type_, reason, message, action)


__all__ = ["Scheduler", "DEFAULT_SCHEDULER_NAME", "node_scheduling_changed", "Stats"]
