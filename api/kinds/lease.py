"""Lease (coordination.k8s.io/v1): node heartbeats and leader election.

No defaults; PUT creates a missing lease (the kubelet renews by name).
"""
from __future__ import annotations

from datetime import datetime

from api.kinds.base import Strategy
from api.tables import Printer, age_col, col, get, name_col, since
from api.validation import Errs, invalid, name_is_dns_subdomain


COLUMNS = [
    name_col(),
    col("Holder", "holderIdentity contains the identity of the holder of a current lease."),
    age_col(),
]


def _lease_cells(lease: dict, now: datetime) -> list:
    meta = lease.get("metadata") or {}
    return [meta.get("name", ""), get(lease, "spec", "holderIdentity", default=""),
            since(meta.get("creationTimestamp"), now)]


def _validate_lease(e: Errs, lease: dict) -> None:
    spec = e.obj(lease, "spec", "spec")
    duration = e.integer(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds")
    if duration is not None and duration <= 0:
        e.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = e.integer(spec, "leaseTransitions", "spec.leaseTransitions")
    if transitions is not None and transitions < 0:
        e.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    for key in ("holderIdentity", "acquireTime", "renewTime"):
        e.string(spec, key, f"spec.{key}")


class LeaseStrategy(Strategy):
    protobuf = "k8s.io.api.coordination.v1.Lease"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)
    printer = Printer(COLUMNS, _lease_cells)
    allow_create_on_update = True

    def check(self, e: Errs, obj: dict) -> None:
        _validate_lease(e, obj)
