"""Starting one container: create, start, postStart, and the CrashLoopBackOff arithmetic.

The pod loop (``kubelet.pods``) decides which container to start and which
attempt it is; this does the start the way the kubelet reports it: the
container's environment and command resolved first (a bad reference is
CreateContainerConfigError), no separate image lookup (the runtime resolves
the image as it creates the container and answers ImageNotFound, one call
less per start), the previous attempt's record kept for ``lastState`` and
``logs --previous`` and older ones removed, Pulled/Created/Started Events,
and the postStart hook, whose failure kills the container again.

Back-off doubles from 10 s to 5 min per restart and starts over once a
container ran for 10 minutes (``podspec.backoff_delay``).
"""
from __future__ import annotations

import os
import time
from typing import Callable

from kubelet import podspec
from kubelet.probes import run_handler
from kubelet.runtime.client import RuntimeCallError


def backoff_remaining(rec: dict) -> float:
    """Seconds until the CrashLoopBackOff delay after the exit of ``rec`` has passed."""
    delay = podspec.backoff_delay(rec["attempt"] + 1)
    if rec.get("finished_ts") and rec.get("started_ts") and rec["finished_ts"] - rec["started_ts"] > 600:
        delay = podspec.backoff_delay(1)      # it ran for 10 minutes: back-off starts over
    return max(0.0, rec.get("finished_ts", 0) + delay - time.time())


def backoff_message(pod: dict, name: str, rec: dict) -> str:
    delay = int(podspec.backoff_delay(rec["attempt"] + 1))
    md = pod["metadata"]
    return f"back-off {delay}s restarting failed container={name} pod={md['name']}_{md['namespace']}({md['uid']})"


def start_container(runtime, pod: dict, sandbox: dict, c: dict, attempt: int, env_ctx: dict, waiting: dict,
                    old_recs: list[dict], *, files: list[list[str]], log_dir: str,
                    event: Callable[..., None]) -> tuple[bool, dict | None]:
    """Create and start attempt ``attempt`` of container ``c``, then its postStart hook.

    (whether the runtime changed, the started container's record when it runs). What keeps it from
    running becomes ``waiting[name]`` (CreateContainerConfigError, ErrImagePull) and an Event."""
    name = c["name"]
    image = c.get("image") or ""
    try:
        env = podspec.container_env(pod, c, **env_ctx)
        command, args = podspec.command_and_args(c, env)
        mem, cpu = podspec.limits(c)
    except (podspec.EnvError, ValueError) as e:
        waiting[name] = ("CreateContainerConfigError", str(e))
        event(pod, "Failed", f"Error: {e}", "Warning")
        return False, None
    uid = pod["metadata"]["uid"]
    log_path = os.path.join(log_dir, name, f"{attempt}.log")
    try:
        # No separate image lookup: the runtime resolves the image as it creates the container
        # and answers ImageNotFound (one call less per container start).
        created = runtime.call(
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
            event(pod, "Failed", msg, "Warning")
        waiting[name] = ("ErrImagePull", msg)
        return False, None
    # keep the previous attempt's record (lastState, logs --previous); older ones go
    for old in old_recs[:-1]:
        runtime.call("remove_container", id=old["id"])
    event(pod, "Pulled", f'Container image "{image}" already present on machine')
    event(pod, "Created", f"Created container {name}")
    try:
        rec = runtime.call("start_container", id=created["id"])
    except RuntimeCallError as e:
        if e.kind != "StartError":
            raise
        event(pod, "Failed", f"Error: {e}", "Warning")
        waiting.pop(name, None)
        return True, None
    waiting.pop(name, None)
    event(pod, "Started", f"Started container {name}")
    post = ((c.get("lifecycle") or {}).get("postStart"))
    if post:
        ok, msg = run_handler(post, container=c, container_id=created["id"], pod_ip=env_ctx["pod_ip"],
                              runtime=runtime, timeout=30)
        if not ok:
            event(pod, "FailedPostStartHook", msg, "Warning")
            runtime.call("stop_container", id=created["id"], timeout=0)
            return True, None
    # older records went, or a runtime from before this kubelet (it outlives kubelet upgrades) answered
    # without the record: the caller re-reads the records
    if old_recs[:-1] or "id" not in rec:
        return True, None
    return True, rec
