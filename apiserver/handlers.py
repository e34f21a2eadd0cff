"""The REST verbs, the same for every resource: create, get, list, watch,
update, patch, delete, deletecollection, and the pod binding subresource.

Handlers run on the event loop; anything that touches the database is handed
to storage (reads on a thread, writes to the writer thread as one atomic
function). Per-resource differences come from the resource's strategy
(``rt.strategy``, api/kinds/): its field selectors, its Table printer and
whether a PUT may create; everything a write does is one registry call.
Wire details (Table output, selectors, continue tokens, watch framing) live
here because they are about HTTP, not about the objects.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import random
import time
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from api import resources as R
from api.meta import status_body
from api.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from api.selectors import FieldSelector, LabelSelector, SelectorError

from . import errors, wire
from .registry import Registry, key_for, prefix_for
from .storage.hub import WatchHub
from .storage.log import Compacted, Event, Storage, StorageUnavailable, with_revision

LIST_PAGE = 500


class DryRun(Exception):
    """Raised inside a transaction to roll it back while returning its result."""

    def __init__(self, result):
        self.result = result


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers)


class Selection:
    """A request's label and field selectors, checked against the resource."""

    def __init__(self, rt: R.ResourceType, request: Request):
        self.strategy = rt.strategy
        try:
            self.labels = LabelSelector.parse(request.query_params.get("labelSelector"))
        except SelectorError as e:
            raise errors.bad_request(f"unable to parse requirement: {e}")
        try:
            self.fields = FieldSelector.parse(request.query_params.get("fieldSelector"))
        except SelectorError as e:
            raise errors.bad_request(f"invalid field selector: {e}")
        allowed = self.strategy.supported_fields
        for f in self.fields.fields():
            if f not in allowed:
                raise errors.bad_request(f'field label not supported: {f}')
        self.empty = self.labels.empty and self.fields.empty

    def matches(self, obj: dict | None) -> bool:
        if obj is None:
            return False
        if self.empty:
            return True
        md = obj.get("metadata") or {}
        if not self.labels.matches(md.get("labels") or {}):
            return False
        return self.fields.empty or self.fields.matches(self.strategy.field_getter(obj))


def _encode_continue(rev: int, key: str) -> str:
    raw = orjson.dumps({"v": 1, "rv": rev, "start": key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = orjson.loads(raw)
        return int(d["rv"]), str(d["start"])
    except Exception:
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")


class Handlers:
    def __init__(self, storage: Storage, hub: WatchHub, reg: Registry, *,
                 bookmark_interval: float = 10.0, min_request_timeout: int = 1800):
        self.storage = storage
        self.hub = hub
        self.reg = reg
        self.bookmark_interval = bookmark_interval
        self.min_request_timeout = min_request_timeout

    # ---------------------------------------------------------------- helpers
    async def _write(self, fn, dry_run: bool = False):
        if dry_run:
            inner = fn

            def fn(tx):  # noqa: F811 - wraps the real op to roll it back
                raise DryRun(inner(tx))

        fut = self.storage.submit(fn)
        try:
            return await asyncio.wrap_future(fut)
        except DryRun as d:
            return d.result
        except StorageUnavailable as e:
            raise errors.unavailable(str(e))

    async def _read(self, fn, *args, **kw):
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        except StorageUnavailable as e:
            raise errors.unavailable(str(e))
        except Compacted:
            raise
        except errors.StatusError:
            raise
        except Exception as e:  # noqa: BLE001 - database down or similar
            raise errors.unavailable(f"storage is unavailable: {e}")

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone.utc)

    def _respond(self, request: Request, rt: R.ResourceType, obj: dict, status: int = 200,
                 warnings: list[str] | None = None) -> Response:
        headers = wire.warning_headers(warnings)
        if wire.wants_table(request):
            inc = request.query_params.get("includeObject", "Metadata")
            return json_response(rt.strategy.table([obj], self._now(), inc,
                                                   obj["metadata"].get("resourceVersion", "")), status, headers)
        return json_response(obj, status, headers)

    @staticmethod
    async def _object_body(request: Request) -> tuple[dict, list[str] | None]:
        """The request's object (JSON, YAML or protobuf) and the warnings its decoding left."""
        warnings = wire.field_warnings(request)
        obj = wire.decode_object_body(await wire.read_body(request), wire.media_type(request), warnings)
        return obj, warnings

    @staticmethod
    def _dry_run(request: Request) -> bool:
        v = request.query_params.getlist("dryRun")
        for x in v:
            if x not in ("All", ""):
                raise errors.bad_request(f'unsupported dryRun value "{x}": only "All" is supported')
        return "All" in v

    # ---------------------------------------------------------------- get
    async def get(self, request: Request, rt: R.ResourceType, ns: str | None, name: str) -> Response:
        row = await self._read(self.storage.get, key_for(rt, ns, name))
        if row is None:
            raise errors.not_found(rt.plural, name, rt.group)
        if not wire.wants_table(request):
            return Response(row.wire(), media_type="application/json")
        return self._respond(request, rt, with_revision(row.value, row.rev))

    # ---------------------------------------------------------------- list
    async def list(self, request: Request, rt: R.ResourceType, ns: str | None) -> Response:
        sel = Selection(rt, request)
        limit = wire.query_int(request, "limit", 0) or 0
        if limit < 0:
            raise errors.bad_request("limit must be a non-negative integer")
        token = request.query_params.get("continue")
        rv_param = request.query_params.get("resourceVersion")
        match = request.query_params.get("resourceVersionMatch")
        revision = None
        start = None
        if token:
            revision, start = _decode_continue(token)
        elif rv_param and match == "Exact":
            try:
                revision = int(rv_param)
            except ValueError:
                raise errors.bad_request(f'invalid resourceVersion "{rv_param}"')
        elif rv_param and rv_param != "0":
            try:
                int(rv_param)
            except ValueError:
                raise errors.bad_request(f'invalid resourceVersion "{rv_param}"')
        prefix = prefix_for(rt, ns)
        table = wire.wants_table(request)
        items: list[dict] = []  # decoded, only when a Table needs them
        chunks: list[bytes] = []  # wire JSON of each item
        last_key = None
        more = False
        page = max(limit, LIST_PAGE) if limit else None
        try:
            while True:
                rows, revision = await self._read(self.storage.list, prefix, revision=revision,
                                                  start_after=start, limit=page)
                for i, r in enumerate(rows):
                    if sel.empty and not table:
                        chunks.append(r.wire())
                    else:
                        obj = with_revision(r.value, r.rev)
                        if not sel.matches(obj):
                            continue
                        if table:
                            items.append(obj)
                        else:
                            chunks.append(r.wire())
                    last_key = r.key
                    if limit and len(chunks) + len(items) >= limit:
                        more = i < len(rows) - 1 or len(rows) == page
                        break
                else:
                    if page and len(rows) == page:
                        start = rows[-1].key
                        continue
                break
        except Compacted:
            if token:
                raise errors.gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results.")
            raise errors.gone(f"too old resource version: {revision}")
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if more and last_key:
            meta["continue"] = _encode_continue(revision, last_key)
        if table:
            inc = request.query_params.get("includeObject", "Metadata")
            tbl = rt.strategy.table(items, self._now(), inc, str(revision))
            if "continue" in meta:
                tbl["metadata"]["continue"] = meta["continue"]
            return json_response(tbl)
        head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join(chunks) + b"]}"
        return Response(body, media_type="application/json")

    # ---------------------------------------------------------------- watch
    async def watch(self, request: Request, rt: R.ResourceType, ns: str | None, name: str | None = None) -> Response:
        sel = Selection(rt, request)
        if name:  # GET .../pods/x?watch=1 watches one object
            sel.fields = FieldSelector.parse(
                ",".join(filter(None, [request.query_params.get("fieldSelector"), f"metadata.name={name}"])))
            sel.empty = False
        rv_param = request.query_params.get("resourceVersion") or ""
        timeout = wire.query_int(request, "timeoutSeconds")
        if timeout is None:   # kube-apiserver: a random length in [min, 2*min], so clients reconnect spread out
            timeout = random.randint(self.min_request_timeout, 2 * self.min_request_timeout)
        bookmarks = wire.query_bool(request, "allowWatchBookmarks")
        send_initial = request.query_params.get("sendInitialEvents", "").lower() == "true"
        as_table = wire.wants_table(request)
        include = request.query_params.get("includeObject", "Metadata")
        prefix = prefix_for(rt, ns)

        initial: list[dict] = []
        if rv_param in ("", "0") or send_initial:
            try:
                rows, start_rev = await self._read(self.storage.list, prefix)
            except Compacted:
                raise errors.gone()
            for r in rows:
                obj = with_revision(r.value, r.rev)
                if sel.matches(obj):
                    initial.append(obj)
        else:
            try:
                start_rev = int(rv_param)
            except ValueError:
                raise errors.bad_request(f'invalid resourceVersion "{rv_param}"')
            comp = await self._read(self.storage.compacted_revision)
            if start_rev < comp:
                return StreamingResponse(self._gone_stream(start_rev), media_type="application/json")

        first_table = [True]
        now = self._now

        def encode(type_: str, obj: dict) -> bytes:
            if as_table:
                t = rt.strategy.table([obj], now(), include, obj["metadata"].get("resourceVersion", ""))
                if not first_table[0]:
                    t["columnDefinitions"] = None
                first_table[0] = False
                return orjson.dumps({"type": type_, "object": t}) + b"\n"
            return orjson.dumps({"type": type_, "object": obj}) + b"\n"

        def bookmark(rev: int, extra_annotations: dict | None = None) -> bytes:
            md: dict[str, Any] = {"resourceVersion": str(rev)}
            if extra_annotations:
                md["annotations"] = extra_annotations
            return orjson.dumps({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": md}}) + b"\n"

        async def stream() -> AsyncIterator[bytes]:
            deadline = time.monotonic() + timeout
            last = start_rev
            sub = self.hub.subscribe(prefix)
            try:
                if initial:
                    yield b"".join(encode("ADDED", obj) for obj in initial)
                if send_initial and bookmarks:
                    yield bookmark(start_rev, {"k8s.io/initial-events-end": "true"})
                try:
                    async for ev in self.hub.history(prefix, start_rev, sub.start_rev):
                        last = ev.rev
                        out = self._transition(ev, sel)
                        if out is not None:
                            yield self._line(ev, out, as_table, encode)
                except Compacted:
                    yield orjson.dumps({"type": "ERROR", "object": errors.gone().body()}) + b"\n"
                    return
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
                    if not await sub.wait(wait):
                        if bookmarks:
                            last = max(last, self.hub.last_rev)
                            yield bookmark(last)
                        continue
                    if sub.overflow:
                        return  # too far behind: the client reconnects and resumes
                    parts = []
                    for ev in sub.drain():
                        if ev.rev <= last:
                            continue
                        last = ev.rev
                        out = self._transition(ev, sel)
                        if out is not None:
                            parts.append(self._line(ev, out, as_table, encode))
                    if parts:
                        yield b"".join(parts)
                    if sub.closed:
                        return
                if bookmarks:
                    yield bookmark(max(last, self.hub.last_rev))
            finally:
                self.hub.unsubscribe(sub)

        return StreamingResponse(stream(), media_type="application/json")

    @staticmethod
    async def _gone_stream(rev: int) -> AsyncIterator[bytes]:
        yield orjson.dumps({"type": "ERROR", "object": errors.gone(f"too old resource version: {rev}").body()}) + b"\n"

    @staticmethod
    def _line(ev: Event, out: tuple[str, dict | None], as_table: bool, encode) -> bytes:
        if not as_table and out[0] is ev.type and (out[1] is None or out[1] is ev.obj):
            return ev.line()  # shared by every watcher of this event, encoded once
        return encode(out[0], ev.obj if out[1] is None else out[1])

    @staticmethod
    def _transition(ev: Event, sel: Selection) -> tuple[str, dict | None] | None:
        """Map a raw event through the selector: entering is ADDED, leaving is DELETED.

        (type, None) means "the event as it is" (no decode needed for it).
        """
        if sel.empty:
            return ev.type, None
        now_match = sel.matches(ev.obj)
        if ev.type == "ADDED":
            return (ev.type, ev.obj) if now_match else None
        if ev.type == "DELETED":
            return (ev.type, ev.obj) if now_match else None
        prev = ev.prev_obj
        was = sel.matches(prev) if prev is not None else now_match
        if now_match and was:
            return ev.type, ev.obj
        if now_match:
            return "ADDED", ev.obj
        if was:
            return "DELETED", prev
        return None

    # ---------------------------------------------------------------- create
    async def create(self, request: Request, rt: R.ResourceType, ns: str | None) -> Response:
        obj, warnings = await self._object_body(request)
        self._check_type(rt, obj)
        md = obj.get("metadata")
        if md is not None and not isinstance(md, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced:
            body_ns = (md or {}).get("namespace")
            if body_ns and ns and body_ns != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            ns = ns or body_ns
            if not ns:
                raise errors.bad_request("the namespace of the object is not set and the request carries none")
        if not (md or {}).get("name") and not (md or {}).get("generateName"):
            raise errors.invalid(rt.kind, "", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                                "message": "Required value: name or generateName is required"}], rt.group)
        out = await self._write(self.reg.create_txn(rt, obj, ns), self._dry_run(request))
        return self._respond(request, rt, out, 201, warnings)

    @staticmethod
    def _check_type(rt: R.ResourceType, obj: dict) -> None:
        kind = obj.get("kind")
        av = obj.get("apiVersion")
        if kind is not None and kind != rt.kind:
            raise errors.bad_request(f"the object provided is unrecognized (must be of type {rt.kind}): kind \"{kind}\" does not match the resource ({rt.plural})")
        if av is not None and av != rt.api_version:
            raise errors.bad_request(f"the API version in the data ({av}) does not match the expected API version ({rt.api_version})")

    # ---------------------------------------------------------------- update
    async def update(self, request: Request, rt: R.ResourceType, ns: str | None, name: str,
                     subresource: str | None = None) -> Response:
        obj, warnings = await self._object_body(request)
        self._check_type(rt, obj)
        # Kubernetes checks the body's name and namespace against the URL before it looks the object
        # up (rest.UpdateResource's checkName), so a mismatch is a 400 even when nothing is stored.
        md = obj.get("metadata")
        if isinstance(md, dict):
            if md.get("name") and md["name"] != name:
                raise errors.bad_request(f'the name of the object ({md["name"]}) does not match the name on the URL ({name})')
            if rt.namespaced and md.get("namespace") and md["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        allow_create = rt.strategy.allow_create_on_update and subresource is None

        def mutate(old):
            return copy.deepcopy(obj) if old is None else obj

        out, created = await self._write(
            self.reg.update_txn(rt, ns, name, mutate, subresource, allow_create), self._dry_run(request))
        return self._respond(request, rt, out, 201 if created else 200, warnings)

    # ---------------------------------------------------------------- patch
    async def patch(self, request: Request, rt: R.ResourceType, ns: str | None, name: str,
                    subresource: str | None = None) -> Response:
        ctype = wire.media_type(request)
        body = await wire.read_body(request)
        if ctype.startswith(wire.PROTOBUF):
            raise errors.StatusError(415, "UnsupportedMediaType", "pocketkube does not accept protobuf patch bodies; send a JSON patch")
        if ctype == wire.APPLY_YAML:
            patch = wire.decode_yaml(body)
        elif ctype in (wire.MERGE, wire.JSONPATCH, wire.STRATEGIC):
            patch = wire.decode_json(body)
        else:
            raise errors.unsupported_media_type(ctype or "(none)")
        if ctype == wire.JSONPATCH:
            if not isinstance(patch, list):
                raise errors.bad_request("a JSON patch must be a list of operations")
        elif not isinstance(patch, dict):
            raise errors.bad_request("the patch must be a JSON object")
        if ctype == wire.APPLY_YAML:
            self._check_type(rt, patch)
        kind = rt.kind

        def mutate(old):
            if old is None:  # server-side apply of a missing object creates it
                new = copy.deepcopy(patch)
                if rt.namespaced:
                    new.setdefault("metadata", {})["namespace"] = ns
                return new
            base = copy.deepcopy(old)
            try:
                if ctype == wire.MERGE:
                    new = merge_patch(base, patch)
                elif ctype == wire.JSONPATCH:
                    new = json_patch(base, patch)
                else:  # strategic merge, and apply (merge of the applied configuration)
                    p = patch
                    if ctype == wire.APPLY_YAML:
                        p = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
                    new = strategic_merge_patch(base, p, kind)
            except PatchError as e:
                raise errors.StatusError(422, "Invalid", f"the patch could not be applied: {e}") if ctype == wire.JSONPATCH and "test" in str(e) \
                    else errors.bad_request(f"the patch could not be applied: {e}")
            if not isinstance(new, dict):
                raise errors.bad_request("the patch did not produce an object")
            md = new.get("metadata")
            if isinstance(md, dict) and "resourceVersion" in md and \
                    md.get("resourceVersion") == old["metadata"].get("resourceVersion"):
                md.pop("resourceVersion")  # unchanged: not a precondition
            return new

        allow_create = ctype == wire.APPLY_YAML and subresource is None
        out, created = await self._write(
            self.reg.update_txn(rt, ns, name, mutate, subresource, allow_create), self._dry_run(request))
        return self._respond(request, rt, out, 201 if created else 200)

    # ---------------------------------------------------------------- delete
    async def _delete_options(self, request: Request) -> dict:
        opts: dict = {}
        body = await wire.read_body(request)
        if body.strip():
            ctype = wire.media_type(request)
            if ctype.startswith(wire.PROTOBUF):
                d = wire.decode_protobuf(body)
                if d.get("kind") != "DeleteOptions":
                    raise errors.bad_request(f'the body of a delete must be DeleteOptions, not {d.get("kind") or "an object without a kind"}')
            else:
                d = wire.decode_yaml(body) if ctype in (wire.YAML,) else wire.decode_json(body)
            if not isinstance(d, dict):
                raise errors.bad_request("DeleteOptions must be a JSON object")
            opts.update(d)
        g = wire.query_int(request, "gracePeriodSeconds")
        if g is not None:
            opts["gracePeriodSeconds"] = g
        if "gracePeriodSeconds" in opts and opts["gracePeriodSeconds"] is not None:
            if not isinstance(opts["gracePeriodSeconds"], int) or isinstance(opts["gracePeriodSeconds"], bool):
                raise errors.bad_request("gracePeriodSeconds must be an integer")
            if opts["gracePeriodSeconds"] < 0:
                opts["gracePeriodSeconds"] = 0
        if "preconditions" in opts and not isinstance(opts["preconditions"], (dict, type(None))):
            raise errors.bad_request("preconditions must be an object")
        return opts

    def _delete_dry_run(self, request: Request, opts: dict) -> bool:
        """dryRun from the query or from the DeleteOptions body (kubectl 1.33 `delete --dry-run=server` sends the body)."""
        body = opts.get("dryRun")
        if body is not None:
            if not isinstance(body, list) or any(x not in ("All", "") for x in body):
                raise errors.bad_request(f'unsupported dryRun value {body!r}: only ["All"] is supported')
        return self._dry_run(request) or "All" in (body or [])

    async def delete(self, request: Request, rt: R.ResourceType, ns: str | None, name: str) -> Response:
        opts = await self._delete_options(request)
        out = await self._write(self.reg.delete_txn(rt, ns, name, opts), self._delete_dry_run(request, opts))
        return json_response(out, 200)

    async def delete_collection(self, request: Request, rt: R.ResourceType, ns: str | None) -> Response:
        sel = Selection(rt, request)
        opts = await self._delete_options(request)
        rows, _ = await self._read(self.storage.list, prefix_for(rt, ns))
        deleted = []
        dry = self._delete_dry_run(request, opts)
        for r in rows:
            obj = with_revision(r.value, r.rev)
            if not sel.matches(obj):
                continue
            md = obj["metadata"]
            try:
                out = await self._write(self.reg.delete_txn(rt, md.get("namespace"), md["name"], opts), dry)
                deleted.append(out)
            except errors.StatusError as e:
                if e.code != 404:
                    raise
        rev = max([int(o["metadata"].get("resourceVersion", 0)) for o in deleted] or [0])
        return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version,
                              "metadata": {"resourceVersion": str(rev)}, "items": deleted})

    # ---------------------------------------------------------------- node relay
    async def get_object(self, rt: R.ResourceType, ns: str | None, name: str) -> dict | None:
        """One object or None: what the kubelet relay (noderelay.py) looks pods and nodes up with."""
        row = await self._read(self.storage.get, key_for(rt, ns, name))
        return None if row is None else with_revision(row.value, row.rev)

    # ---------------------------------------------------------------- binding
    async def bind(self, request: Request, ns: str, pod_name: str | None) -> Response:
        obj, _ = await self._object_body(request)
        if obj.get("kind") not in (None, "Binding"):
            raise errors.bad_request(f'the object provided is unrecognized (must be of type Binding): kind "{obj.get("kind")}"')
        name = pod_name or (obj.get("metadata") or {}).get("name")
        if not name:
            raise errors.invalid("Binding", "", [{"reason": "FieldValueRequired", "field": "metadata.name", "message": "Required value"}])
        body_name = (obj.get("metadata") or {}).get("name")
        if pod_name and body_name and body_name != pod_name:
            raise errors.bad_request("the name of the binding does not match the name of the pod")
        target = obj.get("target") or {}
        if not isinstance(target, dict) or not target.get("name"):
            raise errors.invalid("Binding", name, [{"reason": "FieldValueRequired", "field": "target.name", "message": "Required value"}])
        if target.get("kind") not in (None, "", "Node"):
            raise errors.invalid("Binding", name, [{"reason": "FieldValueNotSupported", "field": "target.kind", "message": f'Unsupported value: "{target.get("kind")}": supported values: "Node"'}])
        uid = (obj.get("metadata") or {}).get("uid")
        await self._write(self.reg.bind_txn(ns, name, str(target["name"]), uid if isinstance(uid, str) else None),
                          self._dry_run(request))
        return json_response(status_body(201, "", "", status="Success"), 201)
