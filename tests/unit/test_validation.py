"""Validation: every rule yields the Kubernetes cause (reason, message, field path); valid objects pass clean.

Most cases are table rows: start from a valid, defaulted object, change one
field, and expect a cause at an exact field path with an exact reason (and,
where the wording matters to kubectl users, the exact message).
"""
from __future__ import annotations

import copy
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.validation import (
    is_cidr, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_env_var_name, is_ip, is_qualified_name,
    is_valid_label_value, is_valid_port, is_valid_port_name, is_wildcard_dns1123_subdomain, name_is_dns_label,
    name_is_dns_subdomain, validate_object_meta,
)
from tests.unit.kindutil import apply_defaults, validate, validate_update

REQUIRED, INVALID, NOT_SUPPORTED = "FieldValueRequired", "FieldValueInvalid", "FieldValueNotSupported"
DUPLICATE, FORBIDDEN, TOO_LONG, TYPE_INVALID = "FieldValueDuplicate", "FieldValueForbidden", "FieldValueTooLong", "FieldValueTypeInvalid"
NOT_FOUND = "FieldValueNotFound"
DELETE = object()

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"

# A realistic pod as kubectl sends it (~600 bytes): nginx with ports, env, resources, a probe and a volume.
NGINX_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "nginx-x8k2p",
        "namespace": "default",
        "labels": {"app.kubernetes.io/name": "nginx"},
    },
    "spec": {
        "containers": [{
            "name": "nginx",
            "image": "nginx:1.25.3",
            "ports": [{"name": "http", "containerPort": 80}, {"name": "https", "containerPort": 443}],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
            "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/nginx"}],
        }],
        "volumes": [{"name": "cache", "emptyDir": {}}],
    },
}


# ------------------------------------------------------------------ helpers
def _parse(path: str | tuple) -> list:
    if isinstance(path, tuple):
        return list(path)
    return [int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"[^.\[\]]+|\[\d+\]", path)]


def mutate(obj: dict, path: str | tuple, value) -> dict:
    """A deep copy of obj with the field at path set (or removed, for DELETE)."""
    obj = copy.deepcopy(obj)
    parts = _parse(path)
    cur = obj
    for p in parts[:-1]:
        cur = cur[p]
    if value is DELETE:
        del cur[parts[-1]]
    elif isinstance(cur, list) and parts[-1] == len(cur):
        cur.append(value)
    else:
        cur[parts[-1]] = value
    return obj


def fields(causes) -> list[tuple[str, str]]:
    return [(c["field"], c["reason"]) for c in causes]


def assert_cause(causes, field, reason, message=None):
    matching = [c for c in causes if c["field"] == field and c["reason"] == reason]
    assert matching, f"no {reason} at {field}; got {causes}"
    if message is not None:
        assert message in [c["message"] for c in matching], f"messages were {[c['message'] for c in matching]}"


def assert_clean(kind, obj):
    causes = validate(kind, obj)
    assert causes == [], causes


def good_pod() -> dict:
    return apply_defaults("Pod", copy.deepcopy(NGINX_POD))


# ------------------------------------------------------------------ string checks
@pytest.mark.parametrize("fn, value, ok", [
    (is_dns1123_subdomain, "example.com", True),
    (is_dns1123_subdomain, "a", True),
    (is_dns1123_subdomain, "a" * 253, True),
    (is_dns1123_subdomain, "a" * 254, False),
    (is_dns1123_subdomain, "Bad_Name", False),
    (is_dns1123_subdomain, "-a", False),
    (is_dns1123_subdomain, "a.", False),
    (is_dns1123_subdomain, "", False),
    (is_dns1123_label, "my-name", True),
    (is_dns1123_label, "123", True),
    (is_dns1123_label, "a" * 64, False),
    (is_dns1123_label, "a.b", False),
    (is_dns1123_label, "A", False),
    (is_dns1035_label, "svc-1", True),
    (is_dns1035_label, "1svc", False),
    (is_qualified_name, "app", True),
    (is_qualified_name, "App.Name_1", True),
    (is_qualified_name, "example.com/app", True),
    (is_qualified_name, "app.kubernetes.io/name", True),
    (is_qualified_name, "a" * 63, True),
    (is_qualified_name, "a" * 64, False),
    (is_qualified_name, "/app", False),
    (is_qualified_name, "Example.com/app", False),
    (is_qualified_name, "a/b/c", False),
    (is_qualified_name, "-app", False),
    (is_qualified_name, "", False),
    (is_qualified_name, "bad key", False),
    (is_valid_label_value, "", True),
    (is_valid_label_value, "v1.2_3-x", True),
    (is_valid_label_value, "a" * 64, False),
    (is_valid_label_value, "-x", False),
    (is_valid_label_value, "a/b", False),
    (is_ip, "10.0.0.1", True),
    (is_ip, "2001:db8::ffff", True),
    (is_ip, "10.0.0.256", False),
    (is_ip, "010.0.0.1", False),
    (is_ip, "fe80::1%eth0", False),
    (is_ip, "", False),
    (is_cidr, "10.244.0.0/16", True),
    (is_cidr, "10.244.1.5/24", True),  # Go's ParseCIDR accepts host bits
    (is_cidr, "10.244.0.0", False),
    (is_cidr, "10.244.0.0/33", False),
    (is_valid_port_name, "http", True),
    (is_valid_port_name, "h2c-web", True),
    (is_valid_port_name, "a" * 15, True),
    (is_valid_port_name, "a" * 16, False),
    (is_valid_port_name, "8080", False),
    (is_valid_port_name, "http--x", False),
    (is_valid_port_name, "-http", False),
    (is_valid_port_name, "HTTP", False),
    (is_env_var_name, "MY_VAR.name-1", True),
    (is_env_var_name, "1VAR", False),
    (is_env_var_name, "..", False),
    (is_wildcard_dns1123_subdomain, "*.example.com", True),
    (is_wildcard_dns1123_subdomain, "*.*.example.com", False),
])
def test_string_checks(fn, value, ok):
    errs = fn(value)
    assert (errs == []) is ok, errs


@pytest.mark.parametrize("port, ok", [(1, True), (65535, True), (0, False), (65536, False), (-1, False),
                                      (True, False), ("80", False), (80.0, False)])
def test_is_valid_port(port, ok):
    assert (is_valid_port(port) == []) is ok


def test_helper_messages_are_kubernetes_text():
    assert is_dns1123_subdomain("Bad_Name") == [SUBDOMAIN_MSG]
    assert is_dns1123_label("Bad") == [LABEL_MSG]
    assert is_dns1123_label("a.b") == ["must not contain dots"]
    assert is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    assert is_qualified_name("/x") == ["prefix part must be non-empty"]
    assert is_qualified_name("a" * 64) == ["name part must be no more than 63 characters"]
    assert is_valid_port(0) == [PORT_RANGE_MSG]
    assert is_ip("x") == ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    assert is_valid_port_name("8080") == ["must contain at least one letter (a-z)"]
    assert is_dns1035_label("1a") == [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
        "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
        "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]


def test_generate_name_prefix_may_end_with_dash():
    assert name_is_dns_subdomain("web-", True) == []
    assert name_is_dns_subdomain("web-", False) != []
    assert name_is_dns_label("Web-", True) != []


# ------------------------------------------------------------------ object meta
def test_realistic_pod_validates_clean():
    assert 550 <= len(json.dumps(NGINX_POD, separators=(",", ":"))) <= 650  # compact, as kubectl sends it
    assert_clean("Pod", good_pod())


def test_undefaulted_pod_reports_what_defaulting_fills():
    causes = validate("Pod", copy.deepcopy(NGINX_POD))
    assert ("spec.restartPolicy", REQUIRED) in fields(causes)
    assert ("spec.containers[0].imagePullPolicy", REQUIRED) in fields(causes)
    assert ("spec.containers[0].ports[1].protocol", REQUIRED) in fields(causes)


def test_bad_name_message_matches_kubernetes():
    causes = validate("Pod", mutate(good_pod(), "metadata.name", "Bad_Name"))
    assert causes == [{"reason": INVALID, "field": "metadata.name",
                       "message": f'Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'}]


META_CASES = [
    # (path, value, field, reason, message)
    ("metadata.name", DELETE, "metadata.name", REQUIRED, "Required value: name or generateName is required"),
    ("metadata.name", "", "metadata.name", REQUIRED, None),
    ("metadata.name", "a" * 254, "metadata.name", INVALID, None),
    ("metadata.name", 5, "metadata.name", TYPE_INVALID,
     'Invalid value: "integer": metadata.name in body must be of type string: "integer"'),
    ("metadata.generateName", "Web-", "metadata.generateName", INVALID, None),
    ("metadata.namespace", DELETE, "metadata.namespace", REQUIRED, "Required value"),
    ("metadata.namespace", "Bad_NS", "metadata.namespace", INVALID, None),
    ("metadata.namespace", "a.b", "metadata.namespace", INVALID, 'Invalid value: "a.b": must not contain dots'),
    ("metadata.generation", -1, "metadata.generation", INVALID, "Invalid value: -1: must be greater than or equal to 0"),
    ("metadata.labels", {"-bad": "x"}, "metadata.labels", INVALID, None),
    ("metadata.labels", {"a/b/c": "x"}, "metadata.labels", INVALID, None),
    ("metadata.labels", {"app": "a" * 64}, "metadata.labels", INVALID,
     f'Invalid value: "{"a" * 64}": must be no more than 63 characters'),
    ("metadata.labels", {"app": "bad value"}, "metadata.labels", INVALID, None),
    ("metadata.labels", {"app": 1}, "metadata.labels[app]", TYPE_INVALID, None),
    ("metadata.labels", ["app"], "metadata.labels", TYPE_INVALID, None),
    ("metadata.annotations", {"bad key": "x"}, "metadata.annotations", INVALID, None),
    ("metadata.annotations", {"a": "x" * (256 * 1024)}, "metadata.annotations", TOO_LONG,
     "Too long: may not be more than 262144 bytes"),
    ("metadata.annotations", {"a": None}, "metadata.annotations[a]", TYPE_INVALID, None),
    ("metadata.ownerReferences", [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs"}],
     "metadata.ownerReferences.uid", INVALID, 'Invalid value: "": must not be empty'),
    ("metadata.ownerReferences", [{"kind": "ReplicaSet", "name": "rs", "uid": "1"}],
     "metadata.ownerReferences.apiVersion", INVALID, 'Invalid value: "": version must not be empty'),
    ("metadata.ownerReferences", [{"apiVersion": "v1", "name": "rs", "uid": "1"}],
     "metadata.ownerReferences.kind", INVALID, None),
    ("metadata.ownerReferences", [{"apiVersion": "v1", "kind": "X", "uid": "1"}],
     "metadata.ownerReferences.name", INVALID, None),
    ("metadata.ownerReferences", [{"apiVersion": "v1", "kind": "X", "name": "a", "uid": "1", "controller": True},
                                  {"apiVersion": "v1", "kind": "X", "name": "b", "uid": "2", "controller": True}],
     "metadata.ownerReferences", INVALID, None),
    ("metadata.ownerReferences", ["x"], "metadata.ownerReferences[0]", TYPE_INVALID, None),
    ("metadata.finalizers", ["bad finalizer"], "metadata.finalizers", INVALID, None),
    ("metadata.finalizers", ["orphan", "foregroundDeletion"], "metadata.finalizers", INVALID,
     'Invalid value: []string{"orphan", "foregroundDeletion"}: finalizer orphan and foregroundDeletion cannot be both set'),
    ("metadata.finalizers", [3], "metadata.finalizers[0]", TYPE_INVALID, None),
    ("metadata", "x", "metadata", TYPE_INVALID, None),
]


@pytest.mark.parametrize("path, value, field, reason, message", META_CASES,
                         ids=[f"{c[0]}={str(c[1])[:20]}" for c in META_CASES])
def test_metadata_rules(path, value, field, reason, message):
    assert_cause(validate("Pod", mutate(good_pod(), path, value)), field, reason, message)


@pytest.mark.parametrize("meta", [
    {"generateName": "web-", "namespace": "default"},  # the server fills the name
    {"name": "web", "namespace": "default", "labels": {"example.com/app": "web", "empty": ""}},
    {"name": "web", "namespace": "default", "annotations": {"Example.com/Mixed-Case": "ok", "note": ""}},
    {"name": "web", "namespace": "default", "finalizers": ["example.com/cleanup", "kubernetes"]},
    {"name": "web", "namespace": "default", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": True},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u2", "controller": False}]},
])
def test_valid_metadata(meta):
    assert validate_object_meta(meta, True, name_is_dns_subdomain) == []


def test_object_meta_namespace_rules():
    assert fields(validate_object_meta({"name": "n"}, True)) == [("metadata.namespace", REQUIRED)]
    causes = validate_object_meta({"name": "n", "namespace": "default"}, False)
    assert causes == [{"reason": FORBIDDEN, "field": "metadata.namespace", "message": "Forbidden: not allowed on this type"}]
    assert validate_object_meta({"name": "n", "namespace": "x"}, None) == []
    assert validate_object_meta({"name": "n"}, None) == []


def test_unknown_kind_checks_metadata_only():
    assert validate("Widget", {"metadata": {"name": "Any_Name.ok", "namespace": "default"}, "data": 5}) == []
    assert_cause(validate("Widget", {"metadata": {"name": "a/b"}}), "metadata.name", INVALID,
                 "Invalid value: \"a/b\": may not contain '/'")
    assert_cause(validate("Widget", {"metadata": {"name": ".."}}), "metadata.name", INVALID)
    assert_cause(validate("Widget", {"metadata": {"name": "x", "labels": {"bad key": "v"}}}), "metadata.labels", INVALID)


def test_non_object_is_type_invalid():
    assert fields(validate("Pod", [])) == [("<root>", TYPE_INVALID)]


# ------------------------------------------------------------------ pods
C0 = "spec.containers[0]"

POD_CASES = [
    # containers
    ("spec.containers", DELETE, "spec.containers", REQUIRED, "Required value"),
    ("spec.containers", [], "spec.containers", REQUIRED, "Required value"),
    ("spec.containers", "nginx", "spec.containers", TYPE_INVALID,
     'Invalid value: "string": spec.containers in body must be of type array: "string"'),
    ("spec.containers[0]", "nginx", C0, TYPE_INVALID, None),
    ("spec", [], "spec", TYPE_INVALID, None),
    (f"{C0}.name", "Web_1", f"{C0}.name", INVALID, f'Invalid value: "Web_1": {LABEL_MSG}'),
    (f"{C0}.name", "a.b", f"{C0}.name", INVALID, 'Invalid value: "a.b": must not contain dots'),
    (f"{C0}.name", DELETE, f"{C0}.name", REQUIRED, None),
    ("spec.containers[1]", {"name": "nginx", "image": "busybox", "imagePullPolicy": "Always",
                            "terminationMessagePolicy": "File"},
     "spec.containers[1].name", DUPLICATE, 'Duplicate value: "nginx"'),
    ("spec.initContainers", [{"name": "nginx", "image": "busybox", "imagePullPolicy": "Always",
                              "terminationMessagePolicy": "File"}],
     f"{C0}.name", DUPLICATE, 'Duplicate value: "nginx"'),
    (f"{C0}.image", DELETE, f"{C0}.image", REQUIRED, "Required value"),
    (f"{C0}.image", "", f"{C0}.image", REQUIRED, None),
    (f"{C0}.image", " nginx", f"{C0}.image", INVALID, None),
    (f"{C0}.imagePullPolicy", "Sometimes", f"{C0}.imagePullPolicy", NOT_SUPPORTED,
     'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'),
    (f"{C0}.terminationMessagePolicy", "Tail", f"{C0}.terminationMessagePolicy", NOT_SUPPORTED, None),
    (f"{C0}.restartPolicy", "Always", f"{C0}.restartPolicy", FORBIDDEN, None),
    (f"{C0}.command", "nginx -g", f"{C0}.command", TYPE_INVALID, None),
    # container ports
    (f"{C0}.ports[0].containerPort", 0, f"{C0}.ports[0].containerPort", REQUIRED, None),
    (f"{C0}.ports[0].containerPort", DELETE, f"{C0}.ports[0].containerPort", REQUIRED, None),
    (f"{C0}.ports[0].containerPort", 70000, f"{C0}.ports[0].containerPort", INVALID,
     f"Invalid value: 70000: {PORT_RANGE_MSG}"),
    (f"{C0}.ports[0].containerPort", -1, f"{C0}.ports[0].containerPort", INVALID, None),
    (f"{C0}.ports[0].containerPort", "80", f"{C0}.ports[0].containerPort", TYPE_INVALID, None),
    (f"{C0}.ports[0].containerPort", 80.5, f"{C0}.ports[0].containerPort", TYPE_INVALID, None),
    (f"{C0}.ports[0].hostPort", 70000, f"{C0}.ports[0].hostPort", INVALID, None),
    (f"{C0}.ports[0].hostPort", -5, f"{C0}.ports[0].hostPort", INVALID, None),
    (f"{C0}.ports[0].protocol", "HTTP", f"{C0}.ports[0].protocol", NOT_SUPPORTED,
     'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    (f"{C0}.ports[0].protocol", DELETE, f"{C0}.ports[0].protocol", REQUIRED, None),
    (f"{C0}.ports[0].name", "http_web", f"{C0}.ports[0].name", INVALID, None),
    (f"{C0}.ports[0].name", "a-very-long-port-name", f"{C0}.ports[0].name", INVALID,
     'Invalid value: "a-very-long-port-name": must be no more than 15 characters'),
    (f"{C0}.ports[1].name", "http", f"{C0}.ports[1].name", DUPLICATE, 'Duplicate value: "http"'),
    (f"{C0}.ports[0].hostIP", "nope", f"{C0}.ports[0].hostIP", INVALID, None),
    # env
    (f"{C0}.env[0].name", "1BAD", f"{C0}.env[0].name", INVALID, None),
    (f"{C0}.env[0].name", "", f"{C0}.env[0].name", REQUIRED, None),
    (f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "spec.hostname", f"{C0}.env[0].valueFrom.fieldRef.fieldPath",
     NOT_SUPPORTED, None),
    (f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "metadata.labels['bad key']", f"{C0}.env[0].valueFrom.fieldRef",
     INVALID, None),
    (f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "spec.containers[0]", f"{C0}.env[0].valueFrom.fieldRef",
     INVALID, None),
    (f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "", f"{C0}.env[0].valueFrom.fieldRef.fieldPath", REQUIRED, None),
    (f"{C0}.env[0].valueFrom.fieldRef.apiVersion", "v2", f"{C0}.env[0].valueFrom.fieldRef.fieldPath", INVALID, None),
    (f"{C0}.env[0].valueFrom", {}, f"{C0}.env[0].valueFrom", INVALID,
     'Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`'),
    (f"{C0}.env[0].value", "x", f"{C0}.env[0].valueFrom", INVALID, None),
    (f"{C0}.env[0].valueFrom.configMapKeyRef", {"name": "cfg", "key": "k"}, f"{C0}.env[0].valueFrom", INVALID,
     'Invalid value: "": may not have more than one field specified at a time'),
    (f"{C0}.env[0].valueFrom", {"secretKeyRef": {"name": "s"}}, f"{C0}.env[0].valueFrom.secretKeyRef.key", REQUIRED, None),
    (f"{C0}.env[0].valueFrom", {"resourceFieldRef": {"resource": "limits.gpu"}},
     f"{C0}.env[0].valueFrom.resourceFieldRef.resource", NOT_SUPPORTED, None),
    (f"{C0}.env[0].value", 5, f"{C0}.env[0].value", TYPE_INVALID, None),
    (f"{C0}.envFrom", [{"prefix": "1X", "configMapRef": {"name": "c"}}], f"{C0}.envFrom[0].prefix", INVALID, None),
    (f"{C0}.envFrom", [{}], f"{C0}.envFrom[0]", INVALID, None),
    # resources
    (f"{C0}.resources.requests.cpu", "abc", f"{C0}.resources.requests[cpu]", INVALID,
     "Invalid value: \"abc\": quantities must match the regular expression "
     "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    (f"{C0}.resources.limits.memory", "1GB", f"{C0}.resources.limits[memory]", INVALID, None),
    (f"{C0}.resources.requests.cpu", "-1", f"{C0}.resources.requests[cpu]", INVALID,
     'Invalid value: "-1": must be greater than or equal to 0'),
    (f"{C0}.resources.requests.cpu", "1", f"{C0}.resources.requests", INVALID,
     'Invalid value: "1": must be less than or equal to cpu limit of 500m'),
    (f"{C0}.resources.requests.memory", "0.25Gi", f"{C0}.resources.requests", INVALID,
     'Invalid value: "256Mi": must be less than or equal to memory limit of 128Mi'),
    (f"{C0}.resources.requests.cpu", ["1"], f"{C0}.resources.requests[cpu]", TYPE_INVALID, None),
    (f"{C0}.resources.requests.gpu", "1", f"{C0}.resources.requests[gpu]", INVALID,
     'Invalid value: "gpu": must be a standard resource for containers'),
    (f"{C0}.resources.requests", {"example.com/gpu": "1"}, f"{C0}.resources.limits", REQUIRED,
     "Required value: Limit must be set for non overcommitable resources"),
    (f"{C0}.resources.limits", {"example.com/gpu": "0.5"}, f"{C0}.resources.limits[example.com/gpu]", INVALID,
     'Invalid value: "500m": must be an integer'),
    (f"{C0}.resources", {"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}},
     f"{C0}.resources.requests", INVALID, 'Invalid value: "1": must be equal to example.com/gpu limit of 2'),
    (f"{C0}.resources", "big", f"{C0}.resources", TYPE_INVALID, None),
    # pod-level policies
    ("spec.restartPolicy", "Sometimes", "spec.restartPolicy", NOT_SUPPORTED,
     'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ("spec.restartPolicy", DELETE, "spec.restartPolicy", REQUIRED, "Required value"),
    ("spec.dnsPolicy", "Cluster", "spec.dnsPolicy", NOT_SUPPORTED,
     'Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'),
    ("spec.dnsPolicy", "None", "spec.dnsConfig", REQUIRED,
     "Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ("spec.dnsConfig", {"nameservers": ["1.1.1.1", "x"]}, "spec.dnsConfig.nameservers[1]", INVALID, None),
    ("spec.dnsConfig", {"nameservers": ["1.1.1.1"] * 4}, "spec.dnsConfig.nameservers", INVALID, None),
    ("spec.dnsConfig", {"searches": ["Bad_Domain"]}, "spec.dnsConfig.searches[0]", INVALID, None),
    ("spec.dnsConfig", {"options": [{"value": "1"}]}, "spec.dnsConfig.options[0].name", REQUIRED, None),
    ("spec.terminationGracePeriodSeconds", -1, "spec.terminationGracePeriodSeconds", INVALID,
     "Invalid value: -1: must be greater than or equal to 0"),
    ("spec.terminationGracePeriodSeconds", "30", "spec.terminationGracePeriodSeconds", TYPE_INVALID, None),
    ("spec.activeDeadlineSeconds", 0, "spec.activeDeadlineSeconds", INVALID,
     "Invalid value: 0: must be between 1 and 2147483647, inclusive"),
    ("spec.hostname", "My_Host", "spec.hostname", INVALID, None),
    ("spec.subdomain", "a.b", "spec.subdomain", INVALID, 'Invalid value: "a.b": must not contain dots'),
    ("spec.nodeName", "Node_1", "spec.nodeName", INVALID, None),
    ("spec.schedulerName", "My Scheduler", "spec.schedulerName", INVALID, None),
    ("spec.serviceAccountName", "Bad_SA", "spec.serviceAccountName", INVALID, None),
    ("spec.preemptionPolicy", "Always", "spec.preemptionPolicy", NOT_SUPPORTED, None),
    ("spec.hostNetwork", "yes", "spec.hostNetwork", TYPE_INVALID, None),
    ("spec.priority", "high", "spec.priority", TYPE_INVALID, None),
    # probes
    (f"{C0}.readinessProbe", {"periodSeconds": 10}, f"{C0}.readinessProbe", REQUIRED,
     "Required value: must specify a handler type"),
    (f"{C0}.readinessProbe.exec", {"command": ["true"]}, f"{C0}.readinessProbe.httpGet", FORBIDDEN,
     "Forbidden: may not specify more than 1 handler type"),
    (f"{C0}.readinessProbe.periodSeconds", 0, f"{C0}.readinessProbe.periodSeconds", INVALID,
     "Invalid value: 0: must be greater than or equal to 1"),
    (f"{C0}.readinessProbe.timeoutSeconds", -1, f"{C0}.readinessProbe.timeoutSeconds", INVALID, None),
    (f"{C0}.readinessProbe.failureThreshold", 0, f"{C0}.readinessProbe.failureThreshold", INVALID, None),
    (f"{C0}.readinessProbe.initialDelaySeconds", -1, f"{C0}.readinessProbe.initialDelaySeconds", INVALID, None),
    (f"{C0}.readinessProbe.terminationGracePeriodSeconds", 0, f"{C0}.readinessProbe.terminationGracePeriodSeconds",
     INVALID, None),
    (f"{C0}.livenessProbe", {"tcpSocket": {"port": 80}, "successThreshold": 2}, f"{C0}.livenessProbe.successThreshold",
     INVALID, "Invalid value: 2: must be 1"),
    (f"{C0}.startupProbe", {"grpc": {"port": 0}}, f"{C0}.startupProbe.grpc.port", INVALID, None),
    (f"{C0}.readinessProbe.httpGet.port", 0, f"{C0}.readinessProbe.httpGet.port", INVALID, None),
    (f"{C0}.readinessProbe.httpGet.port", "web_http", f"{C0}.readinessProbe.httpGet.port", INVALID, None),
    (f"{C0}.readinessProbe.httpGet.port", [80], f"{C0}.readinessProbe.httpGet.port", TYPE_INVALID, None),
    (f"{C0}.readinessProbe.httpGet.scheme", "FTP", f"{C0}.readinessProbe.httpGet.scheme", NOT_SUPPORTED,
     'Unsupported value: "FTP": supported values: "HTTP", "HTTPS"'),
    (f"{C0}.readinessProbe.httpGet.path", "", f"{C0}.readinessProbe.httpGet.path", REQUIRED, None),
    (f"{C0}.readinessProbe.httpGet.httpHeaders", [{"name": "X Bad", "value": "1"}],
     f"{C0}.readinessProbe.httpGet.httpHeaders", INVALID, None),
    (f"{C0}.readinessProbe", {"exec": {"command": []}}, f"{C0}.readinessProbe.exec.command", REQUIRED, None),
    (f"{C0}.readinessProbe", {"tcpSocket": {"port": "8080"}}, f"{C0}.readinessProbe.tcpSocket.port", INVALID,
     'Invalid value: "8080": must contain at least one letter (a-z)'),
    (f"{C0}.lifecycle", {"preStop": {}}, f"{C0}.lifecycle.preStop", REQUIRED, None),
    (f"{C0}.lifecycle", {"preStop": {"sleep": {"seconds": -1}}}, f"{C0}.lifecycle.preStop.sleep.seconds", INVALID, None),
    ("spec.initContainers", [{"name": "init", "image": "busybox", "imagePullPolicy": "Always",
                              "terminationMessagePolicy": "File", "readinessProbe": {"exec": {"command": ["true"]}}}],
     "spec.initContainers[0].readinessProbe", FORBIDDEN, None),
    ("spec.initContainers", [{"name": "init", "image": "busybox", "imagePullPolicy": "Always",
                              "terminationMessagePolicy": "File", "restartPolicy": "Never"}],
     "spec.initContainers[0].restartPolicy", NOT_SUPPORTED, None),
    # volumes and mounts
    ("spec.volumes[1]", {"name": "cache", "emptyDir": {}}, "spec.volumes[1].name", DUPLICATE, 'Duplicate value: "cache"'),
    ("spec.volumes[0].name", "Cache", "spec.volumes[0].name", INVALID, None),
    ("spec.volumes[0]", {"name": "cache"}, "spec.volumes[0]", REQUIRED, "Required value: must specify a volume type"),
    ("spec.volumes[0].hostPath", {"path": "/tmp"}, "spec.volumes[0].emptyDir", FORBIDDEN,
     "Forbidden: may not specify more than 1 volume type"),
    ("spec.volumes[0]", {"name": "cache", "hostPath": {}}, "spec.volumes[0].hostPath.path", REQUIRED, None),
    ("spec.volumes[0]", {"name": "cache", "secret": {}}, "spec.volumes[0].secret.secretName", REQUIRED, None),
    ("spec.volumes[0]", {"name": "cache", "configMap": {"name": "c", "defaultMode": 0o1000}},
     "spec.volumes[0].configMap.defaultMode", INVALID, None),
    ("spec.volumes[0].emptyDir", {"sizeLimit": "lots"}, "spec.volumes[0].emptyDir.sizeLimit", INVALID, None),
    ("spec.volumes[0].emptyDir", {"medium": "Disk"}, "spec.volumes[0].emptyDir.medium", NOT_SUPPORTED, None),
    (f"{C0}.volumeMounts[0].name", "data", f"{C0}.volumeMounts[0].name", NOT_FOUND, 'Not found: "data"'),
    (f"{C0}.volumeMounts[0].mountPath", "", f"{C0}.volumeMounts[0].mountPath", REQUIRED, None),
    (f"{C0}.volumeMounts[1]", {"name": "cache", "mountPath": "/var/cache/nginx"}, f"{C0}.volumeMounts[1].mountPath",
     INVALID, None),
    # scheduling constraints
    ("spec.nodeSelector", {"bad key": "linux"}, "spec.nodeSelector", INVALID, None),
    ("spec.nodeSelector", {"kubernetes.io/os": "linux os"}, "spec.nodeSelector", INVALID, None),
    ("spec.tolerations", [{"key": "k", "operator": "In", "value": "v"}], "spec.tolerations[0].operator", NOT_SUPPORTED,
     'Unsupported value: "In": supported values: "Equal", "Exists"'),
    ("spec.tolerations", [{"key": "k", "operator": "Exists", "value": "v"}], "spec.tolerations[0].operator", INVALID,
     None),
    ("spec.tolerations", [{"key": "k", "effect": "Sometimes"}], "spec.tolerations[0].effect", NOT_SUPPORTED,
     'Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ("spec.tolerations", [{"operator": "Equal", "value": "v"}], "spec.tolerations[0].operator", INVALID, None),
    ("spec.tolerations", [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}],
     "spec.tolerations[0].effect", INVALID, None),
    ("spec.tolerations", [{"key": "bad key", "operator": "Exists"}], "spec.tolerations[0].key", INVALID, None),
    ("spec.tolerations", [{"key": "k", "value": "bad value"}], "spec.tolerations[0].operator", INVALID, None),
    ("spec.tolerations", {"key": "k"}, "spec.tolerations", TYPE_INVALID, None),
    # host networking
    ("spec.hostNetwork", True, f"{C0}.ports[0].containerPort", INVALID,
     "Invalid value: 80: must match `hostPort` when `hostNetwork` is true"),
    # status written by the kubelet
    ("status.podIP", "10.244.1.300", "status.podIP", INVALID, None),
    ("status.podIPs", [{"ip": "nope"}], "status.podIPs[0].ip", INVALID, None),
    ("status", "Running", "status", TYPE_INVALID, None),
]


@pytest.mark.parametrize("path, value, field, reason, message", POD_CASES,
                         ids=[f"{c[0]}={str(c[1])[:24]}" for c in POD_CASES])
def test_pod_rules(path, value, field, reason, message):
    assert_cause(validate("Pod", mutate(good_pod(), path, value)), field, reason, message)


def test_duplicate_host_ports():
    p = good_pod()
    p["spec"]["containers"][0]["ports"][0]["hostPort"] = 8080
    p["spec"]["containers"][0]["ports"][1]["hostPort"] = 8080
    p["spec"]["containers"][0]["ports"][1]["protocol"] = "TCP"
    assert_cause(validate("Pod", p), f"{C0}.ports[1].hostPort", DUPLICATE, 'Duplicate value: "/TCP/8080"')
    p["spec"]["containers"][0]["ports"][1]["protocol"] = "UDP"  # same port, other protocol: fine
    assert_clean("Pod", p)


@pytest.mark.parametrize("path, value", [
    (f"{C0}.ports[0].hostPort", 0),
    (f"{C0}.ports[0].hostPort", 8080),
    (f"{C0}.ports[0].protocol", "UDP"),
    (f"{C0}.ports[0].protocol", "SCTP"),
    (f"{C0}.ports", []),
    (f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "metadata.labels['app.kubernetes.io/name']"),
    (f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "metadata.annotations['Example.com/X']"),
    (f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "spec.nodeName"),
    (f"{C0}.env[0]", {"name": "EMPTY"}),
    (f"{C0}.env[0]", {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}),
    (f"{C0}.env[0]", {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}}),
    (f"{C0}.resources", {}),
    (f"{C0}.resources.requests", {"cpu": "0.5", "memory": "128Mi"}),  # equal to the limits
    (f"{C0}.resources.requests", {"cpu": 0.25, "memory": 67108864}),  # JSON numbers
    (f"{C0}.resources.limits", {"cpu": "1e3", "memory": "1Gi", "ephemeral-storage": "2G", "hugepages-2Mi": "0"}),
    (f"{C0}.resources", {"requests": {"example.com/gpu": "2"}, "limits": {"example.com/gpu": "2"}}),
    ("spec.restartPolicy", "OnFailure"),
    ("spec.restartPolicy", "Never"),
    ("spec.dnsPolicy", "ClusterFirstWithHostNet"),
    ("spec.dnsPolicy", "Default"),
    ("spec.dnsConfig", {"nameservers": ["10.96.0.10"], "searches": ["svc.cluster.local", "example.com."],
                        "options": [{"name": "ndots", "value": "5"}]}),
    ("spec.terminationGracePeriodSeconds", 0),
    ("spec.activeDeadlineSeconds", 600),
    ("spec.hostname", "web-0"),
    ("spec.subdomain", "web"),
    ("spec.nodeName", "node-1"),
    ("spec.nodeSelector", {"kubernetes.io/os": "linux", "disk": ""}),
    ("spec.tolerations", [{"operator": "Exists"}]),  # tolerate everything
    ("spec.tolerations", [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                           "tolerationSeconds": 300}]),
    ("spec.tolerations", [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    ("spec.affinity", {"nodeAffinity": {}}),
    (f"{C0}.readinessProbe", {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "timeoutSeconds": 1,
                              "successThreshold": 3, "failureThreshold": 1}),
    (f"{C0}.livenessProbe", {"grpc": {"port": 9000}, "periodSeconds": 10, "timeoutSeconds": 1,
                             "successThreshold": 1, "failureThreshold": 3}),
    (f"{C0}.lifecycle", {"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}}),
    ("spec.initContainers", [{"name": "sidecar", "image": "envoy", "imagePullPolicy": "Always",
                              "terminationMessagePolicy": "File", "restartPolicy": "Always",
                              "readinessProbe": {"tcpSocket": {"port": 9901}, "periodSeconds": 10,
                                                 "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}}]),
    ("spec.volumes[1]", {"name": "cfg", "configMap": {"name": "nginx-conf", "defaultMode": 0o644}}),
    ("spec.volumes[1]", {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}),
    ("status", {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}], "hostIP": "100.64.0.2"}),
    ("metadata.name", "web-0.example"),  # pod names are subdomains
])
def test_valid_pod_variants(path, value):
    assert_clean("Pod", apply_defaults("Pod", mutate(good_pod(), path, value)))


def test_host_network_pod_with_defaulted_host_ports_is_valid():
    p = copy.deepcopy(NGINX_POD)
    p["spec"]["hostNetwork"] = True
    p["spec"]["dnsPolicy"] = "ClusterFirstWithHostNet"
    assert_clean("Pod", apply_defaults("Pod", p))


def test_kubectl_run_pod_validates_clean():
    body = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "nginx", "namespace": "default",
            "creationTimestamp": None, "labels": {"run": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}],
                     "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}, "status": {}}
    assert_clean("Pod", apply_defaults("Pod", body))


def test_many_errors_are_all_reported():
    p = good_pod()
    p["metadata"]["name"] = "Bad_Name"
    p["spec"]["restartPolicy"] = "Sometimes"
    p["spec"]["containers"][0]["image"] = ""
    p["spec"]["containers"][0]["ports"][0]["containerPort"] = 0
    assert set(fields(validate("Pod", p))) == {
        ("metadata.name", INVALID), ("spec.restartPolicy", NOT_SUPPORTED),
        (f"{C0}.image", REQUIRED), (f"{C0}.ports[0].containerPort", REQUIRED),
    }


# ------------------------------------------------------------------ services
def good_service(**spec) -> dict:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "https", "port": 443}]}}
    svc["spec"].update(spec)
    return apply_defaults("Service", svc)


SVC_CASES = [
    ("metadata.name", "1web", "metadata.name", INVALID, None),  # DNS-1035: must start with a letter
    ("metadata.name", "web.api", "metadata.name", INVALID, None),
    ("spec.type", "Bogus", "spec.type", NOT_SUPPORTED,
     'Unsupported value: "Bogus": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ("spec.type", "", "spec.type", REQUIRED, None),
    ("spec.ports", DELETE, "spec.ports", REQUIRED, "Required value"),
    ("spec.ports", [], "spec.ports", REQUIRED, None),
    ("spec.ports", "80", "spec.ports", TYPE_INVALID,
     'Invalid value: "string": spec.ports in body must be of type array: "string"'),
    ("spec.ports[0].port", 0, "spec.ports[0].port", INVALID, f"Invalid value: 0: {PORT_RANGE_MSG}"),
    ("spec.ports[0].port", 65536, "spec.ports[0].port", INVALID, None),
    ("spec.ports[0].port", DELETE, "spec.ports[0].port", INVALID, None),
    ("spec.ports[0].port", "80", "spec.ports[0].port", TYPE_INVALID, None),
    ("spec.ports[0].protocol", "ICMP", "spec.ports[0].protocol", NOT_SUPPORTED,
     'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ("spec.ports[1].name", DELETE, "spec.ports[1].name", REQUIRED, "Required value"),
    ("spec.ports[1].name", "http", "spec.ports[1].name", DUPLICATE, 'Duplicate value: "http"'),
    ("spec.ports[0].name", "HTTP", "spec.ports[0].name", INVALID, None),
    ("spec.ports[1].port", 80, "spec.ports[1]", DUPLICATE, 'Duplicate value: {"port":80,"protocol":"TCP"}'),
    ("spec.ports[0].targetPort", 0, "spec.ports[0].targetPort", INVALID, None),
    ("spec.ports[0].targetPort", 70000, "spec.ports[0].targetPort", INVALID, f"Invalid value: 70000: {PORT_RANGE_MSG}"),
    ("spec.ports[0].targetPort", "http_x", "spec.ports[0].targetPort", INVALID, None),
    ("spec.ports[0].targetPort", "a-very-long-port-name", "spec.ports[0].targetPort", INVALID, None),
    ("spec.ports[0].targetPort", True, "spec.ports[0].targetPort", TYPE_INVALID, None),
    ("spec.ports[0].appProtocol", "bad proto", "spec.ports[0].appProtocol", INVALID, None),
    ("spec.ports[0].nodePort", 30080, "spec.ports[0].nodePort", FORBIDDEN,
     "Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("spec.clusterIP", "abc", "spec.clusterIP", INVALID,
     'Invalid value: "abc": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
    ("spec.clusterIP", "10.96.0.300", "spec.clusterIP", INVALID, None),
    ("spec.clusterIP", "fd00::10", "spec.clusterIP", INVALID, None),
    ("spec.clusterIPs", ["nope"], "spec.clusterIPs[0]", INVALID, None),
    ("spec.sessionAffinity", "Sticky", "spec.sessionAffinity", NOT_SUPPORTED,
     'Unsupported value: "Sticky": supported values: "ClientIP", "None"'),
    ("spec.sessionAffinity", DELETE, "spec.sessionAffinity", REQUIRED, None),
    ("spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 60}}, "spec.sessionAffinityConfig", FORBIDDEN,
     "Forbidden: must not be set when session affinity is None"),
    ("spec.selector", {"bad key": "x"}, "spec.selector", INVALID, None),
    ("spec.selector", {"app": "bad value"}, "spec.selector", INVALID, None),
    ("spec.externalTrafficPolicy", "Cluster", "spec.externalTrafficPolicy", INVALID,
     'Invalid value: "Cluster": may only be set for externally-accessible services'),
    ("spec.internalTrafficPolicy", "Nearby", "spec.internalTrafficPolicy", NOT_SUPPORTED, None),
    ("spec.internalTrafficPolicy", DELETE, "spec.internalTrafficPolicy", REQUIRED, None),
    ("spec.ipFamilies", ["IPv6"], "spec.ipFamilies[0]", INVALID, None),
    ("spec.ipFamilies", ["IPv5"], "spec.ipFamilies[0]", NOT_SUPPORTED, None),
    ("spec.ipFamilyPolicy", "RequireDualStack", "spec.ipFamilyPolicy", INVALID, None),
    ("spec.ipFamilyPolicy", "Whatever", "spec.ipFamilyPolicy", NOT_SUPPORTED, None),
    ("spec.externalIPs", ["1.2.3"], "spec.externalIPs[0]", INVALID, None),
]


@pytest.mark.parametrize("path, value, field, reason, message", SVC_CASES,
                         ids=[f"{c[0]}={str(c[1])[:20]}" for c in SVC_CASES])
def test_service_rules(path, value, field, reason, message):
    assert_cause(validate("Service", mutate(good_service(), path, value)), field, reason, message)


@pytest.mark.parametrize("spec, field, reason, message", [
    ({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.11"]}, "spec.clusterIPs", INVALID,
     'Invalid value: []string{"10.96.0.11"}: first value must match `clusterIP`'),
    ({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"]}, "spec.clusterIPs", INVALID, None),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 20000}]}, "spec.ports[0].nodePort", INVALID,
     "Invalid value: 20000: provided port is not in the valid range. The range of valid ports is 30000-32767"),
    ({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080},
                                    {"name": "b", "port": 81, "nodePort": 30080}]},
     "spec.ports[1].nodePort", DUPLICATE, "Duplicate value: 30080"),
    ({"type": "NodePort", "externalTrafficPolicy": "Nearby"}, "spec.externalTrafficPolicy", NOT_SUPPORTED,
     'Unsupported value: "Nearby": supported values: "Cluster", "Local"'),
    ({"type": "NodePort", "clusterIP": "None"}, "spec.clusterIP", INVALID, None),
    ({"type": "LoadBalancer", "ports": [{"port": 10250}]}, "spec.ports[0]", INVALID,
     "Invalid value: 10250: may not expose port 10250 externally since it is used by kubelet"),
    ({"type": "ExternalName", "ports": []}, "spec.externalName", REQUIRED, "Required value"),
    ({"type": "ExternalName", "externalName": "Bad_Host"}, "spec.externalName", INVALID, None),
    ({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.96.0.20"}, "spec.clusterIP",
     FORBIDDEN, "Forbidden: may not be set for ExternalName services"),
    ({"type": "ExternalName", "externalName": "db.example.com", "ports": [{"port": 5432, "nodePort": 30001}]},
     "spec.ports[0].nodePort", FORBIDDEN, None),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", INVALID,
     "Invalid value: 0: must be greater than 0 and less than 86400"),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", INVALID, None),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": "1h"}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", TYPE_INVALID, None),
])
def test_service_type_dependent_rules(spec, field, reason, message):
    assert_cause(validate("Service", good_service(**spec)), field, reason, message)


def test_client_ip_affinity_requires_config_without_defaults():
    svc = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"sessionAffinity": "ClientIP", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
                    "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}}
    assert_cause(validate("Service", svc), "spec.sessionAffinityConfig", REQUIRED,
                 "Required value: when session affinity type is ClientIP")
    svc["spec"]["sessionAffinityConfig"] = {}
    assert_cause(validate("Service", svc), "spec.sessionAffinityConfig.clientIP", REQUIRED)
    svc["spec"]["sessionAffinityConfig"] = {"clientIP": {}}
    assert_cause(validate("Service", svc), "spec.sessionAffinityConfig.clientIP.timeoutSeconds", REQUIRED)


@pytest.mark.parametrize("spec", [
    {},
    {"clusterIP": ""},
    {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]},
    {"clusterIP": "None"},  # headless
    {"clusterIP": "None", "ports": []},  # headless services need no ports
    {"ports": [{"port": 53, "protocol": "UDP"}]},  # one port needs no name
    {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]},
    {"ports": [{"port": 80, "targetPort": "metrics"}]},
    {"ports": [{"port": 80, "targetPort": 8080, "appProtocol": "kubernetes.io/h2c"}]},
    {"type": "NodePort"},
    {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}, ]},
    {"type": "NodePort", "ports": [{"port": 80, "nodePort": 32767}], "externalTrafficPolicy": "Local"},
    {"type": "LoadBalancer"},
    {"type": "ExternalName", "externalName": "db.example.com", "ports": []},
    {"type": "ExternalName", "externalName": "db.example.com.", "ports": [{"port": 5432}]},
    {"sessionAffinity": "ClientIP"},
    {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}},
    {"selector": None},  # no selector: endpoints managed by hand
    {"externalIPs": ["192.0.2.10"]},
    {"clusterIPs": ["10.96.0.11"]},  # defaulting copies it into clusterIP
])
def test_valid_services(spec):
    assert_clean("Service", good_service(**spec))


def test_default_kubernetes_service_is_valid():
    svc = {"metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver"}},
           "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                    "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}}
    assert_clean("Service", apply_defaults("Service", svc))


# ------------------------------------------------------------------ endpoints
def good_endpoints() -> dict:
    ep = {"metadata": {"name": "web", "namespace": "default"},
          "subsets": [{"addresses": [{"ip": "10.244.1.5", "nodeName": "node-1",
                                      "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"}}],
                       "notReadyAddresses": [{"ip": "10.244.2.7"}],
                       "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]}
    return apply_defaults("Endpoints", ep)


ENDPOINTS_CASES = [
    ("subsets[0].addresses[0].ip", "not-an-ip", "subsets[0].addresses[0].ip", INVALID,
     'Invalid value: "not-an-ip": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
    ("subsets[0].addresses[0].ip", DELETE, "subsets[0].addresses[0].ip", REQUIRED, None),
    ("subsets[0].notReadyAddresses[0].ip", "10.0.0", "subsets[0].notReadyAddresses[0].ip", INVALID, None),
    ("subsets[0].addresses[0].hostname", "Web_0", "subsets[0].addresses[0].hostname", INVALID, None),
    ("subsets[0].addresses[0].nodeName", "Node_1", "subsets[0].addresses[0].nodeName", INVALID, None),
    ("subsets[0]", {"ports": [{"port": 80, "protocol": "TCP"}]}, "subsets[0]", REQUIRED,
     "Required value: must specify `addresses` or `notReadyAddresses`"),
    ("subsets[0].ports[0].port", 0, "subsets[0].ports[0].port", INVALID, f"Invalid value: 0: {PORT_RANGE_MSG}"),
    ("subsets[0].ports[0].port", 65536, "subsets[0].ports[0].port", INVALID, None),
    ("subsets[0].ports[0].protocol", "ICMP", "subsets[0].ports[0].protocol", NOT_SUPPORTED, None),
    ("subsets[0].ports[1].name", DELETE, "subsets[0].ports[1].name", REQUIRED, None),
    ("subsets[0].ports[0].name", "Web", "subsets[0].ports[0].name", INVALID, None),
    ("subsets", {"addresses": []}, "subsets", TYPE_INVALID, None),
]


@pytest.mark.parametrize("path, value, field, reason, message", ENDPOINTS_CASES,
                         ids=[f"{c[0]}={str(c[1])[:20]}" for c in ENDPOINTS_CASES])
def test_endpoints_rules(path, value, field, reason, message):
    assert_cause(validate("Endpoints", mutate(good_endpoints(), path, value)), field, reason, message)


@pytest.mark.parametrize("path, value", [
    ("subsets", []),  # a service with no ready pods
    ("subsets[0].addresses[0].ip", "127.0.0.1"),  # the API server's own endpoints
    ("subsets[0].addresses[0].ip", "fd00::5"),
    ("subsets[0].ports", []),  # headless services may have no ports
    ("subsets[0].ports", [{"port": 53, "protocol": "UDP"}]),
])
def test_valid_endpoints(path, value):
    assert_clean("Endpoints", apply_defaults("Endpoints", mutate(good_endpoints(), path, value)))


# ------------------------------------------------------------------ nodes
def good_node() -> dict:
    return apply_defaults("Node", {
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                 "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "2", "memory": "4032Mi", "pods": "110"},
                   "allocatable": {"cpu": "1900m", "memory": "3Gi", "pods": "110"},
                   "addresses": [{"type": "InternalIP", "address": "100.64.0.2"}]},
    })


NODE_CASES = [
    ("metadata.namespace", "default", "metadata.namespace", FORBIDDEN, None),
    ("metadata.name", "Node_1", "metadata.name", INVALID, None),
    ("spec.podCIDR", "10.244.1.0/33", "spec.podCIDR", INVALID,
     'Invalid value: "10.244.1.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'),
    ("spec.podCIDR", "10.244.1.0", "spec.podCIDR", INVALID, None),
    ("spec.podCIDRs", ["nope"], "spec.podCIDRs[0]", INVALID, None),
    ("spec.taints[0].effect", "Never", "spec.taints[0].effect", NOT_SUPPORTED,
     'Unsupported value: "Never": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ("spec.taints[0].effect", DELETE, "spec.taints[0].effect", REQUIRED, None),
    ("spec.taints[0].key", "bad key", "spec.taints[0].key", INVALID, None),
    ("spec.taints[0].key", DELETE, "spec.taints[0].key", INVALID, None),
    ("spec.taints[0].value", "bad value", "spec.taints[0].value", INVALID, None),
    ("spec.taints[1]", {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule", "value": "x"},
     "spec.taints[1]", DUPLICATE, None),
    ("spec.unschedulable", "true", "spec.unschedulable", TYPE_INVALID, None),
    ("status.capacity.cpu", "lots", "status.capacity[cpu]", INVALID, None),
    ("status.allocatable.memory", "-1Gi", "status.allocatable[memory]", INVALID, None),
]


@pytest.mark.parametrize("path, value, field, reason, message", NODE_CASES,
                         ids=[f"{c[0]}={str(c[1])[:20]}" for c in NODE_CASES])
def test_node_rules(path, value, field, reason, message):
    assert_cause(validate("Node", mutate(good_node(), path, value)), field, reason, message)


def test_valid_nodes():
    assert_clean("Node", good_node())
    assert_clean("Node", apply_defaults("Node", {"metadata": {"name": "node-2"}}))
    assert_clean("Node", mutate(good_node(), "spec.taints[1]", {"key": "node-role.kubernetes.io/control-plane",
                                                                 "effect": "NoExecute"}))


# ------------------------------------------------------------------ events
def good_event() -> dict:
    return apply_defaults("Event", {
        "metadata": {"name": "web-0.17a9c1f2b3", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default", "uid": "u1"},
        "reason": "Scheduled", "message": "Successfully assigned default/web-0 to node-1",
        "source": {"component": "default-scheduler"},
    })


EVENT_CASES = [
    ("involvedObject", DELETE, "involvedObject", REQUIRED, "Required value"),
    ("involvedObject", {}, "involvedObject", REQUIRED, None),
    ("involvedObject", "web-0", "involvedObject", TYPE_INVALID, None),
    ("involvedObject.namespace", "other", "involvedObject.namespace", INVALID,
     'Invalid value: "other": does not match event.namespace'),
    ("reason", "x" * 129, "reason", INVALID, 'Invalid value: "": can have at most 128 characters'),
    ("message", "x" * 1025, "message", INVALID, 'Invalid value: "": can have at most 1024 characters'),
    ("count", -1, "count", INVALID, None),
    ("metadata.name", "Bad_Event", "metadata.name", INVALID, None),
]


@pytest.mark.parametrize("path, value, field, reason, message", EVENT_CASES,
                         ids=[f"{c[0]}={str(c[1])[:20]}" for c in EVENT_CASES])
def test_event_rules(path, value, field, reason, message):
    assert_cause(validate("Event", mutate(good_event(), path, value)), field, reason, message)


def test_valid_events():
    assert_clean("Event", good_event())
    assert_clean("Event", mutate(good_event(), "reason", "x" * 128))
    node_event = mutate(good_event(), "involvedObject", {"kind": "Node", "name": "node-1"})
    assert_clean("Event", node_event)  # cluster-scoped objects' events live in "default"
    assert_cause(validate("Event", mutate(node_event, "metadata.namespace", "kube-public")),
                 "involvedObject.namespace", INVALID)


# ------------------------------------------------------------------ leases
@pytest.mark.parametrize("spec, field, reason", [
    ({"leaseDurationSeconds": 0}, "spec.leaseDurationSeconds", INVALID),
    ({"leaseDurationSeconds": -5}, "spec.leaseDurationSeconds", INVALID),
    ({"leaseDurationSeconds": "40"}, "spec.leaseDurationSeconds", TYPE_INVALID),
    ({"leaseTransitions": -1}, "spec.leaseTransitions", INVALID),
    ({"holderIdentity": 5}, "spec.holderIdentity", TYPE_INVALID),
])
def test_lease_rules(spec, field, reason):
    lease = {"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": spec}
    assert_cause(validate("Lease", lease), field, reason)


def test_lease_duration_message():
    lease = {"metadata": {"name": "n", "namespace": "kube-node-lease"}, "spec": {"leaseDurationSeconds": 0}}
    assert validate("Lease", lease) == [{"reason": INVALID, "field": "spec.leaseDurationSeconds",
                                         "message": "Invalid value: 0: must be greater than 0"}]


@pytest.mark.parametrize("spec", [
    {}, {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2024-05-01T10:00:00.000000Z"},
    {"holderIdentity": "sched-1", "leaseDurationSeconds": 15, "leaseTransitions": 0,
     "acquireTime": "2024-05-01T10:00:00.000000Z"},
])
def test_valid_leases(spec):
    assert_clean("Lease", {"metadata": {"name": "kube-scheduler", "namespace": "kube-system"}, "spec": spec})


# ------------------------------------------------------------------ ingresses
def good_ingress() -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
            "rules": [{"host": "shop.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/api", "pathType": "Exact", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
            ]}}],
        },
    }


R0 = "spec.rules[0]"
P0 = f"{R0}.http.paths[0]"

INGRESS_CASES = [
    (f"{R0}.host", "Shop.example.com", f"{R0}.host", INVALID, f'Invalid value: "Shop.example.com": {SUBDOMAIN_MSG}'),
    (f"{R0}.host", "*.*.example.com", f"{R0}.host", INVALID, None),
    (f"{R0}.host", "10.0.0.1", f"{R0}.host", INVALID, 'Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
    (f"{R0}.host", "shop.example.com:8080", f"{R0}.host", INVALID, None),
    (f"{P0}.pathType", "Regex", f"{P0}.pathType", NOT_SUPPORTED,
     'Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"'),
    (f"{P0}.pathType", DELETE, f"{P0}.pathType", REQUIRED, "Required value: pathType must be specified"),
    (f"{P0}.path", "api", f"{P0}.path", INVALID, 'Invalid value: "api": must be an absolute path'),
    (f"{P0}.path", "", f"{P0}.path", INVALID, None),
    (f"{P0}.path", "/a//b", f"{P0}.path", INVALID, "Invalid value: \"/a//b\": must not contain '//'"),
    (f"{P0}.path", "/a/..", f"{P0}.path", INVALID, "Invalid value: \"/a/..\": cannot end with '/..'"),
    (f"{P0}.backend.service.name", DELETE, f"{P0}.backend.service.name", REQUIRED, None),
    (f"{P0}.backend.service.name", "Web", f"{P0}.backend.service.name", INVALID, None),
    (f"{P0}.backend.service.port", {}, f"{P0}.backend", REQUIRED, "Required value: port name or number is required"),
    (f"{P0}.backend.service.port", {"number": 70000}, f"{P0}.backend.service.port.number", INVALID, None),
    (f"{P0}.backend.service.port", {"name": "HTTP"}, f"{P0}.backend.service.port.name", INVALID, None),
    (f"{P0}.backend.service.port", {"name": "http", "number": 80}, f"{P0}.backend", INVALID,
     'Invalid value: "": cannot set both port name & port number'),
    (f"{P0}.backend", {}, f"{P0}.backend", INVALID, 'Invalid value: "": resource or service backend is required'),
    (f"{P0}.backend.resource", {"kind": "Bucket", "name": "b"}, f"{P0}.backend", INVALID, None),
    (f"{R0}.http.paths", [], f"{R0}.http.paths", REQUIRED, None),
    ("spec.rules", [], "spec", INVALID, None),
    ("spec.tls[0].hosts[0]", "Bad_Host", "spec.tls[0].hosts[0]", INVALID, None),
    ("spec.tls[0].secretName", "Bad_Secret", "spec.tls[0].secretName", INVALID, None),
    ("spec.ingressClassName", "Nginx", "spec.ingressClassName", INVALID, None),
    ("spec.defaultBackend", {"service": {"name": "web"}}, "spec.defaultBackend", REQUIRED, None),
]


@pytest.mark.parametrize("path, value, field, reason, message", INGRESS_CASES,
                         ids=[f"{c[0]}={str(c[1])[:20]}" for c in INGRESS_CASES])
def test_ingress_rules(path, value, field, reason, message):
    assert_cause(validate("Ingress", mutate(good_ingress(), path, value)), field, reason, message)


@pytest.mark.parametrize("path, value", [
    (f"{R0}.host", "*.example.com"),
    (f"{R0}.host", DELETE),  # all hosts
    (f"{P0}.pathType", "ImplementationSpecific"),
    (f"{P0}", {"pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"number": 80}}}}),
    (f"{P0}.backend", {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "static"}}),
    ("spec.rules", [{"host": "a.example.com"}]),  # a rule without http
    ("spec", {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
    ("spec.tls[0].hosts", ["*.example.com"]),
])
def test_valid_ingresses(path, value):
    assert_clean("Ingress", mutate(good_ingress(), path, value))


def test_realistic_ingress_is_valid():
    assert_clean("Ingress", good_ingress())


# ------------------------------------------------------------------ namespaces, bindings
@pytest.mark.parametrize("ns, field, reason, message", [
    ({"metadata": {"name": "Team_A"}}, "metadata.name", INVALID, None),
    ({"metadata": {"name": "team.a"}}, "metadata.name", INVALID, 'Invalid value: "team.a": must not contain dots'),
    ({"metadata": {"name": "a" * 64}}, "metadata.name", INVALID, None),
    ({"metadata": {"name": "x", "namespace": "x"}}, "metadata.namespace", FORBIDDEN, None),
    ({"metadata": {"name": "x"}, "spec": {"finalizers": ["custom"]}}, "spec.finalizers", INVALID,
     'Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified'),
    ({"metadata": {"name": "x"}, "spec": {"finalizers": ["bad/finalizer/x"]}}, "spec.finalizers", INVALID, None),
])
def test_namespace_rules(ns, field, reason, message):
    assert_cause(validate("Namespace", apply_defaults("Namespace", ns)), field, reason, message)


def test_valid_namespaces():
    for name in ("default", "kube-system", "kube-node-lease", "team-a", "a"):
        assert_clean("Namespace", apply_defaults("Namespace", {"metadata": {"name": name}}))
    assert_clean("Namespace", {"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes", "example.com/x"]}})


@pytest.mark.parametrize("binding, field, reason, message", [
    ({"target": {"kind": "Node"}}, "target.name", REQUIRED, "Required value"),
    ({}, "target.name", REQUIRED, None),
    ({"target": {"kind": "Pod", "name": "x"}}, "target.kind", NOT_SUPPORTED,
     'Unsupported value: "Pod": supported values: "Node", "<empty>"'),
    ({"target": "node-1"}, "target", TYPE_INVALID, None),
])
def test_binding_rules(binding, field, reason, message):
    obj = {"metadata": {"name": "web-0", "namespace": "default"}, **binding}
    assert_cause(validate("Binding", obj), field, reason, message)


def test_valid_binding():
    assert_clean("Binding", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web-0", "namespace": "default"},
                             "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}})
    assert_clean("Binding", {"metadata": {"name": "web-0", "namespace": "default"}, "target": {"name": "node-1"}})


# ------------------------------------------------------------------ updates
def stored_pod() -> dict:
    p = good_pod()
    p["metadata"].update(uid="5b6f-1", creationTimestamp="2024-05-01T10:00:00Z", resourceVersion="7")
    p["spec"]["nodeName"] = "node-1"
    p["spec"]["tolerations"] = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 300}]
    p["spec"]["activeDeadlineSeconds"] = 600
    return p


POD_SPEC_FORBIDDEN = "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"


@pytest.mark.parametrize("path, value", [
    (f"{C0}.image", "nginx:1.26"),
    ("spec.activeDeadlineSeconds", 300),  # may only decrease
    ("spec.activeDeadlineSeconds", 600),
    ("spec.tolerations[1]", {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}),
    ("spec.tolerations[0].tolerationSeconds", 60),
    ("spec.terminationGracePeriodSeconds", 5),
    ("metadata.labels", {"app": "web", "x": "1"}),
    ("metadata.annotations", {"note": "hi"}),
    ("metadata.finalizers", ["example.com/protect"]),
    ("status", {"phase": "Running", "podIP": "10.244.1.5"}),
    ("spec.nodeSelector", {}),  # "" / {} / missing are the same to Go
])
def test_allowed_pod_updates(path, value):
    old = stored_pod()
    assert validate_update("Pod", mutate(old, path, value), old) == []


def test_init_container_image_may_change():
    old = stored_pod()
    old["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                                      "terminationMessagePolicy": "File", "terminationMessagePath": "/dev/termination-log",
                                      "resources": {}}]
    assert validate_update("Pod", mutate(old, "spec.initContainers[0].image", "busybox:1.37"), old) == []


@pytest.mark.parametrize("path, value, field, reason, message", [
    ("spec.restartPolicy", "Never", "spec", FORBIDDEN, None),
    (f"{C0}.ports[0].containerPort", 8080, "spec", FORBIDDEN, None),
    (f"{C0}.resources.limits.cpu", "1", "spec", FORBIDDEN, None),
    (f"{C0}.env", [], "spec", FORBIDDEN, None),
    ("spec.nodeName", "node-2", "spec", FORBIDDEN, None),
    ("spec.nodeSelector", {"disk": "ssd"}, "spec", FORBIDDEN, None),
    ("spec.containers[1]", {"name": "side", "image": "busybox", "imagePullPolicy": "Always",
                            "terminationMessagePolicy": "File"},
     "spec.containers", FORBIDDEN, "Forbidden: pod updates may not add or remove containers"),
    ("spec.activeDeadlineSeconds", 900, "spec.activeDeadlineSeconds", INVALID,
     "Invalid value: 900: must be less than or equal to previous value"),
    ("spec.activeDeadlineSeconds", DELETE, "spec.activeDeadlineSeconds", INVALID,
     "Invalid value: null: must not update from a positive integer to nil value"),
    ("spec.tolerations", [], "spec.tolerations", FORBIDDEN,
     "Forbidden: existing toleration can not be modified except its tolerationSeconds"),
    ("spec.tolerations[0].effect", "NoSchedule", "spec.tolerations", FORBIDDEN, None),
    ("metadata.name", "other", "metadata.name", INVALID, 'Invalid value: "other": field is immutable'),
    ("metadata.namespace", "kube-system", "metadata.namespace", INVALID, None),
    ("metadata.uid", "other-uid", "metadata.uid", INVALID, None),
    ("metadata.creationTimestamp", "2025-01-01T00:00:00Z", "metadata.creationTimestamp", INVALID, None),
    (f"{C0}.image", "", f"{C0}.image", REQUIRED, None),  # the new object is validated too
])
def test_forbidden_pod_updates(path, value, field, reason, message):
    old = stored_pod()
    assert_cause(validate_update("Pod", mutate(old, path, value), old), field, reason, message)


def test_pod_update_message_names_the_change():
    old = stored_pod()
    causes = validate_update("Pod", mutate(old, "spec.restartPolicy", "Never"), old)
    assert [c["field"] for c in causes] == ["spec"]
    msg = causes[0]["message"]
    assert msg.startswith(POD_SPEC_FORBIDDEN)
    assert "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds`" in msg
    assert 'spec.restartPolicy: "Always" -> "Never"' in msg


def test_no_new_finalizers_while_deleting():
    old = mutate(stored_pod(), "metadata.finalizers", ["example.com/a"])
    old["metadata"]["deletionTimestamp"] = "2024-05-01T11:00:00Z"
    new = mutate(old, "metadata.finalizers", ["example.com/a", "example.com/b"])
    assert_cause(validate_update("Pod", new, old), "metadata.finalizers", FORBIDDEN,
                 'Forbidden: no new finalizers can be added if the object is being deleted, '
                 'found new finalizers []string{"example.com/b"}')
    assert validate_update("Pod", mutate(old, "metadata.finalizers", []), old) == []


def stored_service(**spec) -> dict:
    svc = good_service(**spec)
    svc["metadata"].update(uid="u-svc", creationTimestamp="2024-05-01T10:00:00Z")
    if svc["spec"]["type"] != "ExternalName" and "clusterIP" not in svc["spec"]:
        svc["spec"]["clusterIP"] = "10.96.0.20"
        svc["spec"]["clusterIPs"] = ["10.96.0.20"]
    return svc


@pytest.mark.parametrize("path, value", [
    ("spec.selector", {"app": "web2"}),
    ("spec.ports[0].port", 8080),
    ("spec.clusterIP", DELETE),  # "keep what is allocated"
    ("spec.clusterIP", ""),
    ("spec.clusterIPs", DELETE),
    ("spec.type", "NodePort"),
])
def test_allowed_service_updates(path, value):
    old = stored_service()
    new = apply_defaults("Service", mutate(old, path, value))
    assert validate_update("Service", new, old) == []


def test_service_cluster_ip_is_immutable():
    old = stored_service()
    new = mutate(mutate(old, "spec.clusterIP", "10.96.0.99"), "spec.clusterIPs", ["10.96.0.99"])
    causes = validate_update("Service", new, old)
    assert_cause(causes, "spec.clusterIP", INVALID, 'Invalid value: "10.96.0.99": field is immutable')
    assert_cause(causes, "spec.clusterIPs[0]", INVALID, 'Invalid value: []string{"10.96.0.99"}: may not change once set')
    causes = validate_update("Service", mutate(old, "spec.clusterIPs", ["10.96.0.99"]), old)
    assert_cause(causes, "spec.clusterIPs[0]", INVALID)
    headless = stored_service(clusterIP="None", clusterIPs=["None"])
    assert_cause(validate_update("Service", mutate(headless, "spec.clusterIP", "10.96.0.30"), headless),
                 "spec.clusterIP", INVALID)


def test_service_type_change_to_and_from_external_name():
    old = stored_service()
    new = copy.deepcopy(old)
    new["spec"].update(type="ExternalName", externalName="db.example.com")
    assert validate_update("Service", new, old) == []  # unchanged clusterIP is dropped by the registry
    new["spec"]["clusterIP"] = "10.96.0.50"
    assert_cause(validate_update("Service", new, old), "spec.clusterIP", FORBIDDEN)

    ext = stored_service(type="ExternalName", externalName="db.example.com", ports=[])
    back = apply_defaults("Service", mutate(mutate(ext, "spec.type", "ClusterIP"), "spec.ports", [{"port": 5432}]))
    back["spec"]["clusterIP"] = "10.96.0.21"
    assert validate_update("Service", back, ext) == []


def test_service_type_change_from_node_port_tolerates_leftovers():
    old = stored_service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    new = mutate(old, "spec.type", "ClusterIP")  # nodePort and externalTrafficPolicy still in the body
    assert validate_update("Service", new, old) == []
    assert_cause(validate_update("Service", mutate(new, "spec.ports[0].nodePort", 30081), old),
                 "spec.ports[0].nodePort", FORBIDDEN)


def test_node_pod_cidr_immutable_once_set():
    unset = good_node()
    del unset["spec"]["podCIDR"], unset["spec"]["podCIDRs"]
    assert validate_update("Node", good_node(), unset) == []  # "" -> valid is how IPAM assigns it
    old = good_node()
    assert validate_update("Node", mutate(old, "spec.unschedulable", True), old) == []
    causes = validate_update("Node", mutate(old, "spec.podCIDR", "10.244.2.0/24"), old)
    assert_cause(causes, "spec.podCIDR", FORBIDDEN,
                 'Forbidden: node updates may not change podCIDR except from "" to valid')
    assert_cause(validate_update("Node", mutate(old, "spec.podCIDR", DELETE), old), "spec.podCIDR", FORBIDDEN)
    assert_cause(validate_update("Node", mutate(old, "spec.podCIDRs", ["10.244.9.0/24"]), old), "spec.podCIDRs", FORBIDDEN)


def test_namespace_name_immutable():
    old = apply_defaults("Namespace", {"metadata": {"name": "team-a", "uid": "u"}})
    assert validate_update("Namespace", mutate(old, "metadata.labels", {"team": "a"}), old) == []
    assert_cause(validate_update("Namespace", mutate(old, "metadata.name", "team-b"), old), "metadata.name", INVALID)


def test_update_of_other_kinds_checks_meta_and_new_object():
    old = {"metadata": {"name": "n1", "namespace": "kube-node-lease", "uid": "u"}, "spec": {"leaseDurationSeconds": 40}}
    assert validate_update("Lease", mutate(old, "spec.renewTime", "2024-05-01T10:00:00.000000Z"), old) == []
    assert_cause(validate_update("Lease", mutate(old, "spec.leaseDurationSeconds", 0), old),
                 "spec.leaseDurationSeconds", INVALID)
    assert_cause(validate_update("Lease", mutate(old, "metadata.uid", "v"), old), "metadata.uid", INVALID)


# ------------------------------------------------------------------ robustness
BASES = {"Pod": NGINX_POD, "Service": good_service(), "Endpoints": good_endpoints(), "Node": good_node(),
         "Event": good_event(), "Ingress": good_ingress(),
         "Lease": {"metadata": {"name": "l", "namespace": "x"}, "spec": {"leaseDurationSeconds": 4}},
         "Namespace": {"metadata": {"name": "ns"}}, "Binding": {"metadata": {"name": "b"}, "target": {"name": "n"}}}


def _paths(obj, prefix=()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
              st.text(max_size=12), st.sampled_from(["", "None", "Exists", "1Gi", "-1", "*.x", "10.0.0.1", "a/b/c"])),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)),
    max_leaves=15,
)


@st.composite
def mutated_objects(draw):
    kind = draw(st.sampled_from(sorted(BASES)))
    obj = copy.deepcopy(BASES[kind])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(obj)
        path = draw(st.sampled_from(paths))
        obj = mutate(obj, path, draw(json_values))
    return kind, obj


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_objects())
def test_validation_never_raises(kind_obj):
    kind, obj = kind_obj
    for candidate in (obj, apply_defaults(kind, copy.deepcopy(obj))):
        causes = validate(kind, candidate)
        causes += validate_update(kind, candidate, BASES[kind])
        causes += validate_update(kind, BASES[kind], candidate)
        for c in causes:
            assert set(c) == {"reason", "message", "field"}
            assert c["reason"].startswith("FieldValue") and isinstance(c["message"], str) and c["message"]
        json.dumps(causes)


@settings(max_examples=100)
@given(json_values)
def test_any_json_document_validates_without_raising(doc):
    for kind in BASES:
        validate(kind, doc)
        validate(kind, {"metadata": {"name": "x", "namespace": "y"}, "spec": doc, "subsets": doc, "target": doc})
