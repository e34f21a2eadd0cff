"""A pod's sandbox and network steps: the pause process, the CNI ADD/DEL, the pod's files, and where its IP is.

``PodSyncer`` decides *when* a sandbox is made or torn down; this module
does it, as small idempotent steps (docs/design.md style 7):

* ``create``: ``run_sandbox`` in the runtime, then (pod network only) the CNI
  ADD with the pod's ``CNI_ARGS`` and its hostPort mappings; an ADD that
  fails removes the sandbox again and raises ``SandboxError`` worded as the
  kubelet words it (``FailedCreatePodSandBox``);
* ``teardown``: the CNI DEL (idempotent, also for a namespace already gone),
  then the runtime's stop or remove;
* the pod's ``hosts``, ``hostname`` and ``resolv.conf`` in the run directory
  (``kubelet.rundir``), bind-mounted into every container and rewritten in
  place when they change.

Where a pod's state lives, once each:

* its network attachment (IP, interfaces, routes) is the CNI result the CNI
  client caches per sandbox (``kubelet.cni.invoke``: libcni's cache, which DEL
  and a restarted kubelet need anyway); ``pod_ip`` reads it from there (a
  host-network sandbox has the node's IP, a ``none`` one none). The address
  lease the plugin keeps (``kubelet.cni.ipam``) is the plugin's own
  allocation state, as host-local's is; the kubelet never reads it;
* what the kubelet must remember of a sandbox across its own restarts (the
  pod's start time, the attempt numbers its containers continue from after
  a sandbox was re-created) is in the sandbox's annotations in the runtime,
  which persists them in its journal and drops them with the sandbox.

So there is no kubelet-side network record to drift from the other two; the
IPs held in memory here are a cache of the CNI result, filled on ADD.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections import deque

from kubelet import podspec

log = logging.getLogger("kubelet.sandbox")

START_TIME = "pocketkube.io/start-time"
ATTEMPT_BASE = "pocketkube.io/attempt-base"


class SandboxError(Exception):
    pass


def start_time(sandbox: dict | None) -> str | None:
    """The pod start time recorded on the sandbox when it was made."""
    return ((sandbox or {}).get("annotations") or {}).get(START_TIME)


def attempt_base(sandbox: dict | None) -> dict[str, int]:
    """Per container, the attempt number a re-created sandbox's first container starts from."""
    raw = ((sandbox or {}).get("annotations") or {}).get(ATTEMPT_BASE)
    try:
        return {str(k): int(v) for k, v in json.loads(raw).items()} if raw else {}
    except (ValueError, TypeError, AttributeError):
        return {}


class PodSandboxes:
    def __init__(self, *, runtime, network, node_name: str, node_ip: str, run_dir: str, cluster_dns: str,
                 cluster_domain: str):
        self.runtime = runtime
        self.network = network
        self.node_name = node_name
        self.node_ip = node_ip
        self.run_dir = run_dir
        self.cluster_dns = cluster_dns
        self.cluster_domain = cluster_domain
        # recent sandbox set-up times (pause process + CNI ADD), served on the kubelet's /metrics
        self.setup_seconds: deque[float] = deque(maxlen=1000)
        self._ips: dict[str, str] = {}          # sandbox id -> pod IP: a cache of the CNI result
        self._ips_lock = threading.Lock()

    def list(self, namespace: str | None = None, name: str | None = None) -> list[dict]:
        return self.runtime.call("list_sandboxes", namespace=namespace, name=name)["items"]

    # ------------------------------------------------------------- create
    def create(self, pod: dict, *, start_time: str, attempt_base: dict[str, int]) -> tuple[dict, str]:
        """A ready sandbox for ``pod`` and the pod's IP; raises SandboxError (the sandbox removed again)."""
        t0 = time.monotonic()
        out = self._create(pod, {START_TIME: start_time, ATTEMPT_BASE: json.dumps(attempt_base)})
        self.setup_seconds.append(time.monotonic() - t0)
        return out

    def _create(self, pod: dict, annotations: dict[str, str]) -> tuple[dict, str]:
        mode = podspec.network_mode(pod)
        md = pod["metadata"]
        sb = self.runtime.call("run_sandbox", pod={"uid": md["uid"], "name": md["name"],
                                                   "namespace": md.get("namespace", "default")},
                               hostname=podspec.pod_hostname(pod), network=mode,
                               labels={"pocketkube.io/network": mode}, annotations=annotations)
        log.debug("pause process for %s ready", md["name"])
        if mode != "pod":
            return sb, self._remember(sb["id"], self.node_ip if mode == "host" else "")
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
        return sb, self._remember(sb["id"], result.pod_ip() or "")

    def _plugin_type(self) -> str:
        try:
            return ",".join(p.get("type", "?") for p in self.network.load().plugins)
        except Exception:  # noqa: BLE001
            return "?"

    # ------------------------------------------------------------ the IP
    def _remember(self, sandbox_id: str, ip: str) -> str:
        with self._ips_lock:
            self._ips[sandbox_id] = ip
        return ip

    def pod_ip(self, pod: dict, sandbox: dict | None) -> str:
        """The pod's IP: its sandbox's network attachment; for a pod whose attachment is gone (a finished pod
        after a kubelet restart), the IP last reported in its status."""
        if sandbox is not None:
            ip = self._ips.get(sandbox["id"])
            if ip is not None:
                return ip
            mode = sandbox.get("network")
            if mode in ("host", "none"):
                return self._remember(sandbox["id"], self.node_ip if mode == "host" else "")
            try:
                result = self.network.cached_result(sandbox["id"])
            except Exception as e:  # noqa: BLE001 - an unreadable config: no attachment to read
                log.warning("network attachment of sandbox %s: %s", sandbox["id"], e)
                result = None
            if result is not None:
                return self._remember(sandbox["id"], result.pod_ip() or "")
        return (pod.get("status") or {}).get("podIP") or ""

    # ----------------------------------------------------------- teardown
    def teardown(self, sb: dict, *, remove: bool) -> None:
        """Network DEL, then the runtime's stop (the records stay for ``logs``) or remove."""
        if sb.get("network") == "pod":
            try:
                self.network.delete(sb["id"], sb["netns_path"] if sb["state"] == "ready" else "", "eth0", {
                    "K8S_POD_NAMESPACE": sb["pod"].get("namespace", ""), "K8S_POD_NAME": sb["pod"].get("name", ""),
                    "K8S_POD_INFRA_CONTAINER_ID": sb["id"], "K8S_POD_UID": sb["pod"].get("uid", "")})
            except Exception as e:  # noqa: BLE001
                log.warning("network teardown of sandbox %s: %s", sb["id"], e)
        if remove:
            self.runtime.call("remove_sandbox", id=sb["id"], call_timeout=120)
            with self._ips_lock:
                self._ips.pop(sb["id"], None)
        else:
            self.runtime.call("stop_sandbox", id=sb["id"], call_timeout=120)

    # -------------------------------------------------------------- files
    def pod_dir(self, uid: str) -> str:
        return os.path.join(self.run_dir, "pods", uid)

    def forget(self, uid: str) -> None:
        """The pod's run-time files go (its sandboxes are gone)."""
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)

    def pod_files(self, pod: dict) -> list[list[str]]:
        """(file in the run directory, path in the container) for the container's bind mounts."""
        d = self.pod_dir(pod["metadata"]["uid"])
        out = [[os.path.join(d, "hosts"), "/etc/hosts"], [os.path.join(d, "hostname"), "/etc/hostname"]]
        if os.path.exists(os.path.join(d, "resolv.conf")):
            out.append([os.path.join(d, "resolv.conf"), "/etc/resolv.conf"])
        return out

    def write_pod_files(self, pod: dict, pod_ip: str) -> None:
        d = self.pod_dir(pod["metadata"]["uid"])
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
