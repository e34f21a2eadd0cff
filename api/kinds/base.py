"""What a resource kind decides, as one object the generic registry asks.

Kubernetes keeps each kind's rules in a "strategy" next to its storage
(`pkg/registry/<group>/<kind>/strategy.go`): what the server fills in on
create, how an object is validated, what a spec write may change and what a
`status` write may, which field selectors the kind supports, how its rows
print in a Table, and what a delete does (a grace period, a finalizing
namespace). pocketkube does the same: `Strategy` here holds the behaviour
every kind shares, a kind module (api/kinds/pod.py, ...) subclasses it, and
api/resources.py names the class in the kind's table row. The registry and
the handlers never test a kind's name; they call `rt.strategy`.

This module is pure (no I/O, no storage). The one thing a strategy needs
from storage is an allocation seam: Service ClusterIPs and NodePorts are
chosen here (api/kinds/service.py) and recorded as allocation keys the
registry reserves and releases in the write's own transaction (`Allocations`).
Refusals are the exceptions below; the registry turns them into metav1
Status answers.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Protocol

from api import tables
from api.validation import Cause, Errs, NameFn, meta_update, type_invalid, validate_object_meta, \
    validate_path_segment_name

if TYPE_CHECKING:
    from api.resources import ResourceType


class Invalid(Exception):
    """The object breaks a rule: 422 with these field causes."""

    def __init__(self, causes: list[Cause]):
        super().__init__(causes)
        self.causes = causes


class Conflict(Exception):
    """The write cannot apply to the object as it is now: 409 with this reason."""


class Forbidden(Exception):
    """The verb is never allowed on this object: 403 with this message."""


class InternalError(Exception):
    """The server cannot do what was asked, through no fault of the request: 500."""


class Allocations(Protocol):
    """Allocation keys ("serviceips/10.96.0.10") held in the same transaction as the write.

    The registry implements it on its storage transaction, so a reservation
    and the object that owns it are written (or rolled back) together.
    """

    # What this server was configured to hand out, in the form the allocating
    # strategy defines (api/kinds/service.py's ServiceAllocator for Services).
    ranges: Any

    def reserve(self, key: str, owner: str) -> bool:
        """Take key for owner; False when someone already holds it."""

    def release(self, key: str) -> None:
        """Give key back (no error when nobody held it)."""

    def is_taken(self, key: str) -> bool: ...

    def taken(self, prefix: str) -> set[str]:
        """The last path segment of every held key under prefix ("serviceips/")."""


COMMON_FIELDS = ("metadata.name", "metadata.namespace")


def field_path(obj: Any, path: str) -> Any:
    """The value at a dotted path ("spec.nodeName"), or None."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def field_string(v: Any) -> str:
    """A field's value as a field selector compares it (Go's fmt of the field)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Strategy:
    """The rules of one resource kind; the defaults are those of a kind with no rules of its own.

    One instance exists per ResourceType (``rt.strategy``), bound to its row.
    """

    # metadata.name rule (Kubernetes' ValidateObjectMeta name function).
    name_fn: NameFn = staticmethod(validate_path_segment_name)
    # Field selectors beyond metadata.name/namespace.
    fields: tuple[str, ...] = ()
    # Table printer; None is kube-apiserver's default convertor (Name, Created At).
    printer: tables.Printer | None = None
    # PUT of a missing object creates it (Kubernetes' AllowCreateOnUpdate).
    allow_create_on_update = False
    # Objects of this kind may still be created in a namespace being deleted.
    create_in_terminating_namespace = False
    # Delete leaves the object in place, marked terminating, for a finalizing loop to remove.
    retain_on_delete = False
    # The full name of this kind's protobuf message in the schema (api/protobuf), e.g.
    # "k8s.io.api.core.v1.Pod"; None: protobuf bodies of it get a 415 naming the kind.
    protobuf = None

    def __init__(self, rt: "ResourceType"):
        self.rt = rt

    @property
    def kind(self) -> str:
        return self.rt.kind

    @property
    def keeps_status_on_update(self) -> bool:
        """A spec write keeps the stored status (only the status subresource writes it)."""
        return "status" in self.rt.subresources

    # -- create
    def prepare_for_create(self, obj: dict) -> None:
        """Reset what the server owns on create (status, timestamps); metadata is done already."""

    def default(self, obj: dict) -> None:
        """Fill in defaults in place (never raises; idempotent; runs on create and update)."""

    def defaults(self, obj: dict) -> dict:
        if isinstance(obj, dict):
            self.default(obj)
        return obj

    # -- validation
    def check(self, e: Errs, obj: dict) -> None:
        """Kind-specific causes for obj (metadata is checked already)."""

    def check_update(self, new: dict, old: dict, causes: list[Cause]) -> list[Cause]:
        """Causes for replacing old with new, given validate(new)'s causes."""
        return causes

    def validate(self, obj: Any) -> list[Cause]:
        """All causes for a new object; empty when it is valid."""
        if not isinstance(obj, dict):
            return [type_invalid("<root>", obj, "object")]
        e = Errs(validate_object_meta(obj.get("metadata"), self.rt.namespaced, self.name_fn))
        self.check(e, obj)
        return list(e)

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        causes = self.validate(new)
        if not isinstance(new, dict) or not isinstance(old, dict):
            return causes
        causes += meta_update(new.get("metadata"), old.get("metadata"))
        return self.check_update(new, old, causes)

    # -- update rules
    def prepare_for_update(self, new: dict, old: dict) -> None:
        """A spec write: keep what it may not change (server metadata is kept already)."""
        if self.keeps_status_on_update and "status" in old:
            new["status"] = old["status"]

    def prepare_for_status_update(self, new: dict, old: dict) -> dict:
        """A status write: old with new's status (and labels/annotations, as Kubernetes allows)."""
        merged = dict(old)
        merged["status"] = new.get("status", old.get("status"))
        md = dict(old["metadata"])
        for k in ("labels", "annotations"):
            if k in new.get("metadata", {}):
                md[k] = new["metadata"][k]
        merged["metadata"] = md
        return merged

    # -- allocation (in the write's transaction)
    def allocate(self, alloc: Allocations, obj: dict, old: dict | None) -> None:
        """Reserve what obj needs (old is the stored object on update); raise Invalid to refuse."""

    def release(self, alloc: Allocations, obj: dict) -> None:
        """Give back what a deleted obj held."""

    # -- delete
    def check_delete(self, obj: dict) -> None:
        """Raise Forbidden when obj may never be deleted."""

    def grace_period(self, obj: dict, requested: int | None) -> int:
        """Seconds the object stays terminating before it is removed (0: at once)."""
        return 0

    def mark_terminating(self, obj: dict) -> None:
        """What a retained object shows while it terminates (retain_on_delete kinds)."""

    # -- field selectors
    @property
    def supported_fields(self) -> tuple[str, ...]:
        return COMMON_FIELDS + self.fields

    def field_value(self, obj: dict, field: str) -> str:
        if field == "metadata.namespace" and "namespace" not in obj.get("metadata", {}):
            return ""
        return field_string(field_path(obj, field))

    def field_getter(self, obj: dict) -> Callable[[str], str]:
        return lambda field: self.field_value(obj, field)

    # -- Table output
    def table(self, objs: list[dict], now: datetime, include_object: str = "Metadata",
              resource_version: str = "", include_columns: bool = True) -> dict:
        return tables.build_table(self.printer or tables.DEFAULT_PRINTER, self.kind, self.rt.api_version,
                                  objs, now, include_object, resource_version, include_columns)
