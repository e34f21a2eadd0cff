"""Liveness, readiness and startup probes: one small worker thread per probe of a running container.

Kubernetes' prober semantics, per container attempt (a restarted container
gets fresh workers, keyed by its runtime id):

* the first run waits ``initialDelaySeconds`` from the container's start, then
  every ``periodSeconds``; each run is bounded by ``timeoutSeconds``;
* a result flips only after ``successThreshold`` successes or
  ``failureThreshold`` failures in a row;
* readiness starts False (True with no readiness probe) and drives the Ready
  condition; liveness starts True and, once failed, makes the kubelet kill and
  restart the container; a startup probe holds the other two back until it
  succeeds, and failing it counts as a liveness failure.

Handlers: ``exec`` (through the runtime, inside the container), ``httpGet``
(from the node to the pod IP; 200-399 is success), ``tcpSocket`` (a connect).
Every change of a result calls ``on_change(pod_key)`` so the pod is synced
at once; the kubelet reads the current results from here.
"""
from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("kubelet.probes")


def resolve_port(port, container: dict) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a named port of container {container.get('name')}")


def run_handler(handler: dict, *, container: dict, container_id: str, pod_ip: str, runtime,
                timeout: float) -> tuple[bool, str]:
    """One probe (or lifecycle hook) run: (success, message)."""
    try:
        if handler.get("exec"):
            cmd = handler["exec"].get("command") or []
            r = runtime.call("exec_sync", container_id=container_id, command=cmd, timeout=timeout,
                             call_timeout=timeout + 10)
            if r.get("timed_out"):
                return False, f"command {cmd} timed out after {timeout:g}s"
            out = (r.get("stdout") or "") + (r.get("stderr") or "")
            return r.get("exit_code") == 0, out.strip()[:1024] or f"exit code {r.get('exit_code')}"
        if handler.get("httpGet"):
            h = handler["httpGet"]
            host = h.get("host") or pod_ip
            port = resolve_port(h.get("port"), container)
            conn_cls = http.client.HTTPSConnection if (h.get("scheme") or "HTTP").upper() == "HTTPS" \
                else http.client.HTTPConnection
            kwargs = {}
            if conn_cls is http.client.HTTPSConnection:
                import ssl
                kwargs["context"] = ssl._create_unverified_context()  # noqa: S323 - probes do not verify, like kubelet
            conn = conn_cls(host, port, timeout=timeout, **kwargs)
            try:
                headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or [] if x.get("name")}
                headers.setdefault("User-Agent", "kube-probe/1.33")
                conn.request("GET", h.get("path") or "/", headers=headers)
                resp = conn.getresponse()
                resp.read(10240)
                ok = 200 <= resp.status < 400
                return ok, f"HTTP probe failed with statuscode: {resp.status}" if not ok else ""
            finally:
                conn.close()
        if handler.get("tcpSocket"):
            t = handler["tcpSocket"]
            port = resolve_port(t.get("port"), container)
            with socket.create_connection((t.get("host") or pod_ip, port), timeout=timeout):
                return True, ""
        if handler.get("grpc"):
            return False, "grpc probes are not supported by this kubelet"
        if handler.get("sleep"):
            time.sleep(min(float(handler["sleep"].get("seconds", 0)), timeout))
            return True, ""
        return False, "probe has no handler"
    except (OSError, http.client.HTTPException) as e:
        return False, str(e)
    except Exception as e:  # noqa: BLE001 - a broken probe is a failed probe, never a dead kubelet
        return False, f"{type(e).__name__}: {e}"


@dataclass
class _Worker:
    key: str
    uid: str
    name: str
    kind: str
    container_id: str
    probe: dict
    container: dict
    pod_ip: str
    started_mono: float
    result: bool
    message: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class ProbeManager:
    def __init__(self, runtime, on_change: Callable[[str], None]):
        self.runtime = runtime
        self.on_change = on_change
        self._lock = threading.Lock()
        self._workers: dict[tuple[str, str, str], _Worker] = {}
        self._started: dict[tuple[str, str], str] = {}          # (uid, name) -> container id that passed startup
        self._failed: dict[tuple[str, str], tuple[str, str, str]] = {}   # -> (container id, kind, message)

    # ---------------------------------------------------------------- results
    def ready(self, uid: str, name: str, container: dict, container_id: str) -> bool:
        """Readiness of this container attempt: with a readiness probe, False until the probe succeeds (as
        in Kubernetes, the initial state is Failure); without one, True."""
        if not container.get("readinessProbe"):
            return True
        w = self._workers.get((uid, name, "readiness"))
        return w is not None and w.container_id == container_id and w.result

    def started(self, uid: str, name: str, container: dict, container_id: str) -> bool:
        if not container.get("startupProbe"):
            return True
        return self._started.get((uid, name)) == container_id

    def liveness_failure(self, uid: str, name: str, container_id: str) -> tuple[str, str] | None:
        f = self._failed.get((uid, name))
        if f and f[0] == container_id:
            return f[1], f[2]
        return None

    # ---------------------------------------------------------------- workers
    def sync_container(self, key: str, uid: str, container: dict, container_id: str, pod_ip: str,
                       started_mono: float) -> None:
        """Ensure workers for this container attempt (idempotent); stale attempts' workers stop."""
        for kind in ("startup", "liveness", "readiness"):
            probe = container.get(f"{kind}Probe")
            wkey = (uid, container["name"], kind)
            with self._lock:
                w = self._workers.get(wkey)
                if w is not None and w.container_id == container_id:
                    continue
                if w is not None:
                    w.stop.set()
                    del self._workers[wkey]
                if not probe:
                    continue
                w = _Worker(key=key, uid=uid, name=container["name"], kind=kind, container_id=container_id,
                            probe=probe, container=container, pod_ip=pod_ip, started_mono=started_mono,
                            result=(kind == "liveness"))
                w.thread = threading.Thread(target=self._run, args=(w,), daemon=True,
                                            name=f"probe-{kind}-{container['name']}")
                self._workers[wkey] = w
                w.thread.start()

    def stop_container(self, uid: str, name: str) -> None:
        with self._lock:
            for kind in ("startup", "liveness", "readiness"):
                w = self._workers.pop((uid, name, kind), None)
                if w is not None:
                    w.stop.set()

    def remove_pod(self, uid: str) -> None:
        with self._lock:
            for wkey in [k for k in self._workers if k[0] == uid]:
                self._workers.pop(wkey).stop.set()
            for k in [k for k in self._started if k[0] == uid]:
                del self._started[k]
            for k in [k for k in self._failed if k[0] == uid]:
                del self._failed[k]

    def _run(self, w: _Worker) -> None:
        p = w.probe
        period = max(1, int(p.get("periodSeconds") or 10))
        timeout = max(1, int(p.get("timeoutSeconds") or 1))
        need_ok = max(1, int(p.get("successThreshold") or 1))
        need_fail = max(1, int(p.get("failureThreshold") or 3))
        delay = float(p.get("initialDelaySeconds") or 0) - (time.monotonic() - w.started_mono)
        if delay > 0 and w.stop.wait(delay):
            return
        oks = fails = 0
        while not w.stop.is_set():
            if w.kind != "startup" and w.container.get("startupProbe") and \
                    self._started.get((w.uid, w.name)) != w.container_id:
                if w.stop.wait(0.2):
                    return
                continue
            ok, msg = run_handler(p, container=w.container, container_id=w.container_id, pod_ip=w.pod_ip,
                                  runtime=self.runtime, timeout=timeout)
            if w.stop.is_set():
                return
            if ok:
                oks, fails = oks + 1, 0
            else:
                oks, fails = 0, fails + 1
            changed = False
            if w.kind == "readiness":
                if ok and oks >= need_ok and not w.result:
                    w.result, changed = True, True
                elif not ok and fails >= need_fail and w.result:
                    w.result, changed = False, True
            elif ok and oks >= need_ok and w.kind == "startup":
                self._started[(w.uid, w.name)] = w.container_id
                self.on_change(w.key)
                return
            elif not ok and fails >= need_fail:
                what = "Liveness" if w.kind == "liveness" else "Startup"
                self._failed[(w.uid, w.name)] = (w.container_id, w.kind, f"{what} probe failed: {msg}")
                log.info("%s probe of %s/%s failed %d times: %s", w.kind, w.key, w.name, fails, msg)
                self.on_change(w.key)
                return
            if changed:
                log.info("readiness of %s/%s is now %s", w.key, w.name, w.result)
                w.message = msg
                self.on_change(w.key)
            if w.stop.wait(period):
                return
