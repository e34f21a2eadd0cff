"""The pod status the kubelet reports, computed from what the runtime says and what the probes say.

A pure function (``pod_status``) so every phase and condition rule is
unit-tested on plain data:

* container statuses: ``waiting`` (reason ContainerCreating, PodInitializing,
  ErrImagePull, CrashLoopBackOff, CreateContainerConfigError, ...),
  ``running`` (startedAt) or ``terminated`` (exitCode, reason, times), the
  previous attempt's terminated state as ``lastState``, ``restartCount``
  (= the latest attempt number), ``ready`` and ``started``;
* phase: Pending until the sandbox runs and every init container succeeded
  and every app container started once; Succeeded / Failed when every
  container terminated and none will be restarted (restart policy);
  Running otherwise; an init container that failed under ``Never`` fails the
  pod;
* conditions Initialized, ContainersReady, Ready, PodScheduled (whose last
  transition times are kept from the previous status while the value stays).
"""
from __future__ import annotations

from api.meta import now
from kubelet.podspec import should_restart

RUNTIME_SCHEME = "pocketkube://"


def _terminated(rec: dict) -> dict:
    t = {"exitCode": rec.get("exit_code") if rec.get("exit_code") is not None else 255,
         "reason": rec.get("reason") or ("Completed" if rec.get("exit_code") == 0 else "Error"),
         "startedAt": rec.get("started_at") or None, "finishedAt": rec.get("finished_at") or None,
         "containerID": RUNTIME_SCHEME + rec["id"]}
    if rec.get("message"):
        t["message"] = rec["message"]
    return t


def container_status(container: dict, records: list[dict], waiting: tuple[str, str] | None, *,
                     ready: bool, started: bool) -> dict:
    """One containerStatuses entry from the runtime records of this container (oldest attempt first)."""
    st: dict = {"name": container["name"], "image": container.get("image", ""), "imageID": "",
                "ready": False, "restartCount": 0, "started": False}
    latest = records[-1] if records else None
    if latest is not None:
        st["restartCount"] = latest.get("attempt", 0)
        st["containerID"] = RUNTIME_SCHEME + latest["id"]
        st["imageID"] = container.get("image", "")
    prev = records[-2] if len(records) >= 2 else None
    if waiting is not None:
        reason, message = waiting
        st["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        if latest is not None and latest.get("state") == "exited":
            st["lastState"] = {"terminated": _terminated(latest)}
        elif prev is not None:
            st["lastState"] = {"terminated": _terminated(prev)}
        else:
            st["lastState"] = {}
        return st
    if latest is None or latest.get("state") == "created":
        st["state"] = {"waiting": {"reason": "ContainerCreating"}}
        st["lastState"] = {"terminated": _terminated(prev)} if prev else {}
        return st
    if latest["state"] == "running":
        st["state"] = {"running": {"startedAt": latest.get("started_at") or now()}}
        st["ready"] = bool(ready)
        st["started"] = bool(started)
    else:
        st["state"] = {"terminated": _terminated(latest)}
    st["lastState"] = {"terminated": _terminated(prev)} if prev else {}
    return st


def _condition(prev: list[dict], type_: str, status: bool, reason: str | None = None) -> dict:
    value = "True" if status else "False"
    old = next((c for c in prev if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == value and old.get("lastTransitionTime") \
        else now()
    c = {"type": type_, "status": value, "lastProbeTime": None, "lastTransitionTime": since}
    if reason and not status:
        c["reason"] = reason
    return c


def pod_status(pod: dict, *, sandbox_ready: bool, pod_ip: str, host_ip: str, records: dict[str, list[dict]],
               waiting: dict[str, tuple[str, str]], ready: dict[str, bool], started: dict[str, bool],
               start_time: str | None, message: str | None = None, reason: str | None = None) -> dict:
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    policy = spec.get("restartPolicy") or "Always"
    inits = spec.get("initContainers") or []
    apps = spec.get("containers") or []

    init_statuses = []
    init_done = True
    init_failed = False
    for c in inits:
        recs = records.get(c["name"], [])
        w = waiting.get(c["name"])
        if w is None and not init_done:
            w = ("PodInitializing", "")
        st = container_status(c, recs, w, ready=False, started=False)
        latest = recs[-1] if recs else None
        ok = latest is not None and latest.get("state") == "exited" and latest.get("exit_code") == 0
        if ok:
            st["ready"] = True
        if latest is not None and latest.get("state") == "exited" and latest.get("exit_code") != 0 \
                and policy == "Never":
            init_failed = True
        init_done = init_done and ok
        init_statuses.append(st)

    statuses = []
    all_ready = bool(apps)
    running_or_restarting = False
    all_terminated = bool(apps)
    any_failed = False
    all_started_once = bool(apps)
    for c in apps:
        recs = records.get(c["name"], [])
        w = waiting.get(c["name"])
        if w is None and not init_done:
            w = ("PodInitializing", "")
        st = container_status(c, recs, w, ready=ready.get(c["name"], True), started=started.get(c["name"], True))
        statuses.append(st)
        latest = recs[-1] if recs else None
        all_ready = all_ready and st["ready"]
        if latest is None or latest.get("state") == "created":
            all_started_once = False
            all_terminated = False
            continue
        if latest["state"] == "running":
            running_or_restarting = True
            all_terminated = False
        else:
            code = latest.get("exit_code")
            if should_restart(policy, code):
                running_or_restarting = True
                all_terminated = False
            elif code != 0:
                any_failed = True

    if init_failed:
        phase = "Failed"
    elif not init_done or not sandbox_ready and not all_terminated:
        phase = "Pending"
    elif all_terminated:
        phase = "Failed" if any_failed else "Succeeded"
    elif all_started_once and running_or_restarting:
        phase = "Running"
    else:
        phase = "Pending"
    terminal = phase in ("Succeeded", "Failed")

    prev_conds = old.get("conditions") or []
    ready_now = all_ready and sandbox_ready and not terminal and init_done
    conds = [
        _condition(prev_conds, "Initialized", init_done, None if init_done else "ContainersNotInitialized"),
        _condition(prev_conds, "Ready", ready_now, "PodCompleted" if terminal else "ContainersNotReady"),
        _condition(prev_conds, "ContainersReady", ready_now, "PodCompleted" if terminal else "ContainersNotReady"),
        _condition(prev_conds, "PodScheduled", True),
    ]
    status = {
        "phase": phase,
        "conditions": conds,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}] if host_ip else None,
        "podIP": pod_ip or None,
        "podIPs": [{"ip": pod_ip}] if pod_ip else None,
        "startTime": start_time,
        "containerStatuses": statuses,
        "initContainerStatuses": init_statuses if inits else None,
        "qosClass": qos_class(pod),
        "message": message,
        "reason": reason,
    }
    return status


def qos_class(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    req_any = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        if lim or req:
            req_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if req_any else "BestEffort"
