"""Server-side Table output: the columns and cells kubectl `get` prints.

kubectl does not format resources itself. It asks the server for a
`meta.k8s.io/v1` Table (section 3 of docs/reference/KUBECTL_COMPAT.md) and
prints the cells it gets back as they are. A real cluster's columns come
from kube-apiserver's printers (`pkg/printers/internalversion/printers.go`),
so each kind's strategy (api/kinds/) copies its printer: the column definitions (names, types, formats, priorities) and the rules
behind each cell (the pod STATUS logic, `Restarts` with `(5m ago)`,
`<none>`/`<pending>` placeholders and `duration.HumanDuration` ages). Then
`kubectl get pods` shows `NAME READY STATUS RESTARTS AGE` just like it does
against a real cluster.

Like the real server (its TableConvertor always passes `Wide: true`), every
row carries all cells, including the `priority: 1` ones. kubectl hides those
unless `-o wide` is given. A kind without a printer gets the apiserver's
default convertor: `Name` and `Created At` (RFC3339).

This module holds what the printers share: the `Printer` shape, the Table
builder, the column and cell helpers, `human_duration`, and printers for the
workload kinds pkctl shows before the server serves them. The module is
pure: stdlib only, no I/O, and `now` is passed in, so ages are
deterministic under test.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

__all__ = [
    "Printer",
    "build_table",
    "column_definitions",
    "row_cells",
    "row_conditions",
    "human_duration",
    "table_for",
    "format_labels",
    "format_label_selector",
]

# --------------------------------------------------------------------------
# Column definitions. Descriptions are the API field docs, as kube uses them.
# --------------------------------------------------------------------------

D_NAME = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
D_CREATED = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the "
    "system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
D_CONTAINERS = "Names of each container in the template."
D_IMAGES = "Images referenced by each container in the template."


def col(name: str, description: str, type_: str = "string", fmt: str = "", priority: int = 0) -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


def name_col() -> dict:
    return col("Name", D_NAME, fmt="name")


def age_col() -> dict:
    return col("Age", D_CREATED)


_DEPLOYMENT_COLUMNS = [
    name_col(),
    col("Ready", "Number of the pod with ready state"),
    col("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have "
                      "the desired template spec."),
    col("Available", "Total number of available pods (ready for at least minReadySeconds) "
                     "targeted by this deployment."),
    age_col(),
    col("Containers", D_CONTAINERS, priority=1),
    col("Images", D_IMAGES, priority=1),
    col("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this "
                    "will be the ones affected by this deployment.", priority=1),
]
_REPLICASET_COLUMNS = [
    name_col(),
    col("Desired", "Replicas is the number of desired replicas. This is a pointer to distinguish "
                   "between explicit zero and unspecified. Defaults to 1.", type_="integer"),
    col("Current", "Replicas is the most recently observed number of replicas.", type_="integer"),
    col("Ready", "The number of ready replicas for this replica set.", type_="integer"),
    age_col(),
    col("Containers", D_CONTAINERS, priority=1),
    col("Images", D_IMAGES, priority=1),
    col("Selector", "Selector is a label query over pods that should match the replica count. "
                    "Label keys and values that must match in order to be controlled by this "
                    "replica set.", priority=1),
]



# rest.NewDefaultTableConvertor: what the apiserver serves for kinds without a printer.
def _default_cells(obj: dict, now: datetime) -> list:
    meta = obj.get("metadata") or {}
    t = parse_time(meta.get("creationTimestamp"))
    created = t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "0001-01-01T00:00:00Z"
    return [meta.get("name", ""), created]


@dataclass(frozen=True)
class Printer:
    """One kind's Table printer: its columns, its row cells, and optional row conditions."""

    columns: list[dict]
    cells: Callable[[dict, datetime], list]
    conditions: Callable[[dict], list[dict] | None] = lambda obj: None


DEFAULT_PRINTER = Printer([name_col(), col("Created At", D_CREATED, type_="date")], _default_cells)


# --------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------

def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration: ~2-3 significant figures.

    A deviation of up to 2 seconds (exclusive) into the future counts as "0s",
    to allow for clock skew. Anything further ahead is "<invalid>".
    """
    secs = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    """RFC3339 (with or without fraction, `Z` or offset) to an aware datetime; None if unset."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    s = str(value).strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        # Go may print more than 6 fractional digits; Python takes at most 6.
        if "." in s:
            head, _, rest = s.partition(".")
            digits = "".join(ch for ch in rest if ch.isdigit())
            tz = rest[len(digits):]
            try:
                t = datetime.fromisoformat(f"{head}.{digits[:6].ljust(6, '0')}{tz}")
            except ValueError:
                return None
        else:
            return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    if t.year <= 1:  # Go's zero time marshalled out: treat as unset
        return None
    return t


def aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


def since(value: Any, now: datetime) -> str:
    """translateTimestampSince: HumanDuration(now - t), or `<unknown>` when unset."""
    t = parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((aware(now) - t).total_seconds())


# --------------------------------------------------------------------------
# Small formatting helpers shared by the printers
# --------------------------------------------------------------------------

def get(d: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return default
        d = d.get(p)
        if d is None:
            return default
    return d


def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: `k=v` pairs sorted by key, or `<none>`."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: dict | None) -> str:
    """metav1.LabelSelectorAsSelector(sel).String(); "" for nil or empty selectors."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (selector.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key", "")
        op = expr.get("operator", "")
        vals = sorted(expr.get("values") or [])
        if op == "In":
            reqs.append((key, f"{key} in ({','.join(vals)})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({','.join(vals)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
        else:
            return "<error>"
    reqs.sort(key=lambda r: r[0])  # stable, by key, like internalSelector's sort
    return ",".join(r for _, r in reqs)


def format_label_selector(selector: dict | None) -> str:
    """metav1.FormatLabelSelector: the selector string, or `<none>` when it is empty."""
    s = selector_string(selector)
    return s or "<none>"


def layout_containers(containers: list | None) -> tuple[str, str]:
    containers = containers or []
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def join_host_port(host: str, port: Any) -> str:
    """net.JoinHostPort: brackets around IPv6 literals."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def lb_ingress(status: dict | None) -> str:
    """loadBalancerStatusStringer in wide mode: the sorted set of IPs/hostnames."""
    out: set[str] = set()
    for ing in get(status, "ingress", default=[]) or []:
        if ing.get("ip"):
            out.add(ing["ip"])
        elif ing.get("hostname"):
            out.add(ing["hostname"])
    return ",".join(sorted(out))


# --------------------------------------------------------------------------
# Printers: one per kind, each returning every cell (wide ones included)
# --------------------------------------------------------------------------

def _replicas(spec: dict) -> int:
    r = spec.get("replicas")
    return 1 if r is None else int(r)  # the apiserver defaults replicas to 1


def _deployment_cells(d: dict, now: datetime) -> list:
    meta = d.get("metadata") or {}
    spec = d.get("spec") or {}
    status = d.get("status") or {}
    names, images = layout_containers(get(spec, "template", "spec", "containers"))
    return [
        meta.get("name", ""),
        f"{int(status.get('readyReplicas') or 0)}/{_replicas(spec)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        since(meta.get("creationTimestamp"), now),
        names,
        images,
        selector_string(spec.get("selector")),
    ]


def _replicaset_cells(rs: dict, now: datetime) -> list:
    meta = rs.get("metadata") or {}
    spec = rs.get("spec") or {}
    status = rs.get("status") or {}
    names, images = layout_containers(get(spec, "template", "spec", "containers"))
    return [
        meta.get("name", ""),
        _replicas(spec),
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        since(meta.get("creationTimestamp"), now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


# Printers for workload kinds pkctl shows that api.resources does not serve yet.
_EXTRA_PRINTERS = {"Deployment": Printer(_DEPLOYMENT_COLUMNS, _deployment_cells),
                   "ReplicaSet": Printer(_REPLICASET_COLUMNS, _replicaset_cells)}
_EXTRA_NAMES = {"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
                "replicaset": "ReplicaSet", "replicasets": "ReplicaSet", "rs": "ReplicaSet"}


def _kind_printer(kind: str) -> tuple[str, str, Printer]:
    """(kind, apiVersion, printer) for `Pod`, `pods`, `po` and the like."""
    from api import resources as R  # the kind modules import this module: look the table up late

    extra = _EXTRA_NAMES.get(kind.lower())
    if extra:
        return extra, "", _EXTRA_PRINTERS[extra]
    rt = R.resolve(kind)
    if rt is None:
        return kind, "", DEFAULT_PRINTER
    return rt.kind, rt.api_version, rt.strategy.printer or DEFAULT_PRINTER


def column_definitions(kind: str) -> list[dict]:
    """The Table columnDefinitions the real apiserver serves for `kind` (a fresh copy)."""
    return copy.deepcopy(_kind_printer(kind)[2].columns)


def row_cells(kind: str, obj: dict, now: datetime) -> list:
    """All cells (wide ones included) of one object's row, as kube-apiserver prints them."""
    return _kind_printer(kind)[2].cells(obj, now)


def row_conditions(kind: str, obj: dict) -> list[dict] | None:
    """Row conditions (kube marks Succeeded and Failed pods `Completed`); otherwise None."""
    return _kind_printer(kind)[2].conditions(obj)


# --------------------------------------------------------------------------
# The Table
# --------------------------------------------------------------------------

def _row_object(kind: str, api_version: str, obj: dict, include_object: str) -> dict | None:
    mode = (include_object or "Metadata").lower()
    if mode == "none":
        return None
    if mode == "object":
        if obj.get("kind") and obj.get("apiVersion"):
            return obj
        full = dict(obj)
        full.setdefault("kind", kind)
        if api_version:
            full.setdefault("apiVersion", api_version)
        return full
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def build_table(printer: Printer, kind: str, api_version: str, objs: list[dict], now: datetime,
                include_object: str = "Metadata", resource_version: str = "", include_columns: bool = True) -> dict:
    """A complete `meta.k8s.io/v1` Table for `objs` of one kind, printed by `printer`.

    `include_object` is the request's `includeObject`: "Metadata" (default;
    rows carry a PartialObjectMetadata), "Object" (the full object) or "None"
    (no object). `metadata.resourceVersion` is set when `resource_version` is
    non-empty; `metadata` is always a dict so callers can add `continue`.
    With `include_columns=False`, `columnDefinitions` is null, as in the real
    server's watch events after the first one.
    """
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": printer.cells(obj, now)}
        conds = printer.conditions(obj)
        if conds:
            row["conditions"] = conds
        ro = _row_object(kind, api_version, obj, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = str(resource_version)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": copy.deepcopy(printer.columns) if include_columns else None,
        "rows": rows,
    }


def table_for(kind: str, objs: list[dict], now: datetime, include_object: str = "Metadata",
              resource_version: str = "", include_columns: bool = True) -> dict:
    """build_table for a kind named as kubectl names it (`Pod`, `pods`, `po`)."""
    k, api_version, printer = _kind_printer(kind)
    return build_table(printer, k, api_version, objs, now, include_object, resource_version, include_columns)
