"""ConfigMap (core/v1): configuration data for pods, as text (`data`) or base64 bytes (`binaryData`).

Keys are config keys (``[-._a-zA-Z0-9]+``, not "." or "..") and may not
appear in both maps; the values together hold at most 1 MiB. An
``immutable`` ConfigMap's data can never change again, nor can it be made
mutable (only its metadata may change, or it may be deleted). Secrets share
these rules (api/kinds/secret.py), so the data-map helpers live here.
"""
from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime

from api.kinds.base import Strategy
from api.tables import Printer, age_col, col, name_col, since
from api.validation import (
    Cause, Errs, forbidden, invalid, is_config_map_key, name_is_dns_subdomain, too_large,
)

MAX_DATA_SIZE = 1024 * 1024  # core.MaxSecretSize, for ConfigMaps too
IMMUTABLE_MSG = "field is immutable when `immutable` is set"
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def decode_base64(value: str) -> bytes | str:
    """The bytes of a base64 value as Go's encoding/json reads []byte, or the error it reports."""
    s = value.replace("\r", "").replace("\n", "")
    m = _BASE64_RE.match(s)
    if m.end() != len(s):
        return f"illegal base64 data at input byte {m.end()}"
    try:
        return base64.b64decode(s, validate=True)
    except binascii.Error:  # a short last quantum or misplaced padding
        return f"illegal base64 data at input byte {len(s) - (len(s) % 4 or 4)}"


def check_keys(e: Errs, keys, path: str) -> None:
    for key in keys:
        e.msgs(f"{path}[{key}]", key, is_config_map_key(key))


def check_immutable(new: dict, old: dict, data_fields: tuple[str, ...]) -> list[Cause]:
    """Once `immutable` is true it stays true and the data fields stay as they are."""
    if old.get("immutable") is not True:
        return []
    causes = []
    if new.get("immutable") is not True:
        causes.append(forbidden("immutable", IMMUTABLE_MSG))
    for f in data_fields:
        if (new.get(f) or {}) != (old.get(f) or {}):
            causes.append(forbidden(f, IMMUTABLE_MSG))
    return causes


def _data_count(cm: dict) -> int:
    return len(cm.get("data") or {}) + len(cm.get("binaryData") or {})


COLUMNS = [
    name_col(),
    col("Data", "Data contains the configuration data. Each key must consist of alphanumeric characters, "
                "'-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys "
                "stored in Data must not overlap with the keys in the BinaryData field, this is enforced during "
                "validation process."),
    age_col(),
]


def _cells(cm: dict, now: datetime) -> list:
    meta = cm.get("metadata") or {}
    return [meta.get("name", ""), _data_count(cm), since(meta.get("creationTimestamp"), now)]


class ConfigMapStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.ConfigMap"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)
    printer = Printer(COLUMNS, _cells)

    def check(self, e: Errs, obj: dict) -> None:
        data = e.str_map(obj, "data", "data")
        binary = e.str_map(obj, "binaryData", "binaryData")
        e.boolean(obj, "immutable", "immutable")
        check_keys(e, data, "data")
        check_keys(e, binary, "binaryData")
        total = sum(len(v.encode(errors="surrogatepass")) for v in data.values())
        for key, value in binary.items():
            if key in data:
                e.append(invalid("binaryData", key, "duplicate of key present in data"))
            raw = decode_base64(value)
            if isinstance(raw, str):
                e.append(invalid(f"binaryData[{key}]", "<binary data>", raw))
            else:
                total += len(raw)
        if total > MAX_DATA_SIZE:
            e.append(too_large("", MAX_DATA_SIZE))

    def check_update(self, new: dict, old: dict, causes: list[Cause]) -> list[Cause]:
        return causes + check_immutable(new, old, ("data", "binaryData"))
