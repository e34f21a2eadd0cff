"""Builders for pod and node objects, shared by the scheduler's tests and benchmark.

They produce the JSON shapes the API server stores (what a user would POST,
plus the node status a kubelet would write), so a test reads as a scenario:
``make_node("n1", cpu="2", taints=[...])``, ``make_pod("web", cpu="250m")``.
"""
from __future__ import annotations

import itertools
from typing import Any

_uid = itertools.count(1)


def make_node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str | int = "110",
              labels: dict | None = None, taints: list[dict] | None = None, unschedulable: bool = False,
              ready: str | None = "True", extra: dict | None = None) -> dict:
    alloc: dict[str, Any] = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    alloc.update(extra or {})
    status: dict[str, Any] = {"capacity": dict(alloc), "allocatable": dict(alloc), "conditions": []}
    if ready is not None:
        status["conditions"].append({"type": "Ready", "status": ready, "reason": "KubeletReady"})
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    labels = dict(labels or {})
    labels.setdefault("kubernetes.io/hostname", name)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "uid": f"node-{name}", "resourceVersion": "1"},
            "spec": spec, "status": status}


def make_pod(name: str, *, namespace: str = "default", cpu: str | None = None, memory: str | None = None,
             node_name: str | None = None, labels: dict | None = None, tolerations: list[dict] | None = None,
             node_selector: dict | None = None, affinity: dict | None = None, host_ports: list[int] | None = None,
             init_containers: list[dict] | None = None, containers: list[dict] | None = None,
             scheduler_name: str | None = None, owner: str | None = None, priority: int | None = None,
             phase: str = "Pending", extra_requests: dict | None = None) -> dict:
    requests: dict[str, str] = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    requests.update(extra_requests or {})
    if containers is None:
        c: dict[str, Any] = {"name": "main", "image": "busybox"}
        if requests:
            c["resources"] = {"requests": requests}
        if host_ports:
            c["ports"] = [{"containerPort": p, "hostPort": p, "protocol": "TCP"} for p in host_ports]
        containers = [c]
    spec: dict[str, Any] = {"containers": containers}
    if init_containers:
        spec["initContainers"] = init_containers
    if node_name:
        spec["nodeName"] = node_name
    if tolerations:
        spec["tolerations"] = tolerations
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    if priority is not None:
        spec["priority"] = priority
    md: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{next(_uid)}",
                          "resourceVersion": "1", "labels": dict(labels or {})}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                  "uid": f"rs-{owner}", "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": {"phase": phase}}


def required_affinity(*terms: list[dict]) -> dict:
    """``required_affinity([expr, expr], [expr])``: terms ORed, expressions ANDed."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": list(t)} for t in terms]}}}


def preferred_affinity(*weighted: tuple[int, list[dict]]) -> dict:
    return {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": w, "preference": {"matchExpressions": list(exprs)}} for w, exprs in weighted]}}


def expr(key: str, op: str, *values: str) -> dict:
    d: dict[str, Any] = {"key": key, "operator": op}
    if values:
        d["values"] = list(values)
    return d


__all__ = ["make_node", "make_pod", "required_affinity", "preferred_affinity", "expr"]
