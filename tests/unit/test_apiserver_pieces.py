"""Unit tests of the API server's pure pieces: discovery negotiation, Status errors, body decoding."""
from __future__ import annotations

import pytest

from apiserver import discovery, errors, wire


@pytest.mark.parametrize("accept,expected", [
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json", discovery.AGG_V2BETA1),
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json", discovery.AGG_V2),
    ("application/json, */*", None),
    ("", None),
    (None, None),
])
def test_discovery_negotiation(accept, expected):
    assert discovery.negotiate_aggregated(accept) == expected


def test_aggregated_discovery_has_what_kubectl_needs():
    doc = discovery.aggregated(True, discovery.AGG_V2)
    pods = [r for r in doc["items"][0]["versions"][0]["resources"] if r["resource"] == "pods"][0]
    assert pods["scope"] == "Namespaced" and pods["responseKind"]["kind"] == "Pod"
    assert "po" in pods["shortNames"] and "all" in pods["categories"] and "watch" in pods["verbs"]
    groups = [i["metadata"]["name"] for i in discovery.aggregated(False, discovery.AGG_V2BETA1)["items"]]
    assert groups == ["coordination.k8s.io", "networking.k8s.io"]


def test_version_info():
    v = discovery.version_info("v1.27.3")
    assert (v["major"], v["minor"], v["gitVersion"]) == ("1", "27", "v1.27.3")


def test_invalid_status_message_matches_kubernetes():
    e = errors.invalid("Pod", "bad", [{"reason": "FieldValueRequired", "field": "spec.containers", "message": "Required value"}])
    assert e.code == 422 and e.message == 'Pod "bad" is invalid: spec.containers: Required value'
    e2 = errors.invalid("Pod", "bad", [{"field": "a", "message": "x"}, {"field": "b", "message": "y"}])
    assert e2.message == 'Pod "bad" is invalid: [a: x, b: y]'
    body = errors.not_found("pods", "x").body()
    assert body["reason"] == "NotFound" and body["details"] == {"name": "x", "kind": "pods"}


@pytest.mark.parametrize("body,ctype,code", [
    (b"{", "application/json", 400),
    (b"\xff\xfe", "application/json", 400),
    (b"[1,2]", "application/json", 400),
    (b'{"a":' * 200 + b"1" + b"}" * 200, "application/json", 400),
    (b"k8s\x00abc", "application/vnd.kubernetes.protobuf", 400),
    (b"k8s\x00\n\x15\n\tpolicy/v1\x12\x08Eviction", "application/vnd.kubernetes.protobuf", 415),
    (b"{}", "text/plain", 415),
    (b"a: &x [*x]", "application/yaml", 400),
    (b"a: [", "application/yaml", 400),
])
def test_bad_bodies_are_clear_errors(body, ctype, code):
    with pytest.raises(errors.StatusError) as e:
        wire.decode_object_body(body, ctype)
    assert e.value.code == code


def test_good_bodies():
    assert wire.decode_object_body(b'{"metadata":{"name":"x"}}', "") == {"metadata": {"name": "x"}}
    assert wire.decode_object_body(b"metadata:\n  name: y\n", "application/yaml") == {"metadata": {"name": "y"}}
