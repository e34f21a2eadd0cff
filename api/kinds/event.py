"""Event (core/v1): what components report about objects.

Events may still be written in a namespace being deleted (they tell why it
is stuck); PUT creates a missing one, as recorders that aggregate repeats
update by name. On create the server fills in first/last timestamps; the
`source` field selector matches the reporting component under either of its
two spellings.
"""
from __future__ import annotations

from datetime import datetime

from api.defaults import set_default
from api.kinds.base import Strategy, field_path, field_string
from api.tables import D_NAME, Printer, col, parse_time, since
from api.validation import (
    EVENT_MESSAGE_MAX, EVENT_REASON_MAX, Errs, invalid, name_is_dns_subdomain, required, type_invalid,
)


def _event(ev: dict) -> None:
    set_default(ev, "count", 1, zero=(0,))
    set_default(ev, "type", "Normal")


# The one real printer whose first column is not Name: `kubectl get events`
# prints LAST SEEN first and keeps NAME as the last, wide-only column.
COLUMNS = [
    col("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "This should be a short, machine understandable string that gives the reason "
                  "for the transition into the object's current status."),
    col("Object", "The object that this event is about."),
    col("Subobject", "If referring to a piece of an object instead of an entire object, this "
                     "string should contain a valid JSON/Go field access statement, such as "
                     "desiredState.manifest.containers[2].", priority=1),
    col("Source", "The component reporting this event. Should be a short machine understandable "
                  "string.", priority=1),
    col("Message", "A human-readable description of the status of this operation."),
    col("First Seen", "The time at which the event was first recorded. (Time of server receipt "
                      "is in TypeMeta.)", priority=1),
    col("Count", "The number of times this event has occurred.", priority=1),
    col("Name", D_NAME, fmt="name", priority=1),
]


def _event_cells(ev: dict, now: datetime) -> list:
    meta = ev.get("metadata") or {}
    first = since(ev.get("firstTimestamp"), now)
    if parse_time(ev.get("firstTimestamp")) is None:
        first = since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now)
    if parse_time(ev.get("lastTimestamp")) is None:
        last = first
    count = int(ev.get("count") or 0)
    series = ev.get("series")
    if series is not None:
        last = since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events have no count in the events.k8s.io API
    inv = ev.get("involvedObject") or {}
    kind = (inv.get("kind") or "").lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    src = ev.get("source") or {}
    component = src.get("component") or ev.get("reportingComponent") or ev.get("reportingController") or ""
    instance = src.get("host") or ev.get("reportingInstance") or ""
    source = f"{component}, {instance}" if instance else component
    return [
        last,
        ev.get("type") or "",
        ev.get("reason") or "",
        target,
        inv.get("fieldPath") or "",
        source,
        (ev.get("message") or "").strip(),
        first,
        count,
        meta.get("name", ""),
    ]


def _validate_event(e: Errs, ev: dict) -> None:
    involved = ev.get("involvedObject")
    if not involved:
        e.append(required("involvedObject"))
    elif not isinstance(involved, dict):
        e.append(type_invalid("involvedObject", involved, "object"))
    else:
        md = ev.get("metadata") if isinstance(ev.get("metadata"), dict) else {}
        namespace = md.get("namespace") or ""
        inv_ns = e.string(involved, "namespace", "involvedObject.namespace")
        # Events about cluster-scoped objects (nodes) live in "default".
        if (inv_ns and inv_ns != namespace) or (not inv_ns and namespace not in ("", "default")):
            e.append(invalid("involvedObject.namespace", inv_ns, "does not match event.namespace"))
    reason = e.string(ev, "reason", "reason")
    if len(reason) > EVENT_REASON_MAX:
        e.append(invalid("reason", "", f"can have at most {EVENT_REASON_MAX} characters"))
    message = e.string(ev, "message", "message")
    if len(message) > EVENT_MESSAGE_MAX:
        e.append(invalid("message", "", f"can have at most {EVENT_MESSAGE_MAX} characters"))
    e.string(ev, "type", "type")
    count = e.integer(ev, "count", "count")
    if count is not None and count < 0:
        e.append(invalid("count", count, "must be greater than or equal to 0"))
    e.obj(ev, "source", "source")


class EventStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.Event"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)
    fields = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")
    printer = Printer(COLUMNS, _event_cells)
    allow_create_on_update = True
    create_in_terminating_namespace = True

    def prepare_for_create(self, obj: dict) -> None:
        if not obj.get("firstTimestamp"):
            obj["firstTimestamp"] = obj["metadata"]["creationTimestamp"]
        if not obj.get("lastTimestamp"):
            obj["lastTimestamp"] = obj["firstTimestamp"]

    def default(self, obj: dict) -> None:
        _event(obj)

    def check(self, e: Errs, obj: dict) -> None:
        _validate_event(e, obj)

    def field_value(self, obj: dict, field: str) -> str:
        if field == "source":
            return field_string(obj.get("reportingComponent") or field_path(obj, "source.component"))
        return super().field_value(obj, field)
