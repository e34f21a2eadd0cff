"""Pod termination: preStop hooks, SIGTERM, the grace period, SIGKILL, network DEL, and the final delete.

A pod with ``deletionTimestamp`` is stopped as the kubelet does it: every
running container at once, each one's preStop hook first (within what is
left of the grace period), then the runtime's stop (SIGTERM, wait, SIGKILL);
then the sandboxes go (network DEL, pause process), the pod's kubelet-side
state is forgotten, and the deletion is completed in the API (grace 0, with
a UID precondition so a newer pod of the same name is never deleted).

Termination waits up to the grace period, so it gets a thread of its own
(the kubelet's per-pod workers do the same): a few slow deletions never hold
every sync worker. A failure is retried through the work queue.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from api import resources as R
from client.errors import ApiError, NotFound
from kubelet.probes import run_handler
from kubelet.runtime.client import RuntimeCallError

log = logging.getLogger("kubelet.termination")


def grace_period(pod: dict) -> int:
    """The deletion's grace period, else the pod's terminationGracePeriodSeconds, else 30 s."""
    md, spec = pod["metadata"], pod.get("spec") or {}
    g = md.get("deletionGracePeriodSeconds")
    if g is None:
        g = spec.get("terminationGracePeriodSeconds")
    return int(30 if g is None else g)


class Terminator:
    def __init__(self, *, runtime, sandboxes, probes, client, queue, event: Callable[..., None],
                 records: Callable[[list[dict]], dict], forget_pod: Callable[[str], None]):
        """``event``, ``records`` and ``forget_pod`` are the pod loop's (``kubelet.pods``)."""
        self.runtime, self.sandboxes, self.probes, self.client, self.queue = runtime, sandboxes, probes, client, queue
        self.event, self.records, self.forget_pod = event, records, forget_pod
        self._started: dict[str, float] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def begin(self, pod: dict, sandboxes: list[dict], key: str) -> None:
        """Start terminating ``pod`` on a thread of its own, unless that is under way already."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid in self._running:
                return
            self._running.add(uid)
        threading.Thread(target=self._thread, args=(pod, sandboxes, key), daemon=True,
                         name=f"terminate-{pod['metadata']['name']}").start()

    def forget(self, uid: str) -> None:
        self._started.pop(uid, None)

    def _thread(self, pod: dict, sandboxes: list[dict], key: str) -> None:
        uid = pod["metadata"]["uid"]
        try:
            self.terminate(pod, sandboxes, key)
        except Exception as e:  # noqa: BLE001 - retried through the queue
            log.warning("terminating %s failed (will retry): %s", key, e)
            with self._lock:
                self._running.discard(uid)
            self.queue.add_rate_limited(key)
            return
        with self._lock:
            self._running.discard(uid)

    def terminate(self, pod: dict, sandboxes: list[dict], key: str) -> None:
        uid = pod["metadata"]["uid"]
        start = self._started.setdefault(uid, time.monotonic())
        grace = grace_period(pod)
        self.probes.remove_pod(uid)
        records = self.records(sandboxes)
        by_name = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
        running = [r for recs in records.values() for r in recs if r["state"] == "running"]
        newest = max(sandboxes, key=lambda sb: sb["created_at"]) if sandboxes else None
        pod_ip = self.sandboxes.pod_ip(pod, newest)

        def stop_one(rec: dict) -> None:
            c = by_name.get(rec["name"]) or {}
            pre = (c.get("lifecycle") or {}).get("preStop")
            if pre:
                left = max(1.0, grace - (time.monotonic() - start))
                ok, msg = run_handler(pre, container=c, container_id=rec["id"], pod_ip=pod_ip,
                                      runtime=self.runtime, timeout=left)
                if not ok:
                    self.event(pod, "FailedPreStopHook", msg, "Warning")
            left = max(0.0, grace - (time.monotonic() - start))
            self.event(pod, "Killing", f"Stopping container {rec['name']}")
            try:
                self.runtime.call("stop_container", id=rec["id"], timeout=left, call_timeout=left + 30)
            except RuntimeCallError as e:
                log.warning("stopping %s of %s: %s", rec["name"], key, e)

        threads = []
        for rec in running:
            t = threading.Thread(target=stop_one, args=(rec,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        for sb in sandboxes:
            self.sandboxes.teardown(sb, remove=True)
        self.forget_pod(uid)
        try:
            self.client.delete(R.PODS, pod["metadata"]["name"], pod["metadata"].get("namespace"),
                            grace_period_seconds=0, preconditions={"uid": uid})
        except NotFound:
            pass
        except ApiError as e:
            if getattr(e, "code", None) != 409:     # a newer pod of the same name: not ours to delete
                raise
