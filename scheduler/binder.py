"""The scheduler's writes to pods, behind one narrow seam (docs/design.md, style 8).

The scheduler changes a pod in exactly two ways, both through subresources
so it never races with whoever owns the rest of the object:

* ``bind(pod, node)`` - POST ``pods/{name}/binding``. The API server sets
  ``spec.nodeName`` and ``PodScheduled=True`` in one compare-and-swap and
  answers 409 if the pod is already bound (another scheduler, a user with
  ``nodeName``) or being deleted, 404 if it is gone. Those are not failures
  to retry: they raise ``BindConflict`` and the caller drops the pod (and
  forgets its assumption); the informer then shows the truth. Anything else
  (5xx, connection refused) raises the client error, and the pod is retried
  with back-off.
* ``set_unschedulable(pod, message)`` - a strategic-merge PATCH of
  ``pods/{name}/status`` that merges one ``PodScheduled=False`` condition
  (reason ``Unschedulable``) into the list by its ``type`` key, leaving the
  other conditions alone.

``ClientBinder`` does this with any ``client.rest.Writer`` (the shared
``Client``, which sends both over its lean transport: one keep-alive
connection per bind worker, a tenth of httpx's CPU per request; see
``client.lean``).
``FakeBinder`` records calls in memory, can be told to fail, and can call
back (e.g. into the scheduler's informer handlers, to play the watch) so the
whole loop runs in unit tests without a server.
"""
from __future__ import annotations

import threading
from typing import Callable, Protocol

from api import resources as R
from api.meta import now
from client.errors import Conflict, NotFound
from client.rest import Writer

POD_SCHEDULED = "PodScheduled"
REASON_UNSCHEDULABLE = "Unschedulable"


class BindConflict(Exception):
    """The pod cannot be bound any more (already bound, being deleted, or gone)."""


class Binder(Protocol):
    def bind(self, pod: dict, node_name: str) -> None: ...

    def set_unschedulable(self, pod: dict, message: str) -> None: ...


def unschedulable_condition(message: str, pod: dict | None = None) -> dict:
    """PodScheduled=False; ``lastTransitionTime`` only moves when the status changes, as upstream."""
    since = None
    for c in ((pod or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == POD_SCHEDULED and c.get("status") == "False":
            since = c.get("lastTransitionTime")
    # No "lastProbeTime": null here: in a merge patch null means "delete the field".
    return {"type": POD_SCHEDULED, "status": "False", "reason": REASON_UNSCHEDULABLE,
            "message": message, "lastTransitionTime": since or now()}


def has_unschedulable_condition(pod: dict, message: str) -> bool:
    """True if the pod already carries exactly this condition (then there is nothing to write)."""
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == POD_SCHEDULED:
            return (c.get("status") == "False" and c.get("reason") == REASON_UNSCHEDULABLE
                    and c.get("message") == message)
    return False


class ClientBinder:
    """Binds and reports through ``client`` (a ``client.rest.Writer``)."""

    def __init__(self, client: Writer):
        self.client = client

    def bind(self, pod: dict, node_name: str) -> None:
        md = pod["metadata"]
        try:
            self.client.bind(md["name"], md.get("namespace") or "default", node_name, uid=md.get("uid"))
        except (Conflict, NotFound) as e:
            raise BindConflict(e.message) from e

    def set_unschedulable(self, pod: dict, message: str) -> None:
        md = pod["metadata"]
        try:
            self.client.patch_status(R.PODS, md["name"], {"conditions": [unschedulable_condition(message, pod)]},
                                     md.get("namespace") or "default", patch_type="strategic")
        except NotFound:
            pass  # deleted meanwhile: nothing to report on


class FakeBinder:
    """In-memory Binder for tests: ``binds``/``conditions`` record calls; ``fail`` injects errors.

    ``fail`` maps a pod key to an exception instance raised by its next bind
    (``BindConflict(...)`` to simulate 409). ``on_bind(pod, node)`` is called
    after a successful bind, with the bound copy of the pod.
    """

    def __init__(self, on_bind: Callable[[dict, str], None] | None = None):
        self.lock = threading.Lock()
        self.binds: dict[str, str] = {}
        self.bind_order: list[tuple[str, str]] = []
        self.conditions: dict[str, str] = {}
        self.fail: dict[str, Exception] = {}
        self.on_bind = on_bind

    def bind(self, pod: dict, node_name: str) -> None:
        md = pod["metadata"]
        key = f"{md.get('namespace') or 'default'}/{md['name']}"
        with self.lock:
            err = self.fail.pop(key, None)
            if err is not None:
                raise err
            if key in self.binds:
                raise BindConflict(f"pod {md['name']} is already assigned to node \"{self.binds[key]}\"")
            self.binds[key] = node_name
            self.bind_order.append((key, node_name))
        if self.on_bind is not None:
            bound = dict(pod)
            bound["spec"] = dict(pod.get("spec") or {}, nodeName=node_name)
            bound["metadata"] = dict(md)
            self.on_bind(bound, node_name)

    def set_unschedulable(self, pod: dict, message: str) -> None:
        md = pod["metadata"]
        with self.lock:
            self.conditions[f"{md.get('namespace') or 'default'}/{md['name']}"] = message


__all__ = ["Binder", "BindConflict", "ClientBinder", "FakeBinder", "unschedulable_condition",
           "has_unschedulable_condition", "POD_SCHEDULED", "REASON_UNSCHEDULABLE"]
