"""The Secret strategy: type default and immutability, stringData, base64, the typed requirements, redaction."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest

from api import resources as R

S = R.SECRETS.strategy
NOW = datetime(2024, 5, 1, 9, 0, 0, tzinfo=timezone.utc)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def secret(**fields):
    return S.defaults({"metadata": {"name": "s", "namespace": "default"}, **fields})


def causes(obj, old=None):
    out = S.validate(obj) if old is None else S.validate_update(obj, old)
    return [(c["field"], c["reason"], c["message"]) for c in out]


def test_type_defaults_to_opaque():
    assert secret()["type"] == "Opaque"
    assert secret(type="")["type"] == "Opaque"
    assert secret(type="kubernetes.io/tls")["type"] == "kubernetes.io/tls"
    assert causes(secret()) == []


def test_string_data_is_merged_and_dropped():
    s = secret(data={"a": b64("old"), "b": b64("keep")}, stringData={"a": "new", "c": "ü"})
    assert "stringData" not in s
    assert s["data"] == {"a": b64("new"), "b": b64("keep"), "c": base64.b64encode("ü".encode()).decode()}
    assert S.defaults(s) == s  # idempotent
    bad = secret(stringData={"a": 1})
    assert "stringData" in bad
    assert causes(bad)[0][:2] == ("stringData[a]", "FieldValueTypeInvalid")


def test_data_must_be_base64_and_values_are_redacted():
    got = causes(secret(data={"k": "hunter2!"}))
    assert got == [("data[k]", "FieldValueInvalid",
                    'Invalid value: "<secret contents redacted>": illegal base64 data at input byte 7')]
    assert "hunter2" not in json.dumps(got)
    assert causes(secret(data={"bad key": b64("v")}))[0][0] == "data[bad key]"


def test_one_mebibyte_of_decoded_data():
    half = b64("x" * (512 * 1024))
    assert causes(secret(data={"a": half, "b": half})) == []
    assert causes(secret(data={"a": half, "b": half, "c": b64("y")})) == [
        ("data", "FieldValueTooLong", "Too long: must have at most 1048576 bytes")]


@pytest.mark.parametrize("type_, fields, missing", [
    ("kubernetes.io/tls", {}, ["data[tls.crt]", "data[tls.key]"]),
    ("kubernetes.io/tls", {"stringData": {"tls.crt": "c"}}, ["data[tls.key]"]),
    ("kubernetes.io/tls", {"stringData": {"tls.crt": "c", "tls.key": "k"}}, []),
    ("kubernetes.io/dockerconfigjson", {}, ["data[.dockerconfigjson]"]),
    ("kubernetes.io/dockerconfigjson", {"stringData": {".dockerconfigjson": '{"auths": {}}'}}, []),
    ("kubernetes.io/dockercfg", {}, ["data[.dockercfg]"]),
    ("kubernetes.io/basic-auth", {}, ["data[username]", "data[password]"]),
    ("kubernetes.io/basic-auth", {"stringData": {"password": "p"}}, []),
    ("kubernetes.io/ssh-auth", {}, ["data[ssh-privatekey]"]),
    ("kubernetes.io/service-account-token", {}, ["metadata.annotations[kubernetes.io/service-account.name]"]),
    ("example.com/custom", {}, []),
])
def test_typed_secrets_require_their_keys(type_, fields, missing):
    got = causes(secret(type=type_, **fields))
    assert [f for f, _, _ in got] == missing
    assert all(r == "FieldValueRequired" for _, r, _ in got)


def test_service_account_token_with_annotation():
    s = secret(type="kubernetes.io/service-account-token")
    s["metadata"]["annotations"] = {"kubernetes.io/service-account.name": "default"}
    assert causes(s) == []


def test_dockerconfigjson_must_hold_json_without_echoing_it():
    got = causes(secret(type="kubernetes.io/dockerconfigjson", stringData={".dockerconfigjson": "{not json secret"}))
    assert got[0][:2] == ("data[.dockerconfigjson]", "FieldValueInvalid")
    assert got[0][2].startswith('Invalid value: "<secret contents redacted>": ')
    assert "secret" not in got[0][2].split("redacted")[1]


def test_type_and_immutable_updates():
    old = secret(data={"a": b64("1")})
    assert causes(secret(type="kubernetes.io/basic-auth", data={"a": b64("1"), "username": b64("u")}), old) == [
        ("type", "FieldValueInvalid", 'Invalid value: "kubernetes.io/basic-auth": field is immutable')]
    frozen = secret(data={"a": b64("1")}, immutable=True)
    msg = "Forbidden: field is immutable when `immutable` is set"
    assert causes(secret(data={"a": b64("2")}, immutable=True), frozen) == [("data", "FieldValueForbidden", msg)]
    assert causes(secret(data={"a": b64("1")}, immutable=False), frozen) == [("immutable", "FieldValueForbidden", msg)]
    assert causes(secret(stringData={"a": "1"}, immutable=True), frozen) == []


def test_table_and_field_selector():
    t = S.table([secret(type="kubernetes.io/tls", stringData={"tls.crt": "c", "tls.key": "k"})], NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
    assert t["rows"][0]["cells"] == ["s", "kubernetes.io/tls", 2, "<unknown>"]
    assert "type" in S.supported_fields
    assert S.field_getter(secret())("type") == "Opaque"
