"""Kubernetes protobuf bodies: what kubectl 1.32+ and other typed clients send.

`decode(body)` turns an `application/vnd.kubernetes.protobuf` request body
into exactly the dict the JSON path would have decoded for the same object
(then the same defaults, validation and storage run); `encode(obj)` is the
inverse, for tests, benchmarks and clients. Answers stay JSON: every
Kubernetes client accepts them.

Which message a body holds comes from its envelope's TypeMeta: a served kind's
message is named by its strategy (`protobuf = "k8s.io.api.core.v1.Pod"` in
api/kinds/pod.py), the bodies that are not stored objects (DeleteOptions,
and Eviction, TokenRequest and the access reviews as they are served) by
BODIES below. A kind with neither is `NoSchema`: the server answers 415 and
names it.

Field numbers and types are facts of the Kubernetes API; the schema file was
made from kubectl 1.33's embedded descriptors (api/protobuf/extract.py).
Fields the schema does not know (a newer client's) cannot be kept under a
name, so they are dropped, as kube-apiserver's protobuf decoder drops them,
and reported as warnings when the caller asks (fieldValidation Warn/Strict).
"""
from __future__ import annotations

from api.protobuf.codec import MAGIC, Codec, CodecError
from api.protobuf.schema import KUBECTL_VERSION, Schema, load

__all__ = ["BODIES", "MAGIC", "KUBECTL_VERSION", "CodecError", "NoSchema", "default_codec", "decode", "encode",
           "message_for", "Schema"]

META_V1 = "k8s.io.apimachinery.pkg.apis.meta.v1."

# Request bodies that are not stored kinds, by kind (any apiVersion: DeleteOptions is registered in
# every group version).
BODIES: dict[str, str] = {
    "DeleteOptions": META_V1 + "DeleteOptions",
}


class NoSchema(CodecError):
    """A protobuf body of a kind pocketkube has no message for (a 415, naming the kind)."""

    def __init__(self, api_version: str, kind: str):
        self.api_version, self.kind = api_version, kind
        what = f"{kind} ({api_version})" if api_version else (kind or "an object without a kind in its envelope")
        super().__init__(f"pocketkube has no protobuf schema for {what}; send it as JSON")


_codec: Codec | None = None


def default_codec() -> Codec:
    """The codec of this tree's schema (loaded on first use)."""
    global _codec
    if _codec is None:
        _codec = Codec(load())
    return _codec


def message_for(api_version: str, kind: str) -> str | None:
    """The protobuf message of a body's kind: the served kind's strategy, or BODIES."""
    from api import resources as R
    rt = R.by_kind(api_version, kind)
    if rt is not None:
        return rt.strategy.protobuf
    return BODIES.get(kind)


def decode(body: bytes, want_unknown: bool = False) -> tuple[dict, list[str]]:
    """A protobuf request body as (the JSON object, warnings about dropped unknown fields)."""
    c = default_codec()
    api_version, kind, raw = c.unwrap(body)
    name = message_for(api_version, kind)
    if name is None:
        raise NoSchema(api_version, kind)
    obj: dict = {}
    if api_version:
        obj["apiVersion"] = api_version
    if kind:
        obj["kind"] = kind
    warnings: list[str] = []
    obj.update(c.decode_message(name, raw, warnings if want_unknown else None))
    return obj, warnings


def encode(obj: dict, message: str | None = None) -> bytes:
    """A JSON object as a protobuf request body (envelope included); message defaults from its kind."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = message or message_for(api_version, kind)
    if name is None:
        raise NoSchema(api_version, kind)
    c = default_codec()
    return c.wrap(api_version, kind, c.encode_message(name, obj))
