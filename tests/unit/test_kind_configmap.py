"""The ConfigMap strategy: key rules, binaryData, the 1 MiB limit, immutability, its Table row."""
from __future__ import annotations

import base64
from datetime import datetime, timezone

from api import resources as R

S = R.CONFIGMAPS.strategy
NOW = datetime(2024, 5, 1, 9, 0, 0, tzinfo=timezone.utc)


def cm(**fields):
    return {"metadata": {"name": "c", "namespace": "default"}, **fields}


def causes(obj, old=None):
    out = S.validate(obj) if old is None else S.validate_update(obj, old)
    return [(c["field"], c["reason"], c["message"]) for c in out]


def test_row_and_discovery_facts():
    assert R.resolve("cm") is R.CONFIGMAPS and R.lookup("", "v1", "configmaps") is R.CONFIGMAPS
    assert R.CONFIGMAPS.namespaced and R.CONFIGMAPS in R.STORED


def test_valid_configmaps():
    assert causes(cm()) == []
    assert causes(cm(data={"a.b": "x", "KEY_1": "", "-x": "y"}, binaryData={"bin": base64.b64encode(b"\0\1").decode()},
                     immutable=True)) == []


def test_bad_keys_and_values():
    got = causes(cm(data={"bad key": "v", "..": "v"}))
    assert [f for f, _, _ in got] == ["data[bad key]", "data[..]"]
    assert got[0][2].startswith('Invalid value: "bad key": a valid config key must consist of alphanumeric characters')
    assert got[1][2] == "Invalid value: \"..\": must not be '..'"
    assert causes(cm(data={"a": 1})) == [("data[a]", "FieldValueTypeInvalid",
                                          'Invalid value: "integer": data[a] in body must be of type string: "integer"')]
    assert causes(cm(binaryData={"b": "not base64!"}))[0][:2] == ("binaryData[b]", "FieldValueInvalid")
    assert causes(cm(immutable="yes"))[0][:2] == ("immutable", "FieldValueTypeInvalid")


def test_key_in_both_maps():
    assert causes(cm(data={"k": "v"}, binaryData={"k": "dg=="})) == [
        ("binaryData", "FieldValueInvalid", 'Invalid value: "k": duplicate of key present in data')]


def test_one_mebibyte_in_total():
    half = "x" * (512 * 1024)
    assert causes(cm(data={"a": half, "b": half})) == []
    too_big = base64.b64encode(b"y").decode()
    assert causes(cm(data={"a": half, "b": half}, binaryData={"c": too_big})) == [
        ("", "FieldValueTooLong", "Too long: must have at most 1048576 bytes")]


def test_immutable_updates():
    old = cm(data={"a": "1"}, immutable=True)
    assert causes(cm(data={"a": "1"}, immutable=True, metadata={"name": "c", "namespace": "default",
                                                               "labels": {"x": "y"}}), old) == []
    msg = "Forbidden: field is immutable when `immutable` is set"
    assert causes(cm(data={"a": "2"}, immutable=True), old) == [("data", "FieldValueForbidden", msg)]
    assert causes(cm(data={"a": "1"}), old) == [("immutable", "FieldValueForbidden", msg)]
    assert causes(cm(data={"a": "1"}, binaryData={"b": "dg=="}, immutable=True), old) == [
        ("binaryData", "FieldValueForbidden", msg)]
    # A mutable one may change and may become immutable.
    assert causes(cm(data={"a": "2"}, immutable=True), cm(data={"a": "1"})) == []


def test_table_columns_and_row():
    t = S.table([cm(data={"a": "1", "b": "2"}, binaryData={"c": "dg=="})], NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert t["rows"][0]["cells"] == ["c", 3, "<unknown>"]
    assert S.supported_fields == ("metadata.name", "metadata.namespace")
