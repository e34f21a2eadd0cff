"""The request bodies of the components' writes, built in one place.

A Binding, an Event, the merge patch that bumps an Event's count and the
patch of a ``status`` subresource are sent by the scheduler, the kubelet and
(through ``client.rest``) anyone using the Python client. Built in each
caller they drift apart (a missing ``uid`` in a Binding, an Event without
``reportingComponent`` that ``kubectl events`` prints blank), so every
sender builds them here. Pure functions on dicts: no I/O, no clock except
``api.meta.now()`` for a default timestamp and ``time.time_ns`` for a default
Event name.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from api.meta import now
from api.resources import ResourceType

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

_name_lock = threading.Lock()
_last_nanos = 0


def object_reference(obj: dict, rt: ResourceType | None = None) -> dict:
    """A v1 ObjectReference to ``obj`` (an Event's ``involvedObject``); ``rt`` fills a missing kind/apiVersion."""
    md = obj.get("metadata") or {}
    ref: dict[str, Any] = {
        "kind": obj.get("kind") or (rt.kind if rt else ""),
        "apiVersion": obj.get("apiVersion") or (rt.api_version if rt else ""),
        "name": md.get("name", ""),
    }
    for key in ("namespace", "uid", "resourceVersion"):
        if md.get(key):
            ref[key] = md[key]
    if ref["kind"] == "Node":
        # The kubelet convention: a Node's events carry the node name as uid,
        # and `kubectl describe node` selects its events by exactly that.
        ref["uid"] = ref["name"]
    return ref


def binding(pod_name: str, namespace: str, node_name: str, uid: str | None = None) -> dict:
    """The v1 Binding POSTed to ``pods/{name}/binding``; ``uid`` guards against a pod recreated under the name."""
    metadata: dict[str, Any] = {"name": pod_name, "namespace": namespace}
    if uid:
        metadata["uid"] = uid
    return {"apiVersion": "v1", "kind": "Binding", "metadata": metadata,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}


def status_patch(status: dict) -> dict:
    """The patch of a ``status`` subresource that changes the fields in ``status`` (merge or strategic)."""
    return {"status": status}


def event_name(object_name: str) -> str:
    """``<object>.<hex nanoseconds>`` as client-go names Events, strictly increasing within this process."""
    global _last_nanos
    with _name_lock:
        nanos = _last_nanos = max(time.time_ns(), _last_nanos + 1)
    return f"{object_name or 'object'}.{nanos:x}"


def event(involved: dict, reason: str, message: str, *, type: str = "Normal", component: str,
          host: str = "", instance: str | None = None, action: str = "", namespace: str | None = None,
          name: str | None = None, timestamp: str | None = None) -> dict:
    """A core/v1 Event (count 1) about the object ``involved`` refers to (see ``object_reference``).

    Events of cluster-scoped objects (nodes) go to the "default" namespace, as
    in Kubernetes. ``reportingInstance`` is ``instance``, else ``host``.
    """
    ts = timestamp or now()
    source = {"component": component}
    if host:
        source["host"] = host
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name or event_name(involved.get("name", "")),
                     "namespace": namespace or involved.get("namespace") or "default"},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type,
        "source": source,
        "count": 1,
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "reportingComponent": component,
        "reportingInstance": host if instance is None else instance,
    }
    if action:
        body["action"] = action
    return body


def event_about(obj: dict, reason: str, message: str, *, type: str = "Normal", component: str = "pocketkube",
                host: str | None = None, action: str | None = None, rt: ResourceType | None = None,
                namespace: str | None = None) -> dict:
    """``event`` about ``obj`` itself (what ``Client.create_event`` posts)."""
    return event(object_reference(obj, rt), reason, message, type=type, component=component, host=host or "",
                 action=action or "", namespace=namespace)


def event_count_patch(count: int, last_timestamp: str) -> dict:
    """The merge patch that folds repeats into an existing Event (client-go's eventLogger does the same)."""
    return {"count": count, "lastTimestamp": last_timestamp}


__all__ = ["object_reference", "binding", "status_patch", "event", "event_about", "event_name",
           "event_count_patch", "JSON", "MERGE_PATCH"]
