"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.patch import PatchError, json_patch, merge_patch, strategic_merge_patch

# --------------------------------------------------------------------------
# RFC 7386 merge patch: the RFC's appendix A, plus non-mutation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, patch, expected",
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        (None, {"a": 1}, {"a": 1}),
    ],
)
def test_merge_patch_rfc7386_examples(target, patch, expected):
    assert merge_patch(target, patch) == expected


def test_merge_patch_does_not_mutate_or_alias_inputs():
    target = {"a": {"b": [1, 2]}, "keep": {"x": [1]}}
    patch = {"a": {"c": {"d": [3]}}, "new": {"y": [2]}}
    before_t, before_p = copy.deepcopy(target), copy.deepcopy(patch)
    result = merge_patch(target, patch)
    assert result == {"a": {"b": [1, 2], "c": {"d": [3]}}, "keep": {"x": [1]}, "new": {"y": [2]}}
    result["keep"]["x"].append(9)
    result["a"]["c"]["d"].append(9)
    result["new"]["y"].append(9)
    assert target == before_t and patch == before_p


# --------------------------------------------------------------------------
# RFC 6902 JSON patch: the RFC's appendix A, plus errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc, ops, expected",
    [
        # A.1 - A.16 of RFC 6902
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
        ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
        (
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        ),
        (
            {"foo": ["all", "grass", "cows", "eat"]},
            [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
            {"foo": ["all", "cows", "eat", "grass"]},
        ),
        (
            {"baz": "qux", "foo": ["a", 2, "c"]},
            [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
            {"baz": "qux", "foo": ["a", 2, "c"]},
        ),
        ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}], {"foo": "bar", "child": {"grandchild": {}}}),
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
        # beyond the appendix
        ({"a/b": 1}, [{"op": "replace", "path": "/a~1b", "value": 2}], {"a/b": 2}),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/2", "value": 3}], {"a": [1, 2, 3]}),
        ({"a": [1, 2]}, [{"op": "replace", "path": "/a/0", "value": 9}], {"a": [9, 2]}),
        ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
        ({"a": 1}, [{"op": "add", "path": "", "value": [1]}], [1]),
        ({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
        ({"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
        ({"a": None}, [{"op": "test", "path": "/a", "value": None}], {"a": None}),
        ({"a": 1}, [{"op": "add", "path": "/b", "value": None}], {"a": 1, "b": None}),
        ({"a": 1.0}, [{"op": "test", "path": "/a", "value": 1}], {"a": 1.0}),
        ({"metadata": {"labels": {"x": "1"}}}, [{"op": "remove", "path": "/metadata/labels/x"}], {"metadata": {"labels": {}}}),
        ([], [], []),
    ],
)
def test_json_patch(doc, ops, expected):
    assert json_patch(doc, ops) == expected


@pytest.mark.parametrize(
    "doc, ops, message",
    [
        ({}, {"op": "add", "path": "/a", "value": 1}, "must be a list"),
        ({}, ["add"], "must be an object"),
        ({}, [{"op": "frobnicate", "path": "/a"}], "unknown op"),
        ({}, [{"path": "/a", "value": 1}], "unknown op"),
        ({}, [{"op": "add", "value": 1}], "missing 'path'"),
        ({}, [{"op": "add", "path": "/a"}], "missing 'value'"),
        ({}, [{"op": "replace", "path": "/a"}], "missing 'value'"),
        ({}, [{"op": "test", "path": "/a"}], "missing 'value'"),
        ({}, [{"op": "move", "path": "/a"}], "missing 'from'"),
        ({}, [{"op": "copy", "path": "/a"}], "missing 'from'"),
        ({}, [{"op": "add", "path": "a", "value": 1}], "must start with '/'"),
        ({}, [{"op": "add", "path": 5, "value": 1}], "must be a string"),
        ({}, [{"op": "add", "path": "/a~2", "value": 1}], "invalid '~' escape"),
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "does not exist"),  # RFC A.12
        ({}, [{"op": "remove", "path": "/a"}], "does not exist"),
        ({"a": [1]}, [{"op": "remove", "path": "/a/1"}], "out of range"),
        ({"a": [1]}, [{"op": "remove", "path": "/a/-"}], "not a valid array index"),
        ({"a": [1]}, [{"op": "add", "path": "/a/01", "value": 0}], "not a valid array index"),
        ({"a": [1]}, [{"op": "add", "path": "/a/2", "value": 0}], "out of range"),
        ({}, [{"op": "replace", "path": "/a", "value": 1}], "does not exist"),
        ({"a": "x"}, [{"op": "add", "path": "/a/b", "value": 1}], "does not exist"),
        ({}, [{"op": "remove", "path": ""}], "whole document"),
        ({}, [{"op": "move", "from": "/x", "path": "/y"}], "does not exist"),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], "own child"),
        ({}, [{"op": "copy", "from": "/x", "path": "/y"}], "does not exist"),
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "test failed"),  # RFC A.9
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], "test failed"),  # RFC A.15
        ({"a": 1}, [{"op": "test", "path": "/a", "value": True}], "test failed"),
        ({"a": [1]}, [{"op": "test", "path": "/a", "value": [1, 2]}], "test failed"),
    ],
)
def test_json_patch_errors(doc, ops, message):
    with pytest.raises(PatchError, match=message):
        json_patch(doc, ops)


def test_json_patch_is_atomic_and_does_not_mutate():
    doc = {"a": [1, 2], "b": {"c": 1}}
    before = copy.deepcopy(doc)
    value = {"deep": [1]}
    ops = [{"op": "add", "path": "/a/-", "value": value}, {"op": "remove", "path": "/b/c"}, {"op": "remove", "path": "/zzz"}]
    with pytest.raises(PatchError, match="operation 2"):
        json_patch(doc, ops)
    assert doc == before
    result = json_patch(doc, ops[:2])
    result["a"][2]["deep"].append(2)
    assert value == {"deep": [1]} and doc == before


# --------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "ap1",
        "namespace": "default",
        "labels": {"app": "ap"},
        "finalizers": ["a", "b"],
        "ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs1"}],
    },
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "nginx:1.25",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "name": "http"}],
                "volumeMounts": [{"mountPath": "/data", "name": "data"}],
                "volumeDevices": [{"devicePath": "/dev/x", "name": "blk"}],
            },
            {"name": "side", "image": "busybox", "command": ["sleep", "1d"]},
        ],
        "initContainers": [{"name": "init", "image": "busybox"}],
        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "imagePullSecrets": [{"name": "reg"}],
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "nodeSelector": {"disk": "ssd"},
    },
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "main", "ready": True}, {"name": "side", "ready": True}],
    },
}


def _get(obj, path):
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def _no_directives(value):
    if isinstance(value, dict):
        return all(not k.startswith("$") and _no_directives(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_no_directives(v) for v in value)
    return True


def test_kubectl_client_side_apply_patch_from_compat_doc():
    """The exact body kubectl sends on `apply` of a changed pod (docs/reference/KUBECTL_COMPAT.md section 6)."""
    original = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "ap1",
            "namespace": "default",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{old}"},
        },
        "spec": {
            "containers": [{"image": "nginx:1.25", "name": "main"}, {"image": "busybox", "name": "side"}],
        },
    }
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "…"}, "labels": {"tier": "api"}},
        "spec": {
            "$setElementOrder/containers": [{"name": "main"}, {"name": "side"}],
            "containers": [{"image": "nginx:1.26", "name": "main"}],
        },
    }
    before = copy.deepcopy(original), copy.deepcopy(patch)
    result = strategic_merge_patch(original, patch, "Pod")
    assert result["spec"]["containers"] == [{"image": "nginx:1.26", "name": "main"}, {"image": "busybox", "name": "side"}]
    assert result["metadata"]["labels"] == {"tier": "api"}
    assert result["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "…"}
    assert result["metadata"]["name"] == "ap1"
    assert _no_directives(result)
    assert (original, patch) == before


@pytest.mark.parametrize(
    "kind, patch, path, expected",
    [
        # maps merge recursively; null deletes; a null for an absent key adds nothing
        ("Pod", {"metadata": {"labels": {"x": "1"}}}, "metadata.labels", {"app": "ap", "x": "1"}),
        ("Pod", {"metadata": {"labels": {"app": None}}}, "metadata.labels", {}),
        ("Pod", {"metadata": {"labels": {"nope": None}}}, "metadata.labels", {"app": "ap"}),
        ("Pod", {"spec": {"nodeSelector": None}}, "spec", {k: v for k, v in POD["spec"].items() if k != "nodeSelector"}),
        ("Pod", {"spec": {"new": {"a": None, "b": 1}}}, "spec.new", {"b": 1}),
        # lists without a strategy are replaced
        ("Pod", {"spec": {"tolerations": [{"key": "z", "operator": "Exists"}]}}, "spec.tolerations", [{"key": "z", "operator": "Exists"}]),
        ("Pod", {"spec": {"containers": [{"name": "side", "command": ["true"]}]}}, "spec.containers.1.command", ["true"]),
        # containers merge by name: existing merged, new appended
        ("Pod", {"spec": {"containers": [{"name": "side", "image": "alpine"}]}}, "spec.containers.1", {"name": "side", "image": "alpine", "command": ["sleep", "1d"]}),
        ("Pod", {"spec": {"containers": [{"name": "third", "image": "x"}]}}, "spec.containers.2", {"name": "third", "image": "x"}),
        ("Pod", {"spec": {"initContainers": [{"name": "init", "image": "i2"}, {"name": "i2", "image": "y"}]}}, "spec.initContainers", [{"name": "init", "image": "i2"}, {"name": "i2", "image": "y"}]),
        ("Pod", {"spec": {"ephemeralContainers": [{"name": "debug", "tty": True}]}}, "spec.ephemeralContainers", [{"name": "debug", "image": "busybox", "tty": True}]),
        # inside a container: env by name, ports by containerPort, mounts by mountPath, devices by devicePath
        ("Pod", {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}, "spec.containers.0.env", [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]),
        ("Pod", {"spec": {"containers": [{"name": "main", "env": [{"name": "A", "value": None, "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}]}}, "spec.containers.0.env.0", {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}),
        ("Pod", {"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]}}, "spec.containers.0.ports", [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}]),
        ("Pod", {"spec": {"containers": [{"name": "main", "volumeMounts": [{"mountPath": "/data", "readOnly": True}, {"mountPath": "/logs", "name": "logs"}]}]}}, "spec.containers.0.volumeMounts", [{"mountPath": "/data", "name": "data", "readOnly": True}, {"mountPath": "/logs", "name": "logs"}]),
        ("Pod", {"spec": {"containers": [{"name": "main", "volumeDevices": [{"devicePath": "/dev/x", "name": "blk2"}]}]}}, "spec.containers.0.volumeDevices", [{"devicePath": "/dev/x", "name": "blk2"}]),
        # pod-level keyed lists
        ("Pod", {"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c"}}]}}, "spec.volumes", [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]),
        ("Pod", {"spec": {"imagePullSecrets": [{"name": "reg2"}]}}, "spec.imagePullSecrets", [{"name": "reg"}, {"name": "reg2"}]),
        ("Pod", {"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}, {"ip": "10.0.0.2", "hostnames": ["c"]}]}}, "spec.hostAliases", [{"ip": "10.0.0.1", "hostnames": ["b"]}, {"ip": "10.0.0.2", "hostnames": ["c"]}]),
        # status: conditions by type, container statuses replaced
        ("Pod", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, "status.conditions", [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]),
        ("Pod", {"status": {"containerStatuses": [{"name": "main", "ready": False}]}}, "status.containerStatuses", [{"name": "main", "ready": False}]),
        # every kind: ownerReferences by uid, finalizers as an ordered union
        ("Pod", {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}, {"uid": "u2", "name": "x"}]}}, "metadata.ownerReferences", [{"uid": "u1", "kind": "ReplicaSet", "name": "rs1", "controller": True}, {"uid": "u2", "name": "x"}]),
        ("Pod", {"metadata": {"finalizers": ["c", "a"]}}, "metadata.finalizers", ["a", "b", "c"]),
        ("ConfigMap", {"metadata": {"finalizers": ["c", "a"]}}, "metadata.finalizers", ["a", "b", "c"]),
        # $patch directives
        ("Pod", {"spec": {"nodeSelector": {"$patch": "replace", "zone": "z1"}}}, "spec.nodeSelector", {"zone": "z1"}),
        ("Pod", {"spec": {"nodeSelector": {"$patch": "merge", "zone": "z1"}}}, "spec.nodeSelector", {"disk": "ssd", "zone": "z1"}),
        ("Pod", {"spec": {"nodeSelector": {"$patch": "delete"}}}, "spec", {k: v for k, v in POD["spec"].items() if k != "nodeSelector"}),
        ("Pod", {"spec": {"containers": [{"name": "x", "image": "x"}, {"$patch": "replace"}]}}, "spec.containers", [{"name": "x", "image": "x"}]),
        ("Pod", {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}, "spec.containers.0.name", "main"),
        ("Pod", {"spec": {"volumes": [{"name": "data", "$patch": "delete"}]}}, "spec.volumes", []),
        ("Pod", {"spec": {"volumes": [{"name": "gone", "$patch": "delete"}]}}, "spec.volumes", [{"name": "data", "emptyDir": {}}]),
        ("Pod", {"spec": {"volumes": [{"name": "data", "$patch": "delete"}, {"name": "data", "hostPath": {"path": "/x"}}]}}, "spec.volumes", [{"name": "data", "hostPath": {"path": "/x"}}]),
        ("Pod", {"spec": {"volumes": [{"name": "data", "$patch": "merge", "x": 1}, {"$patch": "merge"}]}}, "spec.volumes", [{"name": "data", "emptyDir": {}, "x": 1}]),
        # $retainKeys keeps only the listed keys of that map
        ("Pod", {"spec": {"volumes": [{"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/h"}}]}}, "spec.volumes", [{"name": "data", "hostPath": {"path": "/h"}}]),
        ("Pod", {"metadata": {"$retainKeys": ["name"], "labels": {"z": "1"}}}, "metadata", {"name": "ap1", "labels": {"z": "1"}}),
        # $deleteFromPrimitiveList removes values from a primitive list
        ("Pod", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "metadata.finalizers", ["b"]),
        ("Pod", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "b"], "finalizers": ["c"]}}, "metadata.finalizers", ["c"]),
        ("Pod", {"metadata": {"$deleteFromPrimitiveList/missing": ["a"]}}, "metadata.finalizers", ["a", "b"]),
        # $setElementOrder: the patch's order, server-only elements keep their neighbours
        ("Pod", {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}]}}, "spec.containers.0.name", "side"),
        ("Pod", {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "new"}, {"name": "main"}], "containers": [{"name": "new", "image": "n"}]}}, "spec.containers", ["side", "new", "main"]),
        ("Pod", {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}, "metadata.finalizers", ["b", "c", "a"]),
        ("Pod", {"spec": {"containers": [{"name": "main", "$setElementOrder/env": [{"name": "B"}, {"name": "A"}]}]}}, "spec.containers.0.env", [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]),
        # unknown kinds: plain recursive merge, lists replaced
        ("ConfigMap", {"data": {"k": "v"}}, "data", {"k": "v"}),
        ("Widget", {"spec": {"containers": [{"name": "side", "image": "alpine"}]}}, "spec.containers", [{"name": "side", "image": "alpine"}]),
    ],
)
def test_strategic_merge_patch_pod(kind, patch, path, expected):
    before = copy.deepcopy(POD), copy.deepcopy(patch)
    result = strategic_merge_patch(POD, patch, kind)
    got = _get(result, path)
    if path == "spec.containers" and expected and isinstance(expected[0], str):
        got = [c["name"] for c in got]
    assert got == expected
    assert _no_directives(result)
    assert (POD, patch) == before


@pytest.mark.parametrize(
    "live, order, expected",
    [
        # "ctl" was added by someone else (server-only): it keeps its neighbours.
        (["a", "ctl", "b"], ["a", "b"], ["a", "ctl", "b"]),
        (["ctl", "a", "b", "tail"], ["a", "b"], ["ctl", "a", "b", "tail"]),
        # When the patch reorders around it, a server-only element goes before the
        # first patch element that came after it in the live list (apimachinery's
        # mergeSortedSlice), keeping the patch's own order intact.
        (["a", "ctl", "b", "tail"], ["b", "a"], ["ctl", "b", "a", "tail"]),
        (["a", "b", "ctl"], ["b", "a"], ["b", "a", "ctl"]),
    ],
)
def test_set_element_order_places_server_only_elements(live, order, expected):
    original = {"spec": {"containers": [{"name": n} for n in live]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": n} for n in order]}}
    result = strategic_merge_patch(original, patch, "Pod")
    assert [c["name"] for c in result["spec"]["containers"]] == expected


def test_set_element_order_on_absent_list_is_dropped():
    result = strategic_merge_patch({"spec": {}}, {"spec": {"$setElementOrder/containers": [{"name": "a"}]}}, "Pod")
    assert result == {"spec": {}}


def test_list_added_from_scratch_has_its_directives_resolved():
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]}]}}
    result = strategic_merge_patch({"spec": {}}, patch, "Pod")
    assert result == {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}}


@pytest.mark.parametrize(
    "kind, original, patch, expected",
    [
        (
            "Service",
            {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}},
            {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 53, "protocol": "UDP"}]}},
            {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}, {"port": 53, "protocol": "UDP"}]}},
        ),
        (
            "Node",
            {"status": {
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}],
                "images": [{"names": ["a"]}, {"names": ["b"]}],
            }},
            {"status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletDown"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.3"}],
                "images": [{"names": ["c"]}],
            }},
            {"status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletDown"}, {"type": "MemoryPressure", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.3"}, {"type": "Hostname", "address": "n1"}],
                "images": [{"names": ["c"]}],
            }},
        ),
        (
            "Node",
            {"spec": {"podCIDRs": ["10.244.1.0/24"]}},
            {"spec": {"podCIDRs": ["fd00::/64"]}},
            {"spec": {"podCIDRs": ["10.244.1.0/24", "fd00::/64"]}},
        ),
        (
            "Endpoints",
            {"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]},
            {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]},
            {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]},
        ),
        (
            "Ingress",
            {"spec": {"rules": [{"host": "a"}], "tls": [{"hosts": ["a"]}]}},
            {"spec": {"rules": [{"host": "b"}]}},
            {"spec": {"rules": [{"host": "b"}], "tls": [{"hosts": ["a"]}]}},
        ),
    ],
)
def test_strategic_merge_patch_other_kinds(kind, original, patch, expected):
    assert strategic_merge_patch(original, patch, kind) == expected


WORKLOAD = {
    "metadata": {"name": "w"},
    "spec": {
        "replicas": 1,
        "template": {
            "metadata": {"labels": {"app": "w"}},
            "spec": {
                "containers": [{"name": "main", "image": "v1", "env": [{"name": "A", "value": "1"}]}, {"name": "side", "image": "s"}],
                "volumes": [{"name": "v"}],
            },
        },
    },
    "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]},
}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"])
def test_workloads_reuse_the_pod_spec_table(kind):
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "main"}, {"name": "side"}],
                    "containers": [{"name": "main", "image": "v2", "env": [{"name": "B", "value": "2"}]}],
                    "volumes": [{"name": "w"}],
                }
            }
        },
        "status": {"conditions": [{"type": "Progressing", "status": "False"}]},
    }
    result = strategic_merge_patch(WORKLOAD, patch, kind)
    pod_spec = result["spec"]["template"]["spec"]
    assert pod_spec["containers"] == [
        {"name": "main", "image": "v2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "side", "image": "s"},
    ]
    assert pod_spec["volumes"] == [{"name": "v"}, {"name": "w"}]
    assert result["status"]["conditions"] == [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}]
    assert result["spec"]["replicas"] == 1


def test_top_level_replace_and_delete():
    assert strategic_merge_patch(POD, {"$patch": "replace", "kind": "Pod"}, "Pod") == {"kind": "Pod"}
    assert strategic_merge_patch(POD, {"$patch": "delete"}, "Pod") == {}
    assert strategic_merge_patch(None, {"a": 1}, "Pod") == {"a": 1}


def test_replace_directive_resolves_nested_directives():
    patch = {"spec": {"$patch": "replace", "containers": [{"name": "a", "$patch": "merge"}], "x": None}}
    assert strategic_merge_patch(POD, patch, "Pod")["spec"] == {"containers": [{"name": "a"}]}


def test_strategic_merge_patch_does_not_alias_inputs():
    patch = {"spec": {"containers": [{"name": "new", "args": ["a"]}]}, "metadata": {"labels": {"l": "1"}}}
    result = strategic_merge_patch(POD, patch, "Pod")
    result["spec"]["containers"][2]["args"].append("b")
    result["spec"]["containers"][0]["env"].append({"name": "Z"})
    result["metadata"]["finalizers"].append("z")
    assert patch["spec"]["containers"][0]["args"] == ["a"]
    assert len(POD["spec"]["containers"][0]["env"]) == 2
    assert POD["metadata"]["finalizers"] == ["a", "b"]


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"spec": {"nodeSelector": {"$patch": "explode"}}}, "unknown \\$patch directive"),
        ({"spec": {"containers": [{"name": "a", "$patch": "explode"}]}}, "unknown \\$patch directive"),
        ({"spec": {"containers": [{"$patch": "delete"}]}}, "needs the merge key"),
        ({"spec": {"tolerations": [{"key": "k", "$patch": "delete"}]}}, "needs the merge key"),
        ({"spec": {"containers": [{"image": "x"}]}}, "lacks the merge key 'name'"),
        ({"spec": {"containers": ["main"]}}, "mixes objects and primitives"),
        ({"metadata": {"finalizers": [{"a": 1}]}}, "mixes objects and primitives"),
        ({"spec": {"$setElementOrder/containers": {"name": "a"}}}, "must be a list"),
        ({"spec": {"$setElementOrder/containers": ["main"]}}, "lacks the merge key"),
        ({"spec": {"$deleteFromPrimitiveList/x": "a"}}, "must be a list"),
        ({"spec": {"$retainKeys": "containers"}}, "list of strings"),
        ({"spec": {"$frobnicate": 1}}, "unknown directive"),
    ],
)
def test_strategic_merge_patch_errors(patch, message):
    with pytest.raises(PatchError, match=message):
        strategic_merge_patch(POD, patch, "Pod")


@pytest.mark.parametrize("original, patch", [([], {}), ({}, []), ({}, "x")])
def test_strategic_merge_patch_needs_objects(original, patch):
    with pytest.raises(PatchError, match="must be a JSON object"):
        strategic_merge_patch(original, patch, "Pod")


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

_key = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(alphabet="xyz", max_size=3))
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_key, inner, max_size=3)),
    max_leaves=12,
)
_object = st.dictionaries(_key, _json, max_size=4)
# No nulls inside lists: strategic merge drops them from objects in a list
# (as Kubernetes does), JSON merge keeps them.
_plain = st.recursive(
    st.one_of(st.booleans(), st.integers(-5, 5), st.text(alphabet="xyz", max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_key, inner, max_size=3)),
    max_leaves=12,
)
_patch_tree = st.recursive(
    _plain,
    lambda inner: st.dictionaries(_key, st.one_of(st.none(), inner), max_size=3),
    max_leaves=12,
)


@given(_json)
def test_empty_merge_patch_is_identity(doc):
    assert merge_patch(doc, {}) == (doc if isinstance(doc, dict) else {})


@given(_object, _object)
def test_merge_patch_is_idempotent(doc, patch):
    once = merge_patch(doc, patch)
    assert merge_patch(once, patch) == once


@given(_object, _key, _json)
def test_json_patch_add_then_remove_round_trips(doc, key, value):
    doc = {k: v for k, v in doc.items() if k != key}
    added = json_patch(doc, [{"op": "add", "path": f"/{key}", "value": value}])
    assert added[key] == value
    assert json_patch(added, [{"op": "remove", "path": f"/{key}"}]) == doc
    both = [{"op": "add", "path": f"/{key}", "value": value}, {"op": "test", "path": f"/{key}", "value": value},
            {"op": "remove", "path": f"/{key}"}]
    assert json_patch(doc, both) == doc


@given(st.dictionaries(_key, _plain, max_size=4), st.dictionaries(_key, st.one_of(st.none(), _patch_tree), max_size=4))
def test_strategic_merge_of_unknown_kind_is_json_merge(doc, patch):
    assert strategic_merge_patch(doc, {}, "Widget") == doc
    assert strategic_merge_patch(doc, patch, "Widget") == merge_patch(doc, patch)
