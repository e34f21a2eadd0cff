"""Secret (core/v1): small pieces of sensitive data, base64 in `data`, with a `type` saying what they hold.

`type` defaults to Opaque and never changes; the well-known types require
their keys (`kubernetes.io/tls` a `tls.crt` and a `tls.key`,
`kubernetes.io/dockerconfigjson` a `.dockerconfigjson` holding JSON, ...).
`stringData` is a write-only convenience: its values are merged into `data`
(base64-encoded, overriding the same keys) on every create and update, and
it is never stored, as in Kubernetes, where the merge happens while decoding
(before validation, which therefore sees the merged `data`). Keys, the
1 MiB limit and `immutable` follow ConfigMap's rules (api/kinds/configmap.py).

A Secret's values never appear in a validation message: a bad value is
reported as "<secret contents redacted>", as kube-apiserver does, so they
cannot leak into Events, logs or error answers.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime

from api.kinds.base import Strategy
from api.kinds.configmap import MAX_DATA_SIZE, check_immutable, check_keys, decode_base64
from api.tables import Printer, age_col, col, name_col, since
from api.validation import (
    FIELD_IMMUTABLE, Cause, Errs, invalid, name_is_dns_subdomain, required, too_large,
)

OPAQUE = "Opaque"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
SERVICE_ACCOUNT_NAME_KEY = "kubernetes.io/service-account.name"
DOCKERCFG, DOCKERCFG_KEY = "kubernetes.io/dockercfg", ".dockercfg"
DOCKER_CONFIG_JSON, DOCKER_CONFIG_JSON_KEY = "kubernetes.io/dockerconfigjson", ".dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
TLS = "kubernetes.io/tls"
REDACTED = "<secret contents redacted>"

COLUMNS = [
    name_col(),
    col("Type", "Used to facilitate programmatic handling of secret data. More info: "
                "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
    col("Data", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or "
                "'.'. The serialized form of the secret data is a base64 encoded string, representing the "
                "arbitrary (possibly non-string) data value here. Described in "
                "https://tools.ietf.org/html/rfc4648#section-4"),
    age_col(),
]


def _cells(secret: dict, now: datetime) -> list:
    meta = secret.get("metadata") or {}
    return [meta.get("name", ""), secret.get("type") or "", len(secret.get("data") or {}),
            since(meta.get("creationTimestamp"), now)]


def _merge_string_data(secret: dict) -> None:
    """Fold stringData into data; left alone (for validation to report) unless both are maps of strings."""
    string_data = secret.get("stringData")
    data = secret.get("data")
    if string_data is None:
        secret.pop("stringData", None)
        return
    if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
        return
    if data is not None and not isinstance(data, dict):
        return
    merged = dict(data or {})
    for key, value in string_data.items():
        merged[key] = base64.b64encode(value.encode(errors="surrogatepass")).decode()
    secret["data"] = merged
    del secret["stringData"]


def _check_type(e: Errs, secret: dict, kind: str, data: dict[str, bytes]) -> None:
    def need(key: str) -> None:
        if key not in data:
            e.append(required(f"data[{key}]"))

    if kind == SERVICE_ACCOUNT_TOKEN:
        md = secret.get("metadata") if isinstance(secret.get("metadata"), dict) else {}
        annotations = md.get("annotations") if isinstance(md.get("annotations"), dict) else {}
        if not annotations.get(SERVICE_ACCOUNT_NAME_KEY):
            e.append(required(f"metadata.annotations[{SERVICE_ACCOUNT_NAME_KEY}]"))
    elif kind in (DOCKERCFG, DOCKER_CONFIG_JSON):
        key = DOCKERCFG_KEY if kind == DOCKERCFG else DOCKER_CONFIG_JSON_KEY
        need(key)
        if key in data:
            try:
                json.loads(data[key])
            except ValueError as err:
                # The decoder's complaint names a position, never the content.
                e.append(invalid(f"data[{key}]", REDACTED, str(err).split(":")[0]))
    elif kind == BASIC_AUTH:
        if "username" not in data and "password" not in data:
            e.append(required("data[username]"))
            e.append(required("data[password]"))
    elif kind == SSH_AUTH:
        if not data.get("ssh-privatekey"):
            e.append(required("data[ssh-privatekey]"))
    elif kind == TLS:
        need("tls.crt")
        need("tls.key")


class SecretStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.Secret"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)
    fields = ("type",)
    printer = Printer(COLUMNS, _cells)

    def default(self, obj: dict) -> None:
        if obj.get("type") in (None, ""):
            obj["type"] = OPAQUE
        _merge_string_data(obj)

    def check(self, e: Errs, obj: dict) -> None:
        kind = e.string(obj, "type", "type")
        e.boolean(obj, "immutable", "immutable")
        e.str_map(obj, "stringData", "stringData")  # only left here when it could not be merged
        encoded = e.str_map(obj, "data", "data")
        check_keys(e, encoded, "data")
        data: dict[str, bytes] = {}
        for key, value in encoded.items():
            raw = decode_base64(value)
            if isinstance(raw, str):
                e.append(invalid(f"data[{key}]", REDACTED, raw))
            else:
                data[key] = raw
        if sum(len(v) for v in data.values()) > MAX_DATA_SIZE:
            e.append(too_large("data", MAX_DATA_SIZE))
        _check_type(e, obj, kind, data)

    def check_update(self, new: dict, old: dict, causes: list[Cause]) -> list[Cause]:
        if new.get("type") != old.get("type"):
            causes = causes + [invalid("type", new.get("type"), FIELD_IMMUTABLE)]
        return causes + check_immutable(new, old, ("data",))
