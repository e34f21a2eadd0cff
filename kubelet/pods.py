"""The kubelet's pod loop: make the runtime match the pods bound to this node, then report status.

Level-triggered (docs/design.md style 1): informer events, the runtime relist
(PLEG), probe results and back-off timers only enqueue a pod key;
``sync(key)`` reads the pod from the cache and the runtime's current state
and takes the next small idempotent steps:

1. pod gone from the API (or bound elsewhere): tear down whatever the
   runtime still has for that name (no grace: the API object is gone);
2. ``deletionTimestamp`` set: preStop hooks, SIGTERM, wait up to the grace
   period, SIGKILL (the runtime's stop), network DEL, sandbox removed, then
   the deletion is completed in the API (grace 0, UID precondition);
3. no ready sandbox: remove dead ones (keeping their attempt numbers so
   ``restartCount`` keeps counting), start a pause process, run the CNI ADD;
4. init containers in order, then app containers: start what is missing,
   restart what exited when the restart policy says so — after the
   CrashLoopBackOff delay (10 s, 20 s, 40 s ... 5 min) — and kill what failed
   its liveness or startup probe;
5. a pod whose containers all finished for good (Succeeded/Failed) releases
   its network and pause process; its container records stay for ``logs``;
6. the status computed from all that (``kubelet.status``) is written when it
   changed.

Nothing here blocks on a container; termination, which waits up to the
grace period, runs on a thread of its own. Several workers run at once and
the work queue never gives one pod key to two of them.

This file is the loop; each step it takes lives in a module of its own:
``kubelet.pleg`` (the relist that notices exits), ``kubelet.sandbox`` (the
pause process, the network, the pod's files, and where the pod's IP and
sandbox facts are kept), ``kubelet.containers`` (one container's start and
its back-off), ``kubelet.termination`` (a deleted pod's graceful stop) and
``kubelet.status`` (the status, a pure function).
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time

from api import resources as R
from api.meta import now
from client.errors import ApiError, NotFound
from client.events import ClientEventSink, EventRecorder
from client.workqueue import WorkQueue
from kubelet import podspec
from kubelet import sandbox as sbx
from kubelet.containers import backoff_message, backoff_remaining, start_container
from kubelet.pleg import PLEG
from kubelet.probes import ProbeManager
from kubelet.runtime.client import RuntimeCallError
from kubelet.sandbox import PodSandboxes, SandboxError
from kubelet.status import pod_status
from kubelet.termination import Terminator, grace_period

log = logging.getLogger("kubelet.pods")


def pod_key(pod: dict) -> str:
    md = pod["metadata"]
    return f"{md.get('namespace', 'default')}/{md['name']}"


class PodSyncer:
    def __init__(self, *, client, pods_store, services_store, runtime, network, node_name: str, node_ip: str,
                 root_dir: str, run_dir: str | None = None, cluster_dns: str = "10.96.0.10",
                 cluster_domain: str = "cluster.local", workers: int = 8, events: bool = True):
        # status patches and Events (the per-pod writes) take the shared client's lean transport
        self.client = client
        self.pods = pods_store
        self.services = services_store
        self.runtime = runtime
        self.node_name = node_name
        self.node_ip = node_ip
        self.root_dir = root_dir
        self.n_workers = workers
        self.events = events
        self.queue = WorkQueue(base_delay=0.5, max_delay=30.0)
        self.probes = ProbeManager(runtime, self.queue.add)
        # the pods' hosts/hostname/resolv.conf: on tmpfs (``kubelet.rundir``)
        self.sandboxes = PodSandboxes(runtime=runtime, network=network, node_name=node_name, node_ip=node_ip,
                                      run_dir=run_dir or root_dir, cluster_dns=cluster_dns,
                                      cluster_domain=cluster_domain)
        self.pleg = PLEG(runtime, self.queue.add)
        self.terminator = Terminator(runtime=runtime, sandboxes=self.sandboxes, probes=self.probes, client=client,
                                     queue=self.queue, event=self._event, records=self._records,
                                     forget_pod=self._forget_pod)
        self._last_status: dict[str, dict] = {}
        self._waiting: dict[str, dict[str, tuple[str, str]]] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        # busy_rate=0: while pods are being synced every Event is held back (at most EVENT_MAX_DELAY)
        self.recorder = EventRecorder(ClientEventSink(client), "kubelet", host=node_name, busy=self._syncing,
                                      busy_rate=0, max_defer=self.EVENT_MAX_DELAY) if events else None

    # ---------------------------------------------------------------- wiring
    def register(self, pod_informer) -> None:
        pod_informer.add_handler(on_add=lambda o: self.queue.add(pod_key(o)),
                                 on_update=self._on_update,
                                 on_delete=lambda o: self.queue.add(pod_key(o)))

    def _on_update(self, old: dict, new: dict) -> None:
        """A change to what the pod should be; not the echo of our own status write (the PLEG and
        timers cover the node's side)."""
        om, nm = old.get("metadata") or {}, new.get("metadata") or {}
        if old.get("spec") != new.get("spec") or om.get("uid") != nm.get("uid") or \
                om.get("deletionTimestamp") != nm.get("deletionTimestamp") or \
                om.get("annotations") != nm.get("annotations") or \
                nm["uid"] not in self._last_status:
            self.queue.add(pod_key(new))

    def start(self) -> None:
        for sb in self.sandboxes.list():
            p = sb.get("pod") or {}
            self.queue.add(f"{p.get('namespace')}/{p.get('name')}")
        for i in range(self.n_workers):
            t = threading.Thread(target=self._worker, name=f"pod-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self.pleg.run, args=(self._stop,), name="pleg", daemon=True)
        t.start()
        self._threads.append(t)
        if self.recorder is not None:
            self.recorder.start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        if self.recorder is not None:
            self.recorder.stop()

    def _worker(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                again = self.sync(key)
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            except (ApiError, RuntimeCallError, OSError) as e:
                log.warning("sync %s failed (will retry): %s", key, e)
                self.queue.add_rate_limited(key)
            except Exception:  # noqa: BLE001 - one bad pod must not stop the node
                log.exception("sync %s failed (will retry)", key)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    # ------------------------------------------------------------------ helpers
    def _log_dir(self, pod: dict) -> str:
        md = pod["metadata"]
        return os.path.join(self.root_dir, "logs", "pods", f"{md.get('namespace')}_{md['name']}_{md['uid']}")

    def _event(self, pod: dict, reason: str, message: str, type_: str = "Normal") -> None:
        """Record an Event through the one ``client.events.EventRecorder`` (asynchronous, aggregated)."""
        if self.recorder is not None:
            self.recorder.record(pod, type_, reason, message)

    # Events wait while pods are being synced, but never longer than this: on 2 cores the API server's
    # CPU for four Events per pod would otherwise come straight out of pod start-up latency.
    EVENT_MAX_DELAY = 2.0

    def _syncing(self) -> bool:
        return bool(self.queue.len() or self.queue.num_processing())

    # --------------------------------------------------------------------- sync
    def sync(self, key: str) -> float | None:
        """Converge one pod; returns seconds until it wants another look (a back-off timer), or None."""
        pod = self.pods.get_by_key(key)
        ns, _, name = key.partition("/")
        sandboxes = self.sandboxes.list(ns, name)
        if pod is None or (pod.get("spec") or {}).get("nodeName") != self.node_name:
            for sb in sandboxes:
                self.sandboxes.teardown(sb, remove=True)
            for uid in {sb["pod"]["uid"] for sb in sandboxes}:
                self._forget_pod(uid)
            return None
        uid = pod["metadata"]["uid"]
        for sb in sandboxes:
            if sb["pod"].get("uid") != uid:       # an older pod of the same name
                self.sandboxes.teardown(sb, remove=True)
                self._forget_pod(sb["pod"]["uid"])
        mine = [s for s in sandboxes if s["pod"].get("uid") == uid]
        if pod["metadata"].get("deletionTimestamp"):
            self.terminator.begin(pod, mine, key)    # on a thread of its own: it waits up to the grace period
            return None
        return self._sync_running(pod, mine)

    def _records(self, sandboxes: list[dict]) -> dict[str, list[dict]]:
        """Each container name's records across ``sandboxes``, oldest attempt first."""
        recs: dict[str, list[dict]] = {}
        for sb in sandboxes:
            for c in self.runtime.call("list_containers", sandbox_id=sb["id"])["items"]:
                recs.setdefault(c["name"], []).append(c)
        for v in recs.values():
            v.sort(key=lambda c: (c["attempt"], c["created_at"]))
        return recs

    def _sync_running(self, pod: dict, sandboxes: list[dict]) -> float | None:
        uid = pod["metadata"]["uid"]
        key = pod_key(pod)
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        waiting = self._waiting.setdefault(uid, {})
        records = self._records(sandboxes)
        by_age = sorted(sandboxes, key=lambda s: s["created_at"])
        ready_sbs = [s for s in by_age if s["state"] == "ready"]
        sandbox = ready_sbs[-1] if ready_sbs else None
        newest = by_age[-1] if by_age else None
        start_time = (pod.get("status") or {}).get("startTime") or sbx.start_time(newest)
        t_sync = time.monotonic()
        message = reason = None
        retry: list[float] = []

        if self._is_terminal(pod, records):
            pod_ip = self.sandboxes.pod_ip(pod, newest)       # before the network DEL
            for sb in sandboxes:
                if sb["state"] == "ready":
                    self.sandboxes.teardown(sb, remove=False)
            self.probes.remove_pod(uid)
            self._write_status(pod, sandbox_ready=False, pod_ip=pod_ip, records=records, waiting=waiting,
                               start_time=start_time)
            return None

        if sandbox is None:
            for sb in sandboxes:                 # dead sandboxes: keep their attempt numbers, then remove
                self.sandboxes.teardown(sb, remove=True)
            self.probes.remove_pod(uid)
            base = {n: recs[-1]["attempt"] + 1 for n, recs in records.items() if recs}
            if sandboxes:
                self._event(pod, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            start_time = start_time or now()
            try:
                sandbox, pod_ip = self.sandboxes.create(pod, start_time=start_time, attempt_base=base)
                log.debug("sandbox for %s in %.1f ms", key, (time.monotonic() - t_sync) * 1000)
            except SandboxError as e:
                self._event(pod, "FailedCreatePodSandBox", str(e), "Warning")
                for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                    waiting[c["name"]] = ("ContainerCreating", "")
                self._write_status(pod, sandbox_ready=False, pod_ip="", records={}, waiting=waiting,
                                   start_time=start_time, message=str(e))
                raise
            records = {}
        else:
            pod_ip = self.sandboxes.pod_ip(pod, sandbox)
            base = sbx.attempt_base(sandbox)
        env_ctx = dict(services=self.services.list() if self.services is not None else [], node_name=self.node_name,
                       pod_ip=pod_ip, host_ip=self.node_ip)
        self.sandboxes.write_pod_files(pod, pod_ip)

        # ``records`` is re-read from the runtime at the end only when this sync changed something the
        # records do not show yet (``touched``); a container started here is added from start_container's
        # answer instead (one runtime call less per pod start, and none in a steady-state resync)
        touched = False
        started: dict[str, dict] = {}

        # init containers, one at a time, in order
        inits_done = True
        for c in spec.get("initContainers") or []:
            recs = records.get(c["name"], [])
            latest = recs[-1] if recs else None
            if latest and latest["state"] == "exited" and latest["exit_code"] == 0:
                continue
            inits_done = False
            if latest and latest["state"] == "running":
                break
            if latest and latest["state"] == "exited":
                if policy == "Never":
                    break
                delay = backoff_remaining(latest)
                if delay > 0:
                    waiting[c["name"]] = ("CrashLoopBackOff", backoff_message(pod, c["name"], latest))
                    retry.append(delay)
                    break
            self._start(pod, sandbox, c, (latest["attempt"] + 1) if latest else base.get(c["name"], 0),
                                  env_ctx, waiting, recs)
            touched = True
            break

        if inits_done:
            for c in spec.get("containers") or []:
                name = c["name"]
                recs = records.get(name, [])
                latest = recs[-1] if recs else None
                if latest is None:
                    changed, rec = self._start(pod, sandbox, c, base.get(name, 0), env_ctx, waiting, recs)
                    if rec is not None:
                        started[name] = rec
                        # its probes start now, not on the next sync (a new pod gets none: see below)
                        self.probes.sync_container(key, uid, c, rec["id"], pod_ip,
                                                   time.monotonic() - max(0.0, time.time() - rec["started_ts"]))
                    touched = touched or (changed and rec is None)
                    continue
                if latest["state"] == "running":
                    failure = self.probes.liveness_failure(uid, name, latest["id"])
                    if failure:
                        kind, msg = failure
                        self._event(pod, "Unhealthy", msg, "Warning")
                        self._event(pod, "Killing", f"Container {name} failed {kind} probe, will be restarted")
                        self.probes.stop_container(uid, name)
                        self.runtime.call("stop_container", id=latest["id"], timeout=grace_period(pod),
                                          call_timeout=grace_period(pod) + 30)
                        touched = True
                        retry.append(0.05)
                    else:
                        self.probes.sync_container(key, uid, c, latest["id"], pod_ip,
                                                   time.monotonic() - max(0.0, time.time() - latest["started_ts"]))
                    continue
                if latest["state"] == "created":      # made but never started (a kubelet crash in between)
                    self.runtime.call("remove_container", id=latest["id"])
                    self._start(pod, sandbox, c, latest["attempt"], env_ctx, waiting, recs[:-1])
                    touched = True
                    continue
                self.probes.stop_container(uid, name)
                if not podspec.should_restart(policy, latest["exit_code"]):
                    continue
                delay = backoff_remaining(latest)
                if delay > 0:
                    if waiting.get(name, ("",))[0] != "CrashLoopBackOff":
                        self._event(pod, "BackOff", f"Back-off restarting failed container {name} in pod "
                                                    f"{pod['metadata']['name']}_{pod['metadata']['namespace']}"
                                                    f"({uid})", "Warning")
                    waiting[name] = ("CrashLoopBackOff", backoff_message(pod, name, latest))
                    retry.append(delay)
                    continue
                self._start(pod, sandbox, c, latest["attempt"] + 1, env_ctx, waiting, recs)
                touched = True
        if touched:
            records = self._records([sandbox])
        else:
            for name, rec in started.items():   # the previous attempt stays (lastState), older ones were removed
                records[name] = records.get(name, [])[-1:] + [rec]
            if not sandboxes and started:
                # a new pod: what the runtime now has for it is exactly this sandbox and these records, so
                # the PLEG takes that as already seen and does not sync the pod again just to find its own work
                self.pleg.seen(key, sandbox, [c for recs in records.values() for c in recs])

        for name, (why, _msg) in list(waiting.items()):
            if why in ("ErrImagePull", "CreateContainerConfigError", "RunContainerError", "ImagePullBackOff"):
                retry.append(10.0)
        self._write_status(pod, sandbox_ready=True, pod_ip=pod_ip, records=records, waiting=waiting,
                           start_time=start_time, message=message, reason=reason)
        log.debug("synced %s in %.1f ms", key, (time.monotonic() - t_sync) * 1000)
        return min(retry) if retry else None

    def _start(self, pod: dict, sandbox: dict, c: dict, attempt: int, env_ctx: dict, waiting: dict,
               old_recs: list[dict]) -> tuple[bool, dict | None]:
        return start_container(self.runtime, pod, sandbox, c, attempt, env_ctx, waiting, old_recs,
                               files=self.sandboxes.pod_files(pod), log_dir=self._log_dir(pod), event=self._event)

    def _forget_pod(self, uid: str) -> None:
        self.probes.remove_pod(uid)
        self._last_status.pop(uid, None)
        self._waiting.pop(uid, None)
        self.terminator.forget(uid)
        self.sandboxes.forget(uid)
        logs = os.path.join(self.root_dir, "logs", "pods")
        if os.path.isdir(logs):
            for d in os.listdir(logs):
                if d.endswith("_" + uid):
                    shutil.rmtree(os.path.join(logs, d), ignore_errors=True)

    def _is_terminal(self, pod: dict, records: dict[str, list[dict]]) -> bool:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return True
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        if policy == "Always":
            return False
        for c in spec.get("initContainers") or []:
            recs = records.get(c["name"])
            if recs and recs[-1]["state"] == "exited" and recs[-1]["exit_code"] != 0 and policy == "Never":
                return True
        apps = spec.get("containers") or []
        for c in apps:
            recs = records.get(c["name"])
            if not recs or recs[-1]["state"] != "exited":
                return False
            if podspec.should_restart(policy, recs[-1]["exit_code"]):
                return False
        return bool(apps)

    # --------------------------------------------------------------- status
    def _write_status(self, pod: dict, *, sandbox_ready: bool, pod_ip: str, records: dict, waiting: dict,
                      start_time: str | None, message: str | None = None, reason: str | None = None) -> None:
        uid = pod["metadata"]["uid"]
        spec = pod.get("spec") or {}
        ready, started = {}, {}
        for c in spec.get("containers") or []:
            recs = records.get(c["name"])
            if recs and recs[-1]["state"] == "running":
                cid = recs[-1]["id"]
                started[c["name"]] = self.probes.started(uid, c["name"], c, cid)
                ready[c["name"]] = started[c["name"]] and self.probes.ready(uid, c["name"], c, cid)
        status = pod_status(pod, sandbox_ready=sandbox_ready, pod_ip=pod_ip, host_ip=self.node_ip, records=records,
                            waiting=waiting, ready=ready, started=started, start_time=start_time,
                            message=message, reason=reason)
        if self._last_status.get(uid) == status:
            return
        try:
            md = pod["metadata"]
            self.client.patch_status(R.PODS, md["name"], status, md.get("namespace"))
            self._last_status[uid] = status
        except NotFound:
            pass
