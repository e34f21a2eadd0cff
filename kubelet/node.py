"""The kubelet's Node: register it, then heartbeat (a Lease and the Ready condition) every 10 s.

Registration creates the Node with what the kubelet knows: labels,
``spec.podCIDR`` when ``--pod-cidr`` gives one, and the whole status —
capacity and allocatable (CPU count, memory, pods=110 unless given),
addresses (InternalIP, Hostname), the kubelet endpoint port the API server
relays logs and exec to, node info, and conditions (Ready plus the three
pressure conditions, all healthy). When the Node exists (an admin, a test or
an earlier run made it) it patches in the labels and the pod CIDR (unless
one is set) and then the status.

``register_network_unavailable`` (``--register-network-unavailable``) is for
a cluster whose pod network is set up by a per-node agent (``pocketkube
netd``, flannel's role): the Node starts with ``NetworkUnavailable=True``
(reason ``NoNetworkAgent``) and, when the kubelet creates it, the
``node.kubernetes.io/network-unavailable:NoSchedule`` taint, so the
scheduler never sees a fresh node untainted. The agent sets the condition
False once its routes are in place and the controller-manager's taint
controller removes the taint. A Node that already carries the condition
(the agent ran before, or the kubelet restarted) keeps it: the kubelet
writes it at most once, at registration, and only where it is missing.

Status writes are strategic-merge patches of ``nodes/status``, which merge
``conditions`` (and ``addresses``) by ``type``: a heartbeat refreshes the
four conditions the kubelet owns and leaves every other one — the network
agent's ``NetworkUnavailable`` — as it is. Each condition's
``lastTransitionTime`` is the time its status last changed: at registration
it is taken over from the Node for a condition whose status is unchanged
(a kubelet restart does not look like a transition), else it is now.

Heartbeats renew ``kube-node-lease/<node>`` (what the node lifecycle
controller watches in Kubernetes) and refresh the conditions'
``lastHeartbeatTime``; a failed heartbeat is retried at the next tick and
never stops the kubelet.

``wait_for_pod_cidr`` is the kubelet's wait for the controller-manager's
node IPAM (``--allocate-node-cidrs``) when no ``--pod-cidr`` is given: it
polls the Node until ``spec.podCIDR`` is set, for as long as it takes.
"""
from __future__ import annotations

import logging
import os
import platform
import threading
import time

from api import resources as R
from api.meta import now, now_micro
from client.errors import AlreadyExists, ApiError, Conflict, NotFound

log = logging.getLogger("kubelet.node")

HEARTBEAT = 10.0
VERSION = "v1.33.0-pocketkube"

NETWORK_UNAVAILABLE = "NetworkUnavailable"
NETWORK_UNAVAILABLE_TAINT = {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}
NETWORK_AGENT_MESSAGE = "waiting for the node's network agent (pocketkube netd) to set up routes"
POD_CIDR_POLL = 0.5       # seconds between reads of the Node while waiting for its podCIDR
POD_CIDR_LOG_EVERY = 5.0  # seconds between "still waiting" lines


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
                 capacity: dict | None = None, labels: dict | None = None,
                 register_network_unavailable: bool = False):
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
        self.register_network_unavailable = register_network_unavailable
        self._transitions: dict[str, str] = {}  # condition type -> lastTransitionTime (its status is fixed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # The conditions the kubelet owns, with the status it reports for each: (type, status, reason, message).
    CONDITIONS = (
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    )

    def _adopt_transitions(self, node: dict | None) -> None:
        """lastTransitionTime per condition: the Node's own where its status is the one we report, else now."""
        have = {c.get("type"): c for c in ((node or {}).get("status") or {}).get("conditions") or []
                if isinstance(c, dict)}
        t = now()
        for type_, status, _, _ in self.CONDITIONS:
            old = have.get(type_)
            keep = old is not None and old.get("status") == status and old.get("lastTransitionTime")
            self._transitions[type_] = old["lastTransitionTime"] if keep else t

    def _status(self) -> dict:
        heartbeat = now()
        conditions = [{"type": type_, "status": status, "reason": reason, "message": message,
                       "lastHeartbeatTime": heartbeat,
                       "lastTransitionTime": self._transitions.get(type_) or heartbeat}
                      for type_, status, reason, message in self.CONDITIONS]
        return {
            "capacity": dict(self.capacity),
            "allocatable": dict(self.capacity),
            "addresses": [{"type": "InternalIP", "address": self.node_ip}, {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": platform.release(),
                         "osImage": "pocketkube node", "containerRuntimeVersion": "pocketkube://0.1.0",
                         "kubeletVersion": VERSION, "kubeProxyVersion": VERSION, "operatingSystem": "linux",
                         "architecture": self.labels["kubernetes.io/arch"]},
            "conditions": conditions,
        }

    @staticmethod
    def _network_unavailable() -> dict:
        t = now()
        return {"type": NETWORK_UNAVAILABLE, "status": "True", "reason": "NoNetworkAgent",
                "message": NETWORK_AGENT_MESSAGE, "lastHeartbeatTime": t, "lastTransitionTime": t}

    def _create_body(self) -> dict:
        spec: dict = {}
        if self.pod_cidr:
            spec.update(podCIDR=self.pod_cidr, podCIDRs=[self.pod_cidr])
        status = self._status()
        if self.register_network_unavailable:
            spec["taints"] = [dict(NETWORK_UNAVAILABLE_TAINT)]
            status["conditions"].append(self._network_unavailable())
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name, "labels": self.labels},
                "spec": spec, "status": status}

    def register(self) -> dict:
        """Create or update this kubelet's Node (see the module docstring); returns it as stored."""
        t = now()
        self._transitions = {type_: t for type_, *_ in self.CONDITIONS}
        try:
            node = self.client.create(R.NODES, self._create_body())
            log.info("registered node %s%s", self.node_name,
                     " (NetworkUnavailable until its network agent reports)" if self.register_network_unavailable
                     else "")
        except AlreadyExists:
            node = self._update_existing()
            log.info("node %s already registered; updated it", self.node_name)
        self._renew_lease()
        return node

    def _update_existing(self) -> dict:
        node = self.client.get(R.NODES, self.node_name)
        patch: dict = {"metadata": {"labels": self.labels}}
        have = (node.get("spec") or {}).get("podCIDR")
        if self.pod_cidr and not have:
            patch["spec"] = {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]}
        elif have and self.pod_cidr and have != self.pod_cidr:
            log.warning("node %s already has podCIDR %s; --pod-cidr %s is ignored", self.node_name, have,
                        self.pod_cidr)
        node = self.client.patch(R.NODES, self.node_name, patch)
        for attempt in range(5):
            self._adopt_transitions(node)
            status = self._status()
            body: dict = {"status": status}
            types = {c.get("type") for c in (node.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}
            if self.register_network_unavailable and NETWORK_UNAVAILABLE not in types:
                status["conditions"].append(self._network_unavailable())
                # A precondition: should the network agent write its condition in between, we must not replace it.
                body["metadata"] = {"resourceVersion": node["metadata"]["resourceVersion"]}
            try:
                return self.client.patch(R.NODES, self.node_name, body, patch_type="strategic", subresource="status")
            except Conflict:
                if attempt == 4:
                    raise
                node = self.client.get(R.NODES, self.node_name)
        raise AssertionError("unreachable")

    def heartbeat(self) -> None:
        """Refresh the kubelet's own conditions (a strategic merge: other components' conditions stay) and the
        Lease."""
        self.client.patch(R.NODES, self.node_name, {"status": self._status()}, patch_type="strategic",
                          subresource="status")
        self._renew_lease()

    def _renew_lease(self) -> None:
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


def wait_for_pod_cidr(client, node_name: str, stop: threading.Event, *, poll: float = POD_CIDR_POLL,
                      log_every: float = POD_CIDR_LOG_EVERY, clock=time.monotonic) -> str | None:
    """The Node's ``spec.podCIDR`` once something (the controller-manager's node IPAM) has set it; None when
    ``stop`` is set first. Every read is one bounded GET (the client's timeout); errors are logged and retried;
    it waits for as long as it takes, saying so every ``log_every`` seconds."""
    started = clock()
    next_log = started
    while not stop.is_set():
        error = None
        try:
            node = client.get(R.NODES, node_name)
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr:
                log.info("node %s has podCIDR %s", node_name, cidr)
                return cidr
        except ApiError as e:
            error = e
        t = clock()
        if t >= next_log:
            # (no "running" in this line: the e2e fixtures take that word in the kubelet's log as its start)
            log.info("waiting for node %s's spec.podCIDR (was the controller-manager started with "
                     "--allocate-node-cidrs?)%s, %.0fs so far", node_name, f"; last read failed: {error}" if error
                     else "", t - started)
            next_log = t + log_every
        stop.wait(poll)
    return None
