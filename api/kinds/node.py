"""Node (core/v1): a machine the kubelet registers and keeps reporting on.

A spec write keeps the status the kubelet reports; podCIDR(s) and
providerID may be set once, never changed.

The well-known taint keys (``k8s.io/api/core/v1/well_known_taints.go``) live
here, with the kind, because several components must spell them the same
way without importing one another: the scheduler applies the not-ready and
unschedulable ones, the controller-manager's taint controller writes all of
them from the Node's conditions, and the kubelet registers a Node with the
network-unavailable one.
"""
from __future__ import annotations

from datetime import datetime

from api.defaults import ensure_dict
from api.kinds.base import Strategy
from api.tables import Printer, age_col, col, name_col, since
from api.validation import (
    Cause, Errs, TAINT_EFFECTS, duplicate, forbidden, invalid, is_cidr, is_qualified_name, is_valid_label_value,
    name_is_dns_subdomain, quantity,
)

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"


def _node(node: dict) -> None:
    ensure_dict(node, "spec")
    ensure_dict(node, "status")


COLUMNS = [
    name_col(),
    col("Status", "The status of the node"),
    col("Roles", "The roles of the node"),
    age_col(),
    col("Version", "Kubelet Version reported by the node."),
    col("Internal-IP", "List of addresses reachable to the node. Queried from cloud provider, if "
                       "available.", priority=1),
    col("External-IP", "List of addresses reachable to the node. Queried from cloud provider, if "
                       "available.", priority=1),
    col("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 "
                    "(wheezy)).", priority=1),
    col("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. "
                          "3.16.0-0.bpo.4-amd64).", priority=1),
    col("Container-Runtime", "ContainerRuntime Version reported by the node through runtime "
                             "remote API (e.g. containerd://1.4.2).", priority=1),
]


def _node_roles(labels: dict | None) -> str:
    roles: set[str] = set()
    for k, v in (labels or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(status: dict, type_: str) -> str:
    for a in status.get("addresses") or []:
        if a.get("type") == type_:
            return a.get("address", "")
    return "<none>"


def _node_cells(node: dict, now: datetime) -> list:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    parts: list[str] = []
    ready = None
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            ready = c  # the last one wins, like kube's condition map
    if ready is not None:
        parts.append("Ready" if ready.get("status") == "True" else "NotReady")
    else:
        parts.append("Unknown")
    if spec.get("unschedulable"):
        parts.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [
        meta.get("name", ""),
        ",".join(parts),
        _node_roles(meta.get("labels")),
        since(meta.get("creationTimestamp"), now),
        info.get("kubeletVersion") or "",
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _validate_node(e: Errs, node: dict) -> None:
    spec = e.obj(node, "spec", "spec")
    cidr = e.string(spec, "podCIDR", "spec.podCIDR")
    if cidr:
        e.msgs("spec.podCIDR", cidr, is_cidr(cidr))
    for i, c in enumerate(e.strings(spec, "podCIDRs", "spec.podCIDRs")):
        e.msgs(f"spec.podCIDRs[{i}]", c, is_cidr(c))
    e.boolean(spec, "unschedulable", "spec.unschedulable")
    seen: set[tuple[str, str]] = set()
    for p, taint in e.objects(spec, "taints", "spec.taints"):
        key = e.string(taint, "key", f"{p}.key")
        e.msgs(f"{p}.key", key, is_qualified_name(key))
        value = e.string(taint, "value", f"{p}.value")
        msgs = is_valid_label_value(value)
        if msgs:
            e.append(invalid(f"{p}.value", value, ";".join(msgs)))
        effect = e.string(taint, "effect", f"{p}.effect")
        e.one_of(f"{p}.effect", effect, TAINT_EFFECTS)
        if (key, effect) in seen:
            c = duplicate(p, taint)
            c["message"] += ": taints must be unique by key and effect pair"
            e.append(c)
        seen.add((key, effect))
    status = e.obj(node, "status", "status")
    for part in ("capacity", "allocatable"):
        for name, value in e.obj(status, part, f"status.{part}").items():
            quantity(e, f"status.{part}[{name}]", value)
    for p, addr in e.objects(status, "addresses", "status.addresses"):
        e.string(addr, "address", f"{p}.address")
        e.string(addr, "type", f"{p}.type")



def _node_update(new: dict, old: dict) -> list[Cause]:
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    causes = []
    msg = "node updates may not change podCIDR except from \"\" to valid"
    if old_spec.get("podCIDR") and new_spec.get("podCIDR") != old_spec["podCIDR"]:
        causes.append(forbidden("spec.podCIDR", msg))
    if old_spec.get("podCIDRs") and new_spec.get("podCIDRs") != old_spec["podCIDRs"]:
        causes.append(forbidden("spec.podCIDRs", msg))
    if old_spec.get("providerID") and new_spec.get("providerID") != old_spec["providerID"]:
        causes.append(forbidden("spec.providerID", "node updates may not change providerID except from \"\" to valid"))
    return causes


class NodeStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.Node"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)
    fields = ("spec.unschedulable",)
    printer = Printer(COLUMNS, _node_cells)

    def default(self, obj: dict) -> None:
        _node(obj)

    def check(self, e: Errs, obj: dict) -> None:
        _validate_node(e, obj)

    def check_update(self, new: dict, old: dict, causes: list[Cause]) -> list[Cause]:
        return causes + _node_update(new, old)
