"""The protobuf codec: every served kind round-trips to the JSON path's object; Go's JSON rules hold.

JSON object -> protobuf (encoded through the schema's own message classes,
the official descriptors kubectl 1.33 carries) -> decoded must equal the JSON
object. The fixtures avoid zero values in Go value fields on purpose: those
are what omitempty leaves out, checked on their own below.
"""
from __future__ import annotations

import copy

import pytest

import api.protobuf as pb
from api import resources as R
from api.protobuf import codec as C

T = "2026-12-07T10:00:00Z"

OBJECTS: dict[str, dict] = {
    "Namespace": {"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": "team-a", "labels": {"env": "prod"}, "annotations": {"owner": "me"}},
                  "spec": {"finalizers": ["kubernetes"]}},
    "Pod": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default", "generateName": "web-", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                                              "uid": "7a1c", "controller": True, "blockOwnerDeletion": True}],
                         "finalizers": ["example.com/x"], "creationTimestamp": T},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.25.3", "command": ["nginx"], "args": ["-g", "daemon off;"],
                                     "workingDir": "/srv",
                                     "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                                     "env": [{"name": "MODE", "value": "production"},
                                             {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                             {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw", "optional": False}}}],
                                     "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}},
                                     "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                                     "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5,
                                                       "failureThreshold": 3},
                                     "readinessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 2},
                                     "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},
                                     "securityContext": {"runAsUser": 1000, "runAsNonRoot": True, "readOnlyRootFilesystem": False,
                                                         "capabilities": {"drop": ["ALL"]}},
                                     "imagePullPolicy": "IfNotPresent"}],
                     "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]}],
                     "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                                 {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420,
                                                               "items": [{"key": "a", "path": "a.txt"}]}},
                                 {"name": "sec", "secret": {"secretName": "db"}}],
                     "restartPolicy": "Always", "terminationGracePeriodSeconds": 0, "dnsPolicy": "ClusterFirst",
                     "nodeSelector": {"kubernetes.io/os": "linux"}, "serviceAccountName": "default",
                     "automountServiceAccountToken": False, "hostNetwork": True, "enableServiceLinks": False,
                     "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 30}],
                     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                         "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}},
                     "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}],
                     "priority": 5, "schedulerName": "default-scheduler", "nodeName": "node-1"},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "hostIP": "192.168.0.2",
                       "startTime": T, "qosClass": "Burstable",
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": T}],
                       "containerStatuses": [{"name": "web", "ready": True, "restartCount": 2, "image": "nginx:1.25.3",
                                              "imageID": "sha256:abc", "containerID": "pk://1", "started": True,
                                              "state": {"running": {"startedAt": T}},
                                              "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                                           "startedAt": T, "finishedAt": T}}}]}},
    "Service": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                         "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
                                   {"name": "named", "protocol": "UDP", "port": 53, "targetPort": "dns"}],
                         "sessionAffinity": "ClientIP",
                         "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
                         "externalTrafficPolicy": "Local", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                         "publishNotReadyAddresses": True, "internalTrafficPolicy": "Cluster"},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ports": [{"port": 80, "protocol": "TCP"}]}]}}},
    "Endpoints": {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
                  "subsets": [{"addresses": [{"ip": "10.244.0.5", "nodeName": "node-1",
                                              "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default", "uid": "u1"}}],
                               "notReadyAddresses": [{"ip": "10.244.0.6"}],
                               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]},
    "Node": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
             "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "unschedulable": True,
                      "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": T}]},
             "status": {"capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"}, "allocatable": {"cpu": "2"},
                        "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": T, "lastTransitionTime": T,
                                        "reason": "KubeletReady", "message": "ok"}],
                        "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}],
                        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                        "nodeInfo": {"machineID": "m", "kubeletVersion": "v1.33.0", "operatingSystem": "linux",
                                     "architecture": "amd64", "systemUUID": "s", "bootID": "b", "kernelVersion": "6",
                                     "osImage": "Debian", "containerRuntimeVersion": "pk://1", "kubeProxyVersion": "v1.33.0"}}},
    "Event": {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-0.1", "namespace": "default"},
              "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "u1", "apiVersion": "v1",
                                 "fieldPath": "spec.containers{web}"},
              "reason": "Started", "message": "Started container web", "source": {"component": "kubelet", "host": "node-1"},
              "firstTimestamp": T, "lastTimestamp": T, "count": 3, "type": "Normal",
              "eventTime": "2026-12-07T10:00:00.123456Z", "reportingComponent": "kubelet", "reportingInstance": "node-1",
              "series": {"count": 4, "lastObservedTime": "2026-12-07T10:00:01.000001Z"}, "action": "Started"},
    "Lease": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
              "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2026-12-07T10:00:00.500000Z",
                       "acquireTime": "2026-12-07T09:00:00.000000Z", "leaseTransitions": 0}},
    "Ingress": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"ingressClassName": "pocketkube",
                         "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
                         "tls": [{"hosts": ["a.example"], "secretName": "tls"}],
                         "rules": [{"host": "a.example", "http": {"paths": [
                             {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]},
                "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}},
    "Binding": {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web-0", "namespace": "default", "uid": "u1"},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}},
    "ConfigMap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
                  "data": {"a": "1", "b.txt": "two\nlines"}, "binaryData": {"blob": "AAEC/w=="}, "immutable": True},
    "Secret": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
               "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
               "stringData": {"extra": "plain"}, "immutable": False},
}


def roundtrip(obj: dict) -> dict:
    body = pb.encode(obj)
    assert body.startswith(b"k8s\x00")
    out, warnings = pb.decode(body, want_unknown=True)
    assert warnings == []
    return out


@pytest.mark.parametrize("rt", R.ALL, ids=lambda r: r.kind)
def test_every_served_kind_has_a_protobuf_message_in_the_schema(rt):
    name = rt.strategy.protobuf
    assert name, f"{rt.kind}: its strategy names no protobuf message (api/kinds/, `protobuf = ...`)"
    assert pb.default_codec().schema.has(name), f"{rt.kind}: {name} is not in {pb.default_codec().schema.files[:1]}..."
    assert name.rsplit(".", 1)[-1] == rt.kind


@pytest.mark.parametrize("rt", R.ALL, ids=lambda r: r.kind)
def test_every_served_kind_round_trips_to_the_json_object(rt):
    assert rt.kind in OBJECTS, f"add a realistic {rt.kind} to OBJECTS"
    obj = OBJECTS[rt.kind]
    assert roundtrip(copy.deepcopy(obj)) == obj


def test_delete_options_round_trip():
    obj = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
           "preconditions": {"uid": "u1", "resourceVersion": "7"}, "dryRun": ["All"], "orphanDependents": False}
    assert roundtrip(copy.deepcopy(obj)) == obj


def test_value_fields_at_zero_are_left_out_pointer_fields_keep_their_zero():
    """Go marshals value fields always; JSON's omitempty drops their zero. Pointers keep an explicit zero."""
    c = pb.default_codec()
    m = c.schema.message_class("k8s.io.api.core.v1.Probe")()
    m.periodSeconds = 0                      # value field, explicitly on the wire with its zero
    m.terminationGracePeriodSeconds = 0      # *int64
    m.handler.httpGet.path = "/"
    m.handler.httpGet.port.type = 0
    m.handler.httpGet.port.intVal = 0        # IntOrString value field at zero
    assert m.HasField("periodSeconds")
    assert c.to_dict(m) == {"httpGet": {"path": "/"}, "terminationGracePeriodSeconds": 0}
    s = c.schema.message_class("k8s.io.api.core.v1.Secret")()
    s.type = ""
    s.immutable = False
    s.metadata.SetInParent()                 # an empty ObjectMeta, as Go writes it for a value struct
    assert c.to_dict(s) == {"metadata": {}, "immutable": False}   # an empty struct stays, as in Go JSON


def test_inline_embeds_and_renamed_fields_use_their_json_names():
    schema = pb.default_codec().schema
    fields = {f.name: f.json_name for f in schema.pool.FindMessageTypeByName("k8s.io.api.core.v1.Volume").fields}
    assert fields["volumeSource"] == ""                         # `json:",inline"`
    bor = {f.name: f.json_name for f in schema.pool.FindMessageTypeByName(
        "k8s.io.api.authentication.v1.BoundObjectReference").fields}
    assert bor["uID"] == "uid"
    obj = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}}
    assert roundtrip(copy.deepcopy(obj)) == obj


@pytest.mark.parametrize("ns, text", [(0, "0s"), (1, "1ns"), (1500, "1.5µs"), (1_500_000, "1.5ms"), (2 * 10**9, "2s"),
                                      (3_723_500_000_000, "1h2m3.5s"), (-90 * 10**9, "-1m30s"), (3600 * 10**9, "1h0m0s")])
def test_durations_print_and_parse_as_go_does(ns, text):
    assert C.go_duration(ns) == text
    assert C.parse_go_duration(text) == ns


def test_times_are_seconds_and_micro_times_are_microseconds():
    c = pb.default_codec()
    t = c.schema.message_class(C.TIME)()
    t.seconds, t.nanos = 1796637600, 999999999            # Time drops the fraction, as Go's Unmarshal does
    assert C._time(t) == "2026-12-07T10:00:00Z"
    mt = c.schema.message_class(C.MICROTIME)()
    mt.seconds, mt.nanos = 1796637600, 123456789
    assert C._microtime(mt) == "2026-12-07T10:00:00.123456Z"
    assert C._time(c.schema.message_class(C.TIME)()) is None   # Go's zero time: an empty message


def test_unknown_fields_are_dropped_and_named():
    c = pb.default_codec()
    api_version, kind, raw = c.unwrap(pb.encode(OBJECTS["ConfigMap"]))
    raw += b"\x98\x06\x05"                                     # field 99, varint 5
    obj, warnings = pb.decode(c.wrap(api_version, kind, raw), want_unknown=True)
    assert obj == OBJECTS["ConfigMap"]
    assert warnings == ["unknown field number 99 in ConfigMap (dropped)"]


def test_a_kind_without_a_schema_is_named():
    body = pb.default_codec().wrap("policy/v1", "Eviction", b"")
    with pytest.raises(pb.NoSchema, match=r"Eviction \(policy/v1\)"):
        pb.decode(body)


@pytest.mark.parametrize("body, match", [
    (b"", "magic"), (b"{}", "magic"), (b"k8s\x00\xff\xff", "envelope"),
    (b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x05\x0a\x03\x0a\x05x", "Namespace message does not parse"),
])
def test_malformed_bodies_are_codec_errors(body, match):
    with pytest.raises(pb.CodecError, match=match):
        pb.decode(body)


def test_truncations_of_a_real_body_never_raise_anything_but_codec_errors():
    body = pb.encode(OBJECTS["Pod"])
    for n in range(len(body)):
        try:
            obj, _ = pb.decode(body[:n])
        except pb.CodecError:
            continue
        assert isinstance(obj, dict)


def test_the_schema_file_is_what_the_extractor_makes_from_kubectl_1_33(tmp_path):
    """The committed schema is reproducible from the machine's kubectl 1.33 (api/protobuf/extract.py)."""
    from api.protobuf import extract, schema
    binary = extract.default_kubectl()
    assert binary, "kubectl.1.33 is on the machine image (beside the dispatching kubectl)"
    out = tmp_path / "k8s.binpb.gz"
    assert extract.main([binary, "--out", str(out)]) == 0
    assert out.read_bytes() == open(schema.SCHEMA_FILE, "rb").read()
