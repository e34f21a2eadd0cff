"""The kubelet's Node: register it, then heartbeat (a Lease and the Ready condition) every 10 s.

Registration creates the Node or, when it exists (an admin or a test made it
first), patches in what the kubelet knows: labels, ``spec.podCIDR`` (unless
one is set), and the whole status — capacity and allocatable (CPU count,
memory, pods=110 unless given), addresses (InternalIP, Hostname), the
kubelet endpoint port the API server relays logs and exec to, node info,
and conditions (Ready plus the three pressure conditions, all healthy).

Heartbeats renew ``kube-node-lease/<node>`` (what the node lifecycle
controller watches in Kubernetes) and refresh the Ready condition's
``lastHeartbeatTime``; a failed heartbeat is retried at the next tick and
never stops the kubelet.
"""
from __future__ import annotations

import logging
import os
import platform
import threading

from api import resources as R
from api.meta import now, now_micro
from client.errors import AlreadyExists, ApiError, NotFound

log = logging.getLogger("kubelet.node")

HEARTBEAT = 10.0
VERSION = "v1.33.0-pocketkube"


def machine_capacity() -> dict:
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{mem_kib}Ki", "pods": "110",
            "ephemeral-storage": "0"}


class NodeAgent:
    def __init__(self, client, *, node_name: str, node_ip: str, pod_cidr: str | None, port: int,
                 capacity: dict | None = None, labels: dict | None = None):
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.pod_cidr = pod_cidr
        self.port = port
        self.capacity = {**machine_capacity(), **(capacity or {})}
        self.capacity.pop("ephemeral-storage", None)
        self.labels = {"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(),
                                                                                          platform.machine()),
                       **(labels or {})}
        self._transition = now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _status(self) -> dict:
        heartbeat = now()

        def cond(type_: str, status: str, reason: str, message: str) -> dict:
            return {"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": heartbeat, "lastTransitionTime": self._transition}
        return {
            "capacity": dict(self.capacity),
            "allocatable": dict(self.capacity),
            "addresses": [{"type": "InternalIP", "address": self.node_ip}, {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": platform.release(),
                         "osImage": "pocketkube node", "containerRuntimeVersion": "pocketkube://0.1.0",
                         "kubeletVersion": VERSION, "kubeProxyVersion": VERSION, "operatingSystem": "linux",
                         "architecture": self.labels["kubernetes.io/arch"]},
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
        }

    def register(self) -> dict:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name, "labels": self.labels},
                "spec": {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]} if self.pod_cidr else {}}
        try:
            self.client.create(R.NODES, body)
            log.info("registered node %s", self.node_name)
        except AlreadyExists:
            node = self.client.get(R.NODES, self.node_name)
            patch: dict = {"metadata": {"labels": self.labels}}
            have = (node.get("spec") or {}).get("podCIDR")
            if self.pod_cidr and not have:
                patch["spec"] = {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]}
            elif have and self.pod_cidr and have != self.pod_cidr:
                log.warning("node %s already has podCIDR %s; --pod-cidr %s is ignored", self.node_name, have,
                            self.pod_cidr)
            self.client.patch(R.NODES, self.node_name, patch)
            log.info("node %s already registered; updated it", self.node_name)
        self.heartbeat()
        return self.client.get(R.NODES, self.node_name)

    def heartbeat(self) -> None:
        self.client.patch(R.NODES, self.node_name, {"status": self._status()}, subresource="status")
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": 40,
                          "renewTime": now_micro()}}
        try:
            self.client.patch(R.LEASES, self.node_name, {"spec": lease["spec"]}, "kube-node-lease")
        except NotFound:
            self.client.create(R.LEASES, lease, "kube-node-lease")

    def run(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="node-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                self.heartbeat()
            except ApiError as e:
                log.warning("heartbeat failed (retrying in %.0fs): %s", HEARTBEAT, e)
            except Exception:  # noqa: BLE001
                log.exception("heartbeat failed")

    def stop(self) -> None:
        self._stop.set()
