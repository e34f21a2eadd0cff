"""The pure parts of pkctl's write commands: the apply patch, run/expose objects, label changes."""
from __future__ import annotations

import argparse
import json

import pytest

from api.patch import merge_patch, strategic_merge_patch
from pkctl.apply import LAST_APPLIED, last_applied, with_last_applied
from pkctl.delete import _grace
from pkctl.describe import _smart_label, _qos
from pkctl.errors import CLIError
from pkctl.metadata import apply_changes, split_items
from pkctl.podio import exec_params, exit_code_from_status, log_params
from pkctl.threeway import three_way
from pkctl.workloads import build_pod, build_service

from client.errors import ApiError


def pod(containers, labels=None, **meta):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": labels or {}, **meta},
            "spec": {"containers": containers}}


# ------------------------------------------------------------------ three-way patch
def converge(original, modified, current, kind="Pod"):
    patch = three_way(original, modified, current, kind)
    result = strategic_merge_patch(current, patch, kind) if kind in ("Pod", "Service") else merge_patch(current, patch)
    return patch, result


def test_unchanged_manifest_gives_empty_patch():
    m = pod([{"name": "a", "image": "nginx"}], {"app": "web"})
    live = json.loads(json.dumps(m))
    live["metadata"].update(uid="u", resourceVersion="7")
    live["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"  # server default
    live["status"] = {"phase": "Pending"}
    assert three_way(m, m, live, "Pod") == {}


def test_change_one_container_image_sends_one_element():
    orig = pod([{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "busybox"}])
    mod = pod([{"name": "a", "image": "nginx:2"}, {"name": "b", "image": "busybox"}])
    cur = pod([{"name": "a", "image": "nginx:1", "imagePullPolicy": "Always"}, {"name": "b", "image": "busybox"}])
    patch, result = converge(orig, mod, cur)
    assert patch == {"spec": {"containers": [{"name": "a", "image": "nginx:2"}],
                              "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}}
    assert result["spec"]["containers"][0] == {"name": "a", "image": "nginx:2", "imagePullPolicy": "Always"}


def test_removed_fields_and_elements_are_deleted_but_others_kept():
    orig = pod([{"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "b", "image": "y"}], {"app": "web", "old": "1"})
    mod = pod([{"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]}], {"app": "web", "new": "2"})
    cur = pod([{"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"},
                                                   {"name": "C", "value": "ctl"}]},
               {"name": "b", "image": "y"}], {"app": "web", "old": "1", "controller": "yes"},
              finalizers=["x/y"])
    patch, result = converge(orig, mod, cur)
    assert patch["metadata"]["labels"] == {"new": "2", "old": None}
    assert result["metadata"]["labels"] == {"app": "web", "controller": "yes", "new": "2"}
    assert [c["name"] for c in result["spec"]["containers"]] == ["a"]
    assert [e["name"] for e in result["spec"]["containers"][0]["env"]] == ["A", "C"]  # C was never applied
    assert result["metadata"]["finalizers"] == ["x/y"]
    assert three_way(mod, mod, result, "Pod") == {}  # converged


def test_primitive_sets_and_unknown_kinds():
    orig = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
    mod = {"metadata": {"name": "x", "finalizers": ["a", "c"]}}
    cur = {"metadata": {"name": "x", "finalizers": ["a", "b", "server"]}}
    patch, result = converge(orig, mod, cur)
    assert patch["metadata"]["$deleteFromPrimitiveList/finalizers"] == ["b"]
    assert result["metadata"]["finalizers"] == ["a", "server", "c"] or \
        sorted(result["metadata"]["finalizers"]) == ["a", "c", "server"]
    # A kind without a merge schema gets a JSON merge patch: lists are replaced.
    orig = {"spec": {"items": [1, 2]}}
    mod = {"spec": {"items": [1, 3]}}
    cur = {"spec": {"items": [1, 2], "extra": True}}
    patch, result = converge(orig, mod, cur, kind="Widget")
    assert patch == {"spec": {"items": [1, 3]}}
    assert result == {"spec": {"items": [1, 3], "extra": True}}


def test_no_original_means_no_deletions():
    mod = pod([{"name": "a", "image": "x"}], {"app": "web"})
    cur = pod([{"name": "a", "image": "x"}], {"app": "web", "extra": "kept"})
    assert three_way(None, mod, cur, "Pod") == {}


def test_last_applied_annotation_is_the_manifest_without_itself():
    obj = pod([{"name": "a", "image": "x"}])
    value = last_applied(obj)
    assert value.endswith("\n")
    doc = json.loads(value)
    assert doc["metadata"]["annotations"] == {} and doc["spec"]["containers"][0]["image"] == "x"
    annotated = with_last_applied(obj)
    assert annotated["metadata"]["annotations"][LAST_APPLIED] == value
    assert last_applied(annotated) == value  # stable: recomputing ignores the old annotation


# ------------------------------------------------------------------ run / expose
def run_args(**kw):
    base = dict(name="web", image="nginx", port=None, labels="", annotations=[], env=[], restart="Always",
                image_pull_policy="", use_command=False, args_words=[], after_dashdash=[])
    base.update(kw)
    return argparse.Namespace(**base)


def test_build_pod():
    p = build_pod(run_args(port=80, env=["A=1", "B=x=y"], after_dashdash=["--flag", "v"]))
    c = p["spec"]["containers"][0]
    assert p["metadata"]["labels"] == {"run": "web"}
    assert c == {"name": "web", "image": "nginx", "resources": {}, "args": ["--flag", "v"],
                 "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"}]}
    p = build_pod(run_args(labels="app=x,tier=y", use_command=True, after_dashdash=["sleep", "1"], restart="Never"))
    assert p["metadata"]["labels"] == {"app": "x", "tier": "y"}
    assert p["spec"]["containers"][0]["command"] == ["sleep", "1"] and p["spec"]["restartPolicy"] == "Never"
    with pytest.raises(CLIError, match="image"):
        build_pod(run_args(image=""))
    with pytest.raises(CLIError, match="restart policy"):
        build_pod(run_args(restart="Sometimes"))


def expose_args(**kw):
    base = dict(name="", selector="", port=None, target_port=None, protocol="", labels="", type="", cluster_ip="")
    base.update(kw)
    return argparse.Namespace(**base)


def test_build_service_from_pod_service_and_deployment():
    p = pod([{"name": "a", "image": "x", "ports": [{"containerPort": 80}, {"containerPort": 443, "name": "tls"}]}],
            {"app": "web"})
    svc = build_service(expose_args(), "Pod", p)
    assert svc["spec"]["selector"] == {"app": "web"} and svc["metadata"] == {"name": "web", "labels": {"app": "web"}}
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80, "name": "port-1"},
                                    {"port": 443, "protocol": "TCP", "targetPort": 443, "name": "tls"}]
    svc = build_service(expose_args(port="8080", target_port="http", name="web2", type="NodePort"), "Pod", p)
    assert svc["spec"]["ports"] == [{"port": 8080, "protocol": "TCP", "targetPort": "http"}]
    assert svc["metadata"]["name"] == "web2" and svc["spec"]["type"] == "NodePort"
    existing = {"metadata": {"name": "s"}, "spec": {"selector": {"a": "b"},
                                                    "ports": [{"port": 80, "targetPort": 8080, "name": "h"}]}}
    svc = build_service(expose_args(name="s2"), "Service", existing)
    assert svc["spec"]["selector"] == {"a": "b"}
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 8080, "name": "h"}]
    dep = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 9000}]}]}}}}
    svc = build_service(expose_args(), "Deployment", dep)
    assert svc["spec"]["selector"] == {"app": "d"} and svc["spec"]["ports"][0]["port"] == 9000
    with pytest.raises(CLIError, match="has no labels"):
        build_service(expose_args(port="80"), "Pod", pod([{"name": "a", "image": "x"}]))
    with pytest.raises(CLIError, match="couldn't find port"):
        build_service(expose_args(), "Pod", pod([{"name": "a", "image": "x"}], {"app": "x"}))


# ------------------------------------------------------------------ label / annotate
def test_label_arguments_and_changes():
    assert split_items(["pods", "web", "app=x", "tier-"]) == (["pods", "web"], {"app": "x"}, ["tier"])
    assert split_items(["pod/web", "a=", "b-"]) == (["pod/web"], {"a": ""}, ["b"])
    with pytest.raises(CLIError):
        split_items(["pods", "a=1", "web"])
    with pytest.raises(CLIError, match="both modify and remove"):
        split_items(["pods", "web", "a=1", "a-"])
    assert apply_changes({"a": "1"}, {"b": "2"}, ["a"], False, "label") == {"b": "2"}
    assert apply_changes({"a": "1"}, {"a": "1"}, [], False, "label") == {"a": "1"}
    with pytest.raises(CLIError, match="'a' already has a value \\(1\\), and --overwrite is false"):
        apply_changes({"a": "1"}, {"a": "2"}, [], False, "label")
    assert apply_changes({"a": "1"}, {"a": "2"}, [], True, "label") == {"a": "2"}


# ------------------------------------------------------------------ delete, describe, logs/exec helpers
def test_grace_period_rules_follow_kubectl():
    def g(**kw):
        return _grace(argparse.Namespace(**{"grace_period": None, "now": False, "force": False, **kw}))
    assert g() is None
    assert g(now=True) == 1
    assert g(grace_period=0) == 1  # protected unless --force
    assert g(grace_period=0, force=True) == 0
    assert g(force=True) == 0
    assert g(grace_period=30) == 30


def test_describe_helpers():
    assert _smart_label("creationTimestamp") == "Creation Timestamp"
    assert _smart_label("podIPs") == "Pod IPs"
    assert _smart_label("apiVersion") == "API Version"
    assert _qos(pod([{"name": "a"}])) == "BestEffort"
    lim = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert _qos(pod([{"name": "a", "resources": lim}])) == "Guaranteed"
    assert _qos(pod([{"name": "a", "resources": {"requests": {"cpu": "1"}}}])) == "Burstable"


def test_log_and_exec_parameters():
    a = argparse.Namespace(follow=True, previous=False, tail=5, timestamps=True, since=90.0, limit_bytes=None)
    assert log_params(a, "c") == {"container": "c", "follow": True, "tailLines": 5, "timestamps": True,
                                  "sinceSeconds": 90}
    a = argparse.Namespace(follow=False, previous=True, tail=-1, timestamps=False, since=None, limit_bytes=10)
    assert log_params(a, "c") == {"container": "c", "previous": True, "limitBytes": 10}
    assert exec_params(["sh", "-c", "echo hi"], "web", stdin=True, tty=True) == [
        ("command", "sh"), ("command", "-c"), ("command", "echo hi"), ("container", "web"),
        ("stdout", "true"), ("stderr", "false"), ("stdin", "true"), ("tty", "true")]


def test_exec_exit_codes_from_status():
    assert exit_code_from_status(None) == 0
    assert exit_code_from_status({"metadata": {}, "status": "Success"}) == 0
    assert exit_code_from_status({"status": "Failure", "reason": "NonZeroExitCode",
                                  "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}) == 3
    with pytest.raises(ApiError) as e:
        exit_code_from_status({"status": "Failure", "reason": "InternalError", "code": 500,
                               "message": "container not found"})
    assert e.value.message == "container not found"
