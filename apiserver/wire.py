"""Request decoding and response encoding: the boundary where bad input stops.

Everything a client sends is untrusted: a missing or wrong Content-Type, a
truncated protobuf body, invalid UTF-8, a YAML alias bomb, JSON nested ten
thousand deep, a 10 MB body. Each of these becomes one clear Status error
here (400, 413 or 415) before any handler sees it.

Protobuf bodies (kubectl 1.32+'s typed clients) decode through api/protobuf
into the same dict a JSON body gives, so nothing after this module knows
which one arrived.
"""
from __future__ import annotations

from typing import Any

import orjson
import yaml
from starlette.requests import Request

import api.protobuf as pb

from . import errors

MAX_BODY = 3 * 1024 * 1024  # the kube-apiserver's own request size limit
MAX_DEPTH = 100

JSON = "application/json"
YAML = "application/yaml"
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY_YAML = "application/apply-patch+yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases, so a tiny body can never expand into a huge one."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            ev = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not allowed", ev.start_mark)
        return super().compose_node(parent, index)


def media_type(request: Request) -> str:
    ct = request.headers.get("content-type")
    if not ct:
        return ""
    return ct.split(";", 1)[0].strip().lower()


async def read_body(request: Request) -> bytes:
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            if int(cl) > MAX_BODY:
                raise errors.too_large(MAX_BODY)
        except ValueError:
            raise errors.bad_request("invalid Content-Length header")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.too_large(MAX_BODY)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_depth(obj: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise errors.bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep")
    if isinstance(obj, dict):
        for v in obj.values():
            if isinstance(v, (dict, list)):
                _check_depth(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)):
                _check_depth(v, depth + 1)


def decode_json(body: bytes) -> Any:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        msg = str(e)
        if "recursion" in msg.lower():
            raise errors.bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep")
        raise errors.bad_request(f"the request body is not valid JSON: {msg}")
    # Nesting deeper than MAX_DEPTH needs more than MAX_DEPTH brackets: most
    # bodies are settled by two C-speed counts instead of a walk.
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH:
        _check_depth(obj)
    return obj


def decode_yaml(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise errors.bad_request(f"the request body is not valid UTF-8: {e}")
    try:
        obj = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise errors.bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep")
    except yaml.YAMLError as e:
        raise errors.bad_request(f"the request body is not valid YAML: {str(e).splitlines()[0] if str(e) else e}")
    _check_depth(obj)
    try:
        orjson.dumps(obj)
    except TypeError as e:  # dates and other YAML-only types
        raise errors.bad_request(f"the request body has a value JSON cannot represent: {e}")
    return obj


def decode_protobuf(body: bytes, warnings: list[str] | None = None) -> dict:
    """A Kubernetes protobuf body (k8s\\0 envelope) as the JSON object; unknown fields go to warnings."""
    try:
        obj, dropped = pb.decode(body, want_unknown=warnings is not None)
    except pb.NoSchema as e:
        raise errors.StatusError(415, "UnsupportedMediaType", str(e))
    except pb.CodecError as e:
        raise errors.bad_request(f"the protobuf request body could not be decoded: {e}")
    if warnings is not None:
        warnings.extend(dropped)
    return obj


def decode_object_body(body: bytes, ctype: str, warnings: list[str] | None = None) -> dict:
    """A body for POST/PUT: JSON (also when the client sent no Content-Type), YAML or Kubernetes protobuf."""
    if ctype.startswith(PROTOBUF):
        obj = decode_protobuf(body, warnings)
    elif ctype in ("", JSON, "*/*", "text/json") or ctype.endswith("+json"):
        obj = decode_json(body) if body.strip() else None
    elif ctype in (YAML, "application/x-yaml", "text/yaml", APPLY_YAML):
        obj = decode_yaml(body)
    else:
        raise errors.unsupported_media_type(ctype)
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object (a Kubernetes object with metadata)")
    return obj


def field_warnings(request: Request) -> list[str] | None:
    """A list to collect dropped-field warnings in, unless the client asked for fieldValidation=Ignore."""
    return None if request.query_params.get("fieldValidation") == "Ignore" else []


def warning_headers(warnings: list[str] | None) -> dict[str, str]:
    """Kubernetes' `Warning: 299 - "..."` response header (kubectl prints each as `Warning: ...`)."""
    if not warnings:
        return {}
    return {"warning": ", ".join('299 - "' + w.replace('"', "'") + '"' for w in warnings)}


def query_bool(request: Request, name: str) -> bool:
    v = request.query_params.get(name)
    return v is not None and v.lower() in ("1", "true", "yes", "t")


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    v = request.query_params.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{v}" is not an integer')
    if not -(1 << 63) <= n < (1 << 63):       # Kubernetes parses these as int64 (and so does the database)
        raise errors.bad_request(f'invalid value for {name}: "{v}" is out of range')
    return n


def wants_table(request: Request) -> bool:
    acc = request.headers.get("accept", "")
    if "as=Table" not in acc:
        return False
    for part in acc.split(","):
        if "as=Table" in part and "g=meta.k8s.io" in part:
            return True
    return False


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)
