"""Binding (core/v1): the scheduler's "put this pod on that node", a verb rather than a stored object.

Only its validation lives here; the write itself is the Pod strategy's
`bind` (api/kinds/pod.py), run by the registry in one transaction.
"""
from __future__ import annotations

from api.kinds.base import Strategy
from api.validation import Errs, name_is_dns_subdomain, not_supported, required


def _validate_binding(e: Errs, binding: dict) -> None:
    target = e.obj(binding, "target", "target")
    kind = e.string(target, "kind", "target.kind")
    if kind and kind != "Node":
        e.append(not_supported("target.kind", kind, ("Node", "<empty>")))
    if not e.string(target, "name", "target.name"):
        e.append(required("target.name"))


class BindingStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.Binding"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)

    def check(self, e: Errs, obj: dict) -> None:
        _validate_binding(e, obj)
