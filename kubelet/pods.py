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

Nothing here blocks on a container except termination, which runs on the
worker that syncs that pod; several workers run at once and the work queue
never gives one pod key to two of them.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from collections import deque
from typing import Any

from api import resources as R
from api.meta import now
from client.errors import ApiError, NotFound
from client.rest import event_body
from client.workqueue import WorkQueue
from kubelet import podspec
from kubelet.probes import ProbeManager, run_handler
from kubelet.runtime.client import RuntimeCallError
from kubelet.status import pod_status

log = logging.getLogger("kubelet.pods")

RELIST_PERIOD = 0.5


def pod_key(pod: dict) -> str:
    md = pod["metadata"]
    return f"{md.get('namespace', 'default')}/{md['name']}"


class PodSyncer:
    def __init__(self, *, client, pods_store, services_store, runtime, network, node_name: str, node_ip: str,
                 root_dir: str, run_dir: str | None = None, cluster_dns: str = "10.96.0.10",
                 cluster_domain: str = "cluster.local", workers: int = 8, events: bool = True, writer=None):
        self.client = client
        # status patches and Events (the per-pod writes) go through ``writer`` (a ``client.lean.LeanWriter``,
        # ~1.5 ms less CPU per request than the shared client) when given
        self.writer = writer
        self.pods = pods_store
        self.services = services_store
        self.runtime = runtime
        self.network = network
        self.node_name = node_name
        self.node_ip = node_ip
        self.root_dir = root_dir
        # the pods' hosts/hostname/resolv.conf and network records: on tmpfs (``kubelet.rundir``)
        self.run_dir = run_dir or root_dir
        self.cluster_dns = cluster_dns
        self.cluster_domain = cluster_domain
        self.n_workers = workers
        self.events = events
        self.queue = WorkQueue(base_delay=0.5, max_delay=30.0)
        self.probes = ProbeManager(runtime, self.queue.add)
        self._last_status: dict[str, dict] = {}
        self._waiting: dict[str, dict[str, tuple[str, str]]] = {}
        self._term_started: dict[str, float] = {}
        self._relist_sig: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        # recent sandbox set-up times (pause process + CNI ADD), served on the kubelet's /metrics
        self.sandbox_setup_seconds: deque[float] = deque(maxlen=1000)
        self._events: queue.Queue = queue.Queue()
        self._terminating: set[str] = set()
        self._term_lock = threading.Lock()

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
        for sb in self._sandboxes():
            p = sb.get("pod") or {}
            self.queue.add(f"{p.get('namespace')}/{p.get('name')}")
        for i in range(self.n_workers):
            t = threading.Thread(target=self._worker, name=f"pod-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        for target, name in ((self._relist_loop, "pleg"), (self._event_loop, "events")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        self._events.put(None)

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

    def _relist_loop(self) -> None:
        """The PLEG: notice container exits and sandbox deaths by relisting the runtime."""
        while not self._stop.wait(RELIST_PERIOD):
            try:
                self.relist()
            except RuntimeCallError as e:
                log.warning("runtime relist failed: %s", e)

    def relist(self) -> None:
        """One PLEG pass: queue every pod whose sandboxes or containers changed since the last pass."""
        sandboxes = self._sandboxes()
        containers = self.runtime.call("list_containers")["items"]
        by_sb: dict[str, list] = {}
        for c in containers:
            by_sb.setdefault(c["sandbox_id"], []).append(c)
        sig: dict[str, list] = {}
        for sb in sandboxes:
            p = sb["pod"]
            sig.setdefault(f"{p['namespace']}/{p['name']}", []).append(self._relist_entry(sb, by_sb.get(sb["id"], [])))
        for key, s in sig.items():
            if self._relist_sig.get(key) != s:
                self.queue.add(key)
        self._relist_sig = sig

    @staticmethod
    def _relist_entry(sandbox: dict, containers: list[dict]) -> tuple:
        """What the PLEG compares per sandbox: its state and each container's state and exit code."""
        return (sandbox["id"], sandbox["state"],
                tuple(sorted((c["id"], c["state"], c["exit_code"]) for c in containers)))

    # ------------------------------------------------------------------ helpers
    def _sandboxes(self, namespace: str | None = None, name: str | None = None) -> list[dict]:
        return self.runtime.call("list_sandboxes", namespace=namespace, name=name)["items"]

    def _pod_dir(self, uid: str) -> str:
        return os.path.join(self.run_dir, "pods", uid)

    def _log_dir(self, pod: dict) -> str:
        md = pod["metadata"]
        return os.path.join(self.root_dir, "logs", "pods", f"{md.get('namespace')}_{md['name']}_{md['uid']}")

    def _event(self, pod: dict, reason: str, message: str, type_: str = "Normal") -> None:
        """Queue an Event; one background thread posts them (client-go's recorder is asynchronous too),
        so a sync never waits on them. Dropped, with a log line, if the API server falls far behind."""
        if not self.events:
            return
        if self._events.qsize() >= 1000:
            log.warning("event queue full; dropping %s for %s", reason, pod_key(pod))
            return
        self._events.put((time.monotonic(), pod, reason, message, type_))

    EVENT_MAX_DELAY = 2.0

    def _event_loop(self) -> None:
        """Post queued Events, giving way to pod syncs: an Event waits while pods are being synced, but
        never longer than EVENT_MAX_DELAY (on 2 cores the API server's CPU for four Events per pod would
        otherwise come straight out of pod start-up latency)."""
        while True:
            item = self._events.get()
            if item is None:
                return
            queued, pod, reason, message, type_ = item
            while (self.queue.len() or self.queue.num_processing()) and \
                    time.monotonic() - queued < self.EVENT_MAX_DELAY and not self._stop.is_set():
                time.sleep(0.05)
            try:
                if self.writer is not None:
                    self.writer.create_event(event_body(pod, reason, message, type=type_, component="kubelet",
                                                        host=self.node_name, rt=R.PODS))
                else:
                    self.client.create_event(pod, reason, message, type=type_, component="kubelet",
                                             host=self.node_name, rt=R.PODS)
            except ApiError as e:
                log.debug("event %s for %s not recorded: %s", reason, pod_key(pod), e)
            except Exception:  # noqa: BLE001
                log.exception("event %s for %s", reason, pod_key(pod))

    def _net_state(self, uid: str) -> dict:
        try:
            with open(os.path.join(self._pod_dir(uid), "network.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _save_net_state(self, uid: str, state: dict) -> None:
        d = self._pod_dir(uid)
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, "network.json.tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, os.path.join(d, "network.json"))

    # --------------------------------------------------------------------- sync
    def sync(self, key: str) -> float | None:
        """Converge one pod; returns seconds until it wants another look (a back-off timer), or None."""
        pod = self.pods.get_by_key(key)
        ns, _, name = key.partition("/")
        sandboxes = self._sandboxes(ns, name)
        if pod is None or (pod.get("spec") or {}).get("nodeName") != self.node_name:
            for sb in sandboxes:
                self._teardown_sandbox(sb, remove=True)
            for uid in {sb["pod"]["uid"] for sb in sandboxes}:
                self._forget_pod(uid)
            return None
        uid = pod["metadata"]["uid"]
        for sb in sandboxes:
            if sb["pod"].get("uid") != uid:       # an older pod of the same name
                self._teardown_sandbox(sb, remove=True)
                self._forget_pod(sb["pod"]["uid"])
        mine = [s for s in sandboxes if s["pod"].get("uid") == uid]
        if pod["metadata"].get("deletionTimestamp"):
            # Termination waits up to the grace period; it gets a thread of its own so a few slow
            # deletions never hold every worker (the kubelet's per-pod workers do the same).
            with self._term_lock:
                if uid in self._terminating:
                    return None
                self._terminating.add(uid)
            threading.Thread(target=self._terminate_thread, args=(pod, mine), daemon=True,
                             name=f"terminate-{pod['metadata']['name']}").start()
            return None
        return self._sync_running(pod, mine)

    def _records(self, sandboxes: list[dict]) -> dict[str, list[dict]]:
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
        net = self._net_state(uid)
        ready_sbs = sorted((s for s in sandboxes if s["state"] == "ready"), key=lambda s: s["created_at"])
        sandbox = ready_sbs[-1] if ready_sbs else None
        start_time = (pod.get("status") or {}).get("startTime") or net.get("start_time")
        t_sync = time.monotonic()
        message = reason = None
        retry: list[float] = []

        if self._is_terminal(pod, records):
            for sb in sandboxes:
                if sb["state"] == "ready":
                    self._teardown_sandbox(sb, remove=False)
            self.probes.remove_pod(uid)
            self._write_status(pod, sandbox_ready=False, pod_ip=net.get("ip", ""), records=records, waiting=waiting,
                               start_time=start_time)
            return None

        if sandbox is None:
            for sb in sandboxes:                 # dead sandboxes: keep their attempt numbers, then remove
                self._teardown_sandbox(sb, remove=True)
            self.probes.remove_pod(uid)
            base = {n: recs[-1]["attempt"] + 1 for n, recs in records.items() if recs}
            if sandboxes:
                self._event(pod, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            try:
                sandbox, ip = self._create_sandbox(pod)
                log.debug("sandbox for %s in %.1f ms", key, (time.monotonic() - t_sync) * 1000)
            except SandboxError as e:
                self._event(pod, "FailedCreatePodSandBox", str(e), "Warning")
                for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                    waiting[c["name"]] = ("ContainerCreating", "")
                self._write_status(pod, sandbox_ready=False, pod_ip="", records={}, waiting=waiting,
                                   start_time=start_time or now(), message=str(e))
                raise
            start_time = start_time or now()
            net = {"sandbox_id": sandbox["id"], "ip": ip, "start_time": start_time, "attempt_base": base}
            self._save_net_state(uid, net)
            records = {}
        pod_ip = net.get("ip", "")
        base = net.get("attempt_base") or {}
        env_ctx = dict(services=self.services.list() if self.services is not None else [], node_name=self.node_name,
                       pod_ip=pod_ip, host_ip=self.node_ip)
        self._write_pod_files(pod, pod_ip)

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
                delay = self._backoff_remaining(latest)
                if delay > 0:
                    waiting[c["name"]] = ("CrashLoopBackOff", self._backoff_message(pod, c["name"], latest))
                    retry.append(delay)
                    break
            self._start_container(pod, sandbox, c, (latest["attempt"] + 1) if latest else base.get(c["name"], 0),
                                  env_ctx, waiting, recs)
            touched = True
            break

        if inits_done:
            for c in spec.get("containers") or []:
                name = c["name"]
                recs = records.get(name, [])
                latest = recs[-1] if recs else None
                if latest is None:
                    changed, rec = self._start_container(pod, sandbox, c, base.get(name, 0), env_ctx, waiting, recs)
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
                        self.runtime.call("stop_container", id=latest["id"], timeout=self._grace(pod),
                                          call_timeout=self._grace(pod) + 30)
                        touched = True
                        retry.append(0.05)
                    else:
                        self.probes.sync_container(key, uid, c, latest["id"], pod_ip,
                                                   time.monotonic() - max(0.0, time.time() - latest["started_ts"]))
                    continue
                if latest["state"] == "created":      # made but never started (a kubelet crash in between)
                    self.runtime.call("remove_container", id=latest["id"])
                    self._start_container(pod, sandbox, c, latest["attempt"], env_ctx, waiting, recs[:-1])
                    touched = True
                    continue
                self.probes.stop_container(uid, name)
                if not podspec.should_restart(policy, latest["exit_code"]):
                    continue
                delay = self._backoff_remaining(latest)
                if delay > 0:
                    if waiting.get(name, ("",))[0] != "CrashLoopBackOff":
                        self._event(pod, "BackOff", f"Back-off restarting failed container {name} in pod "
                                                    f"{pod['metadata']['name']}_{pod['metadata']['namespace']}"
                                                    f"({uid})", "Warning")
                    waiting[name] = ("CrashLoopBackOff", self._backoff_message(pod, name, latest))
                    retry.append(delay)
                    continue
                self._start_container(pod, sandbox, c, latest["attempt"] + 1, env_ctx, waiting, recs)
                touched = True
        if touched:
            records = self._records([sandbox])
        else:
            for name, rec in started.items():   # the previous attempt stays (lastState), older ones were removed
                records[name] = records.get(name, [])[-1:] + [rec]
            if not sandboxes and started:
                # a new pod: what the runtime now has for it is exactly this sandbox and these records, so
                # the PLEG takes that as already seen and does not sync the pod again just to find its own
                # work (a relist snapshot taken before this point may still overwrite it: one extra sync)
                self._relist_sig[key] = [self._relist_entry(sandbox, [c for recs in records.values() for c in recs])]

        for name, (why, _msg) in list(waiting.items()):
            if why in ("ErrImagePull", "CreateContainerConfigError", "RunContainerError", "ImagePullBackOff"):
                retry.append(10.0)
        self._write_status(pod, sandbox_ready=True, pod_ip=pod_ip, records=records, waiting=waiting,
                           start_time=start_time, message=message, reason=reason)
        log.debug("synced %s in %.1f ms", key, (time.monotonic() - t_sync) * 1000)
        return min(retry) if retry else None

    # ----------------------------------------------------------- containers
    def _backoff_remaining(self, rec: dict) -> float:
        delay = podspec.backoff_delay(rec["attempt"] + 1)
        if rec.get("finished_ts") and rec.get("started_ts") and rec["finished_ts"] - rec["started_ts"] > 600:
            delay = podspec.backoff_delay(1)      # it ran for 10 minutes: back-off starts over
        return max(0.0, rec.get("finished_ts", 0) + delay - time.time())

    @staticmethod
    def _backoff_message(pod: dict, name: str, rec: dict) -> str:
        delay = int(podspec.backoff_delay(rec["attempt"] + 1))
        md = pod["metadata"]
        return f"back-off {delay}s restarting failed container={name} pod={md['name']}_{md['namespace']}({md['uid']})"

    def _start_container(self, pod: dict, sandbox: dict, c: dict, attempt: int, env_ctx: dict,
                         waiting: dict, old_recs: list[dict]) -> tuple[bool, dict | None]:
        """(whether the runtime changed, the started container's record when it runs)."""
        name = c["name"]
        image = c.get("image") or ""
        try:
            env = podspec.container_env(pod, c, **env_ctx)
            command, args = podspec.command_and_args(c, env)
            mem, cpu = podspec.limits(c)
        except (podspec.EnvError, ValueError) as e:
            waiting[name] = ("CreateContainerConfigError", str(e))
            self._event(pod, "Failed", f"Error: {e}", "Warning")
            return False, None
        uid = pod["metadata"]["uid"]
        files = self._pod_files(pod)
        log_path = os.path.join(self._log_dir(pod), name, f"{attempt}.log")
        try:
            # No separate image lookup: the runtime resolves the image as it creates the container
            # and answers ImageNotFound (one call less per container start).
            created = self.runtime.call(
                "create_container", sandbox_id=sandbox["id"], name=name, image=image, attempt=attempt,
                command=command, args=args, env=[f"{k}={v}" for k, v in env.items()],
                working_dir=c.get("workingDir") or "", files=files, log_path=log_path, memory_bytes=mem,
                cpu_millis=cpu, labels={"pod-uid": uid, "container": name})
        except RuntimeCallError as e:
            if e.kind != "ImageNotFound":
                raise
            msg = (f'Failed to pull image "{image}": not found in the node\'s image store '
                   f'(import it with `pocketkube image import FILE`, or use the built-in pocketkube/host)')
            if waiting.get(name, ("",))[0] != "ErrImagePull":
                self._event(pod, "Failed", msg, "Warning")
            waiting[name] = ("ErrImagePull", msg)
            return False, None
        # keep the previous attempt's record (lastState, logs --previous); older ones go
        for old in old_recs[:-1]:
            self.runtime.call("remove_container", id=old["id"])
        self._event(pod, "Pulled", f'Container image "{image}" already present on machine')
        self._event(pod, "Created", f"Created container {name}")
        try:
            rec = self.runtime.call("start_container", id=created["id"])
        except RuntimeCallError as e:
            if e.kind != "StartError":
                raise
            self._event(pod, "Failed", f"Error: {e}", "Warning")
            waiting.pop(name, None)
            return True, None
        waiting.pop(name, None)
        self._event(pod, "Started", f"Started container {name}")
        post = ((c.get("lifecycle") or {}).get("postStart"))
        if post:
            ok, msg = run_handler(post, container=c, container_id=created["id"], pod_ip=env_ctx["pod_ip"],
                                  runtime=self.runtime, timeout=30)
            if not ok:
                self._event(pod, "FailedPostStartHook", msg, "Warning")
                self.runtime.call("stop_container", id=created["id"], timeout=0)
                return True, None
        # older records went, or a runtime from before this kubelet (it outlives kubelet upgrades) answered
        # without the record: the caller re-reads the records
        if old_recs[:-1] or "id" not in rec:
            return True, None
        return True, rec

    # -------------------------------------------------------------- sandbox
    def _create_sandbox(self, pod: dict) -> tuple[dict, str]:
        t0 = time.monotonic()
        out = self._create_sandbox_steps(pod)
        self.sandbox_setup_seconds.append(time.monotonic() - t0)
        return out

    def _create_sandbox_steps(self, pod: dict) -> tuple[dict, str]:
        mode = podspec.network_mode(pod)
        md = pod["metadata"]
        sb = self.runtime.call("run_sandbox", pod={"uid": md["uid"], "name": md["name"],
                                                   "namespace": md.get("namespace", "default")},
                               hostname=podspec.pod_hostname(pod), network=mode,
                               labels={"pocketkube.io/network": mode})
        log.debug("pause process for %s ready", md["name"])
        if mode == "host":
            return sb, self.node_ip
        if mode == "none":
            return sb, ""
        # hostPort mappings go to plugins that declare the portMappings capability (portmap)
        mappings = [{"hostPort": int(p["hostPort"]), "containerPort": int(p["containerPort"]),
                     "protocol": (p.get("protocol") or "TCP").lower(), **({"hostIP": p["hostIP"]} if p.get("hostIP")
                                                                          else {})}
                    for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []
                    if p.get("hostPort")]
        try:
            result = self.network.add(sb["id"], sb["netns_path"], "eth0", {
                "K8S_POD_NAMESPACE": md.get("namespace", "default"), "K8S_POD_NAME": md["name"],
                "K8S_POD_INFRA_CONTAINER_ID": sb["id"], "K8S_POD_UID": md["uid"]},
                runtime_config={"portMappings": mappings} if mappings else None)
        except Exception as e:  # noqa: BLE001 - CNIError or anything the plugin chain raised
            self.runtime.call("remove_sandbox", id=sb["id"])
            raise SandboxError(f'Failed to create pod sandbox: plugin type="{self._plugin_type()}" failed (add): {e}')
        return sb, result.pod_ip() or ""

    def _plugin_type(self) -> str:
        try:
            return ",".join(p.get("type", "?") for p in self.network.load().plugins)
        except Exception:  # noqa: BLE001
            return "?"

    def _teardown_sandbox(self, sb: dict, *, remove: bool) -> None:
        if sb.get("network") == "pod":
            try:
                self.network.delete(sb["id"], sb["netns_path"] if sb["state"] == "ready" else "", "eth0", {
                    "K8S_POD_NAMESPACE": sb["pod"].get("namespace", ""), "K8S_POD_NAME": sb["pod"].get("name", ""),
                    "K8S_POD_INFRA_CONTAINER_ID": sb["id"], "K8S_POD_UID": sb["pod"].get("uid", "")})
            except Exception as e:  # noqa: BLE001
                log.warning("network teardown of sandbox %s: %s", sb["id"], e)
        if remove:
            self.runtime.call("remove_sandbox", id=sb["id"], call_timeout=120)
        else:
            self.runtime.call("stop_sandbox", id=sb["id"], call_timeout=120)

    def _forget_pod(self, uid: str) -> None:
        self.probes.remove_pod(uid)
        self._last_status.pop(uid, None)
        self._waiting.pop(uid, None)
        self._term_started.pop(uid, None)
        shutil.rmtree(self._pod_dir(uid), ignore_errors=True)
        logs = os.path.join(self.root_dir, "logs", "pods")
        if os.path.isdir(logs):
            for d in os.listdir(logs):
                if d.endswith("_" + uid):
                    shutil.rmtree(os.path.join(logs, d), ignore_errors=True)

    # -------------------------------------------------------------- files
    def _pod_files(self, pod: dict) -> list[list[str]]:
        d = self._pod_dir(pod["metadata"]["uid"])
        out = [[os.path.join(d, "hosts"), "/etc/hosts"], [os.path.join(d, "hostname"), "/etc/hostname"]]
        if os.path.exists(os.path.join(d, "resolv.conf")):
            out.append([os.path.join(d, "resolv.conf"), "/etc/resolv.conf"])
        return out

    def _write_pod_files(self, pod: dict, pod_ip: str) -> None:
        d = self._pod_dir(pod["metadata"]["uid"])
        os.makedirs(d, exist_ok=True)
        hostname = podspec.pod_hostname(pod) if podspec.network_mode(pod) != "host" else self.node_name
        wanted = {"hosts": podspec.hosts_file(pod, pod_ip, self.cluster_domain), "hostname": hostname + "\n"}
        resolv = podspec.resolv_conf(pod, self.cluster_dns, self.cluster_domain)
        if resolv is not None:
            wanted["resolv.conf"] = resolv
        for fn, content in wanted.items():
            path = os.path.join(d, fn)
            try:
                with open(path) as f:
                    if f.read() == content:
                        continue
            except OSError:
                pass
            # rewritten in place: the containers' bind mounts point at this inode
            with open(path, "w") as f:
                f.write(content)

    # ---------------------------------------------------------- termination
    def _grace(self, pod: dict) -> int:
        md, spec = pod["metadata"], pod.get("spec") or {}
        g = md.get("deletionGracePeriodSeconds")
        if g is None:
            g = spec.get("terminationGracePeriodSeconds")
        return int(30 if g is None else g)

    def _terminate_thread(self, pod: dict, sandboxes: list[dict]) -> None:
        uid = pod["metadata"]["uid"]
        try:
            self._terminate(pod, sandboxes)
        except Exception as e:  # noqa: BLE001 - retried through the queue
            log.warning("terminating %s failed (will retry): %s", pod_key(pod), e)
            with self._term_lock:
                self._terminating.discard(uid)
            self.queue.add_rate_limited(pod_key(pod))
            return
        with self._term_lock:
            self._terminating.discard(uid)

    def _terminate(self, pod: dict, sandboxes: list[dict]) -> None:
        uid = pod["metadata"]["uid"]
        start = self._term_started.setdefault(uid, time.monotonic())
        grace = self._grace(pod)
        self.probes.remove_pod(uid)
        records = self._records(sandboxes)
        by_name = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
        running = [r for recs in records.values() for r in recs if r["state"] == "running"]
        threads = []
        net = self._net_state(uid)

        def stop_one(rec: dict) -> None:
            c = by_name.get(rec["name"]) or {}
            pre = (c.get("lifecycle") or {}).get("preStop")
            if pre:
                left = max(1.0, grace - (time.monotonic() - start))
                ok, msg = run_handler(pre, container=c, container_id=rec["id"], pod_ip=net.get("ip", ""),
                                      runtime=self.runtime, timeout=left)
                if not ok:
                    self._event(pod, "FailedPreStopHook", msg, "Warning")
            left = max(0.0, grace - (time.monotonic() - start))
            self._event(pod, "Killing", f"Stopping container {rec['name']}")
            try:
                self.runtime.call("stop_container", id=rec["id"], timeout=left, call_timeout=left + 30)
            except RuntimeCallError as e:
                log.warning("stopping %s of %s: %s", rec["name"], pod_key(pod), e)

        for rec in running:
            t = threading.Thread(target=stop_one, args=(rec,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        for sb in sandboxes:
            self._teardown_sandbox(sb, remove=True)
        self._forget_pod(uid)
        try:
            self.client.delete(R.PODS, pod["metadata"]["name"], pod["metadata"].get("namespace"),
                               grace_period_seconds=0, preconditions={"uid": uid})
        except NotFound:
            pass
        except ApiError as e:
            if getattr(e, "code", None) != 409:     # a newer pod of the same name: not ours to delete
                raise

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
            if self.writer is not None:
                self.writer.patch_status(R.PODS.object_path(md["name"], md.get("namespace")), status)
            else:
                self.client.patch(R.PODS, md["name"], {"status": status}, md.get("namespace"), subresource="status")
            self._last_status[uid] = status
        except NotFound:
            pass


class SandboxError(Exception):
    pass

