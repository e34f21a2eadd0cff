"""Kubernetes protobuf messages <-> the JSON objects the rest of pocketkube works on.

The wire format is the `protobuf` package's (upb, C); this module is the
mapping between a parsed message and the dict the JSON path would have
produced for the same Go object, so that defaults, validation and storage
cannot tell which encoding a client used. The rules are Go's:

* Field names are the JSON names (go-to-protobuf names proto fields after
  the json tags), and fields come in proto field-number order.
* Go holds most fields by value and marshals them even when zero; its JSON
  encoder leaves such zeros out (omitempty). So a *value* field (the schema's
  `value_fields`) whose decoded value is zero (`""`, 0, false, empty) is left
  out; a *pointer* field keeps its zero (`replicas: 0`, `immutable: false`).
  A plain message field stays even when empty (`"spec": {}`): omitempty never
  leaves out a Go struct.
* Types with their own JSON form: metav1.Time (RFC 3339, seconds; an empty
  message is the zero time, left out), MicroTime (microseconds), Duration
  (Go's `1h2m3s`), IntOrString (a number or a string), resource.Quantity (its
  string), RawExtension and FieldsV1 (embedded JSON), and the string-list
  wrappers Verbs and ExtraValue (a JSON list). bytes are base64, as Go's JSON.
* The envelope (`k8s\\0` + runtime.Unknown) carries apiVersion and kind in
  its TypeMeta; the object's own message does not.

Plans (field number -> converter) are built once per message type and
cached, so decoding is one C parse plus one Python walk over present fields.
"""
from __future__ import annotations

import base64
import calendar
from typing import Any, Callable

import orjson

from api import meta
from api.protobuf.schema import Schema

MAGIC = b"k8s\x00"
UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
TIME = META + "Time"
MICROTIME = META + "MicroTime"
DURATION = META + "Duration"
FIELDSV1 = META + "FieldsV1"
INTORSTRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
RAWEXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"

# FieldDescriptor type numbers (descriptor.proto)
_DOUBLE, _FLOAT, _BOOL, _STRING, _MESSAGE, _BYTES = 1, 2, 8, 9, 11, 12


class CodecError(ValueError):
    """A body that does not decode (or an object that does not encode): a 400 at the boundary."""


def _is_list_wrapper(desc) -> bool:
    """Verbs, ExtraValue: a Go []string with a message of one repeated `items` field on the wire."""
    fields = desc.fields
    return len(fields) == 1 and fields[0].name == "items" and fields[0].is_repeated \
        and fields[0].type == _STRING


# ---------------------------------------------------------------- special types (decode)

def format_time(seconds: int) -> str:
    try:
        return meta.format_time(seconds)
    except (OverflowError, OSError, ValueError):
        raise CodecError(f"time out of range: {seconds} seconds")


def _time(m) -> str | None:
    if not m.HasField("seconds"):
        return None  # Go marshals the zero time as an empty message
    return format_time(m.seconds)


def _microtime(m) -> str | None:
    if not m.HasField("seconds"):
        return None
    return format_time(m.seconds)[:-1] + f".{max(0, m.nanos) // 1000 % 1000000:06d}Z"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 1h2m3.5s, 1.5ms, 0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < size * 1000:
                return sign + _frac(u, size) + unit
    h, rem = divmod(u, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    out = sign
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return out + _frac(rem, 1_000_000_000) + "s"


def _frac(v: int, size: int) -> str:
    whole, part = divmod(v, size)
    if not part:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")


def _duration(m) -> str | None:
    return go_duration(m.duration) if m.HasField("duration") else None


def _intorstring(m):
    return m.strVal if m.type == 1 else m.intVal


def _quantity(m) -> str:
    return m.string


def _embedded_json(raw: bytes):
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CodecError(f"an embedded object is not valid JSON: {e}")


def _rawextension(m):
    return _embedded_json(m.raw)


def _fieldsv1(m):
    return _embedded_json(m.Raw)


_SPECIAL_DECODE: dict[str, Callable] = {
    TIME: _time, MICROTIME: _microtime, DURATION: _duration, INTORSTRING: _intorstring,
    QUANTITY: _quantity, RAWEXTENSION: _rawextension, FIELDSV1: _fieldsv1,
}


def _b64(v: bytes) -> str:
    return base64.b64encode(v).decode("ascii")


def _ident(v):
    return v


# ---------------------------------------------------------------- special types (encode)

def parse_time(s: str) -> tuple[int, int]:
    """An RFC 3339 time (metav1.Time or MicroTime) as (seconds, nanos)."""
    d = meta.parse_time(s)
    if d is None:
        raise CodecError(f"not an RFC 3339 time: {s!r}")
    return calendar.timegm(d.utctimetuple()), d.microsecond * 1000


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(s: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    import re
    if not isinstance(s, str) or not s:
        raise CodecError(f"not a duration: {s!r}")
    sign = -1 if s.startswith("-") else 1
    body = s.lstrip("+-")
    if body == "0":
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", body)
    if not parts or "".join(a + b for a, b in parts) != body:
        raise CodecError(f"not a duration: {s!r}")
    total = 0
    for num, unit in parts:
        whole, _, frac = num.partition(".")
        total += int(whole or 0) * _UNITS[unit]
        if frac:
            total += int(frac) * _UNITS[unit] // 10 ** len(frac)
    return sign * total


def _enc_time(m, v) -> None:
    sec, _ = parse_time(v)
    m.seconds = sec


def _enc_microtime(m, v) -> None:
    sec, ns = parse_time(v)
    m.seconds = sec
    m.nanos = ns


def _enc_duration(m, v) -> None:
    m.duration = parse_go_duration(v)


def _enc_intorstring(m, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise CodecError(f"an int-or-string must be a number or a string, not {v!r}")
    if isinstance(v, str):
        m.type, m.strVal = 1, v
    else:
        m.type, m.intVal = 0, v


def _enc_quantity(m, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise CodecError(f"a quantity must be a string or a number, not {v!r}")
    m.string = v if isinstance(v, str) else str(v)


def _enc_rawextension(m, v) -> None:
    m.raw = orjson.dumps(v)


def _enc_fieldsv1(m, v) -> None:
    m.Raw = orjson.dumps(v)


_SPECIAL_ENCODE: dict[str, Callable] = {
    TIME: _enc_time, MICROTIME: _enc_microtime, DURATION: _enc_duration, INTORSTRING: _enc_intorstring,
    QUANTITY: _enc_quantity, RAWEXTENSION: _enc_rawextension, FIELDSV1: _enc_fieldsv1,
}


# ---------------------------------------------------------------- the codec

class Codec:
    """Decode and encode messages of one Schema; conversion plans are cached per message type."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self._dec: dict[str, dict[int, tuple]] = {}
        self._enc: dict[str, dict[str, tuple]] = {}

    # -- decode
    def _value_conv(self, fd) -> Callable:
        """The converter of one (non-repeated) value of a field: scalar, bytes or message."""
        if fd.type == _BYTES:
            return _b64
        if fd.type != _MESSAGE:
            return _ident
        desc = fd.message_type
        special = _SPECIAL_DECODE.get(desc.full_name)
        if special is not None:
            return special
        if _is_list_wrapper(desc):
            return lambda m: list(m.items)
        return self.to_dict

    # Plan kinds: what to do with one present field (ints: compared in the hot loop).
    _SCALAR, _ONE, _LIST, _LISTC, _MAP, _MAPC, _INLINE = range(7)

    def _decode_plan(self, desc) -> dict:
        """FieldDescriptor -> (JSON name, kind, converter, keep zero): built once per message type."""
        plan = self._dec.get(desc)
        if plan is not None:
            return plan
        plan = {}
        self._dec[desc] = plan   # before recursing: messages may nest themselves
        value = self.schema.value_fields
        for fd in desc.fields:
            conv = self._value_conv(fd)
            name = fd.json_name
            if fd.is_repeated and fd.type == _MESSAGE and fd.message_type.GetOptions().map_entry:
                vconv = self._value_conv(fd.message_type.fields_by_name["value"])
                plan[fd] = (name, self._MAP, None, False) if vconv is _ident else (name, self._MAPC, vconv, False)
            elif fd.is_repeated:
                plan[fd] = (name, self._LIST, None, False) if conv is _ident else (name, self._LISTC, conv, False)
            elif not name and fd.type == _MESSAGE:
                plan[fd] = (name, self._INLINE, conv, False)   # Go `json:",inline"`: its fields are ours
            else:
                # A plain message field stays even when empty: Go's JSON never leaves out a struct
                # (`"spec": {}`), and the registry tells `spec: {}` from no spec (metadata.generation).
                keep = conv == self.to_dict or (desc.full_name, fd.name) not in value
                plan[fd] = (name, self._SCALAR, None, keep) if conv is _ident else (name, self._ONE, conv, keep)
        return plan

    def to_dict(self, msg) -> dict:
        """One parsed message as the JSON object Go would write for it.

        The hot path of a protobuf create (the parse itself is C): plans are keyed by the
        descriptor objects and kinds are small ints, which took the benchmark pod from ~22 to
        ~12 µs here (tests/unit/test_protobuf.py compares the result with the JSON object).
        """
        desc = msg.DESCRIPTOR
        plan = self._dec.get(desc) or self._decode_plan(desc)
        out: dict[str, Any] = {}
        for fd, v in msg.ListFields():
            name, kind, conv, keep = plan[fd]
            if kind == 0:                       # scalar
                if v or keep:
                    out[name] = v               # a Go value field at its zero is what omitempty leaves out
            elif kind == 1:                     # one converted value (a message, bytes, a special type)
                j = conv(v)
                if j is not None and (keep or j):
                    out[name] = j
            elif kind == 2:
                out[name] = list(v)
            elif kind == 3:
                out[name] = [conv(x) for x in v]
            elif kind == 4:
                out[name] = dict(v)
            elif kind == 5:
                out[name] = {k: conv(x) for k, x in v.items()}
            else:
                out.update(conv(v))
        return out

    def decode_message(self, full_name: str, raw: bytes, unknown: list[str] | None = None) -> dict:
        """One message as its JSON object; with `unknown`, a warning per field the schema lacks."""
        cls = self.schema.message_class(full_name)
        try:
            msg = cls.FromString(raw)
        except Exception as e:  # noqa: BLE001 - DecodeError, and upb's own errors on hostile input
            raise CodecError(f"the {full_name.rsplit('.', 1)[-1]} message does not parse: {e}")
        try:
            out = self.to_dict(msg)
        except RecursionError:
            raise CodecError("the message is nested too deeply")
        except UnicodeDecodeError:   # a map key: upb decodes those itself
            raise CodecError("a string in the message is not valid UTF-8")
        try:
            # upb leaves proto2 strings unchecked and hands invalid UTF-8 over as bytes; orjson
            # refuses bytes, so one C pass (~2 us for a pod) proves every string is text.
            orjson.dumps(out)
        except TypeError:
            raise CodecError("a string in the message is not valid UTF-8")
        if unknown is not None:
            size = msg.ByteSize()
            msg.DiscardUnknownFields()
            if msg.ByteSize() != size:   # the common case is settled by two sizes computed in C
                self._walk_unknown(cls.FromString(raw), "", unknown)
        return out

    def _walk_unknown(self, msg, path: str, out: list[str]) -> None:
        from google.protobuf.unknown_fields import UnknownFieldSet
        for f in UnknownFieldSet(msg):
            out.append(f'unknown field number {f.field_number} in {msg.DESCRIPTOR.name}'
                       + (f' at "{path}"' if path else "") + " (dropped)")
        for fd, v in msg.ListFields():
            if fd.type != _MESSAGE:
                continue
            here = f"{path}.{fd.json_name}" if path and fd.json_name else (fd.json_name or path)
            if fd.is_repeated and fd.message_type.GetOptions().map_entry:
                for k, x in v.items():
                    if hasattr(x, "ListFields"):
                        self._walk_unknown(x, f"{here}[{k}]", out)
            elif fd.is_repeated:
                for i, x in enumerate(v):
                    self._walk_unknown(x, f"{here}[{i}]", out)
            else:
                self._walk_unknown(v, here, out)

    def unwrap(self, body: bytes) -> tuple[str, str, bytes]:
        """The envelope: (apiVersion, kind, raw message bytes)."""
        if not body.startswith(MAGIC):
            raise CodecError("a protobuf body must start with the Kubernetes magic bytes k8s\\x00")
        try:
            env = self.schema.message_class(UNKNOWN).FromString(body[len(MAGIC):])
        except Exception as e:  # noqa: BLE001
            raise CodecError(f"the protobuf envelope (runtime.Unknown) does not parse: {e}")
        if env.contentEncoding:
            raise CodecError(f"unsupported contentEncoding {env.contentEncoding!r} in the protobuf envelope")
        if env.contentType not in ("", "application/vnd.kubernetes.protobuf"):
            raise CodecError(f"unsupported contentType {env.contentType!r} in the protobuf envelope")
        return env.typeMeta.apiVersion, env.typeMeta.kind, env.raw

    # -- encode
    def _encode_plan(self, desc) -> dict[str, tuple]:
        """JSON name -> (kind, field, inline path): an inline embed's fields are listed as the parent's."""
        plan = self._enc.get(desc.full_name)
        if plan is not None:
            return plan
        plan = {}
        for fd in desc.fields:
            if fd.is_repeated and fd.type == _MESSAGE and fd.message_type.GetOptions().map_entry:
                vfd = fd.message_type.fields_by_name["value"]
                plan[fd.json_name] = ("map_msg" if vfd.type == _MESSAGE else "map", fd, vfd, ())
            elif fd.is_repeated:
                plan[fd.json_name] = ("list_msg" if fd.type == _MESSAGE else "list", fd, fd, ())
            elif not fd.json_name and fd.type == _MESSAGE:
                for k, (kind, f, vf, via) in self._encode_plan(fd.message_type).items():
                    plan.setdefault(k, (kind, f, vf, (fd.name,) + via))
            else:
                plan[fd.json_name] = ("msg" if fd.type == _MESSAGE else "one", fd, fd, ())
        self._enc[desc.full_name] = plan
        return plan

    def _fill(self, msg, obj: Any) -> None:
        desc = msg.DESCRIPTOR
        special = _SPECIAL_ENCODE.get(desc.full_name)
        if special is not None:
            special(msg, obj)
            return
        if _is_list_wrapper(desc):
            msg.items.extend(_strs(obj))
            return
        if not isinstance(obj, dict):
            raise CodecError(f"{desc.name} must be an object, not {type(obj).__name__}")
        msg.SetInParent()
        plan = self._encode_plan(desc)
        for k, v in obj.items():
            if v is None:
                continue
            p = plan.get(k)
            if p is None:
                if desc.full_name != UNKNOWN and k in ("apiVersion", "kind"):
                    continue  # TypeMeta travels in the envelope
                raise CodecError(f"{desc.full_name} has no field {k!r}")
            kind, fd, vfd, via = p
            target = msg
            for step in via:
                target = getattr(target, step)
                target.SetInParent()
            n = fd.name
            try:
                if kind == "one":
                    setattr(target, n, _scalar(fd, v))
                elif kind == "msg":
                    self._fill(getattr(target, n), v)
                elif kind == "list":
                    getattr(target, n).extend(_scalar(fd, x) for x in _list(v, k))
                elif kind == "list_msg":
                    box = getattr(target, n)
                    for x in _list(v, k):
                        self._fill(box.add(), x)
                elif kind == "map":
                    box = getattr(target, n)
                    for mk, mv in _map(v, k).items():
                        box[mk] = _scalar(vfd, mv)
                else:
                    box = getattr(target, n)
                    for mk, mv in _map(v, k).items():
                        self._fill(box[mk], mv)
            except CodecError:
                raise
            except (TypeError, ValueError) as e:
                raise CodecError(f"{desc.name}.{k}: {e}")

    def encode_message(self, full_name: str, obj: dict) -> bytes:
        msg = self.schema.message_class(full_name)()
        self._fill(msg, obj)
        return msg.SerializeToString()

    def wrap(self, api_version: str, kind: str, raw: bytes) -> bytes:
        env = self.schema.message_class(UNKNOWN)()
        env.typeMeta.apiVersion = api_version
        env.typeMeta.kind = kind
        env.raw = raw
        return MAGIC + env.SerializeToString()


def _list(v, k):
    if not isinstance(v, list):
        raise CodecError(f"{k} must be a list")
    return v


def _map(v, k):
    if not isinstance(v, dict):
        raise CodecError(f"{k} must be an object")
    return v


def _strs(v):
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise CodecError("a string list must be a list of strings")
    return v


def _scalar(fd, v):
    if fd.type == _BYTES:
        if not isinstance(v, str):
            raise CodecError(f"{fd.name} must be a base64 string")
        try:
            return base64.b64decode(v, validate=True)
        except ValueError:
            raise CodecError(f"{fd.name} is not valid base64")
    if fd.type == _BOOL:
        if not isinstance(v, bool):
            raise CodecError(f"{fd.name} must be a boolean")
        return v
    if fd.type == _STRING:
        if not isinstance(v, str):
            raise CodecError(f"{fd.name} must be a string")
        return v
    if fd.type in (_DOUBLE, _FLOAT):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CodecError(f"{fd.name} must be a number")
        return float(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise CodecError(f"{fd.name} must be an integer")
    return v
