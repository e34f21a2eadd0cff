"""Namespace (core/v1): the scope of namespaced objects.

A new namespace is Active and carries the `kubernetes` finalizer. Deleting
one does not remove it: it turns Terminating and stays until the API
server's finalizing loop (apiserver/bootstrap.py) has deleted its contents.
The four built-in namespaces may never be deleted.
"""
from __future__ import annotations

from datetime import datetime

from api.defaults import ensure_dict, set_default
from api.kinds.base import Forbidden, Strategy
from api.tables import Printer, age_col, col, get, name_col, since
from api.validation import Errs, STANDARD_FINALIZERS, invalid, is_qualified_name, name_is_dns_label


def _namespace(ns: dict) -> None:
    spec = ensure_dict(ns, "spec")
    if spec is not None and spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    status = ensure_dict(ns, "status")
    if status is not None:
        set_default(status, "phase", "Active")


COLUMNS = [
    name_col(),
    col("Status", "The status of the namespace"),
    age_col(),
]


def _namespace_cells(ns: dict, now: datetime) -> list:
    meta = ns.get("metadata") or {}
    return [meta.get("name", ""), get(ns, "status", "phase", default=""),
            since(meta.get("creationTimestamp"), now)]


def _validate_namespace(e: Errs, ns: dict) -> None:
    spec = e.obj(ns, "spec", "spec")
    for f in e.strings(spec, "finalizers", "spec.finalizers"):
        msgs = is_qualified_name(f)
        e.msgs("spec.finalizers", f, msgs)
        if not msgs and "/" not in f and f not in STANDARD_FINALIZERS:
            e.append(invalid("spec.finalizers", f,
                             "name is neither a standard finalizer name nor is it fully qualified"))


PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class NamespaceStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.Namespace"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_label)
    fields = ("status.phase",)
    printer = Printer(COLUMNS, _namespace_cells)
    retain_on_delete = True

    def prepare_for_create(self, obj: dict) -> None:
        obj["status"] = {"phase": "Active"}

    def default(self, obj: dict) -> None:
        _namespace(obj)

    def check(self, e: Errs, obj: dict) -> None:
        _validate_namespace(e, obj)

    def check_delete(self, obj: dict) -> None:
        name = obj["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')

    def mark_terminating(self, obj: dict) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"
