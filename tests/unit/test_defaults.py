"""Server-side defaults: what Kubernetes fills in, idempotence, and robustness against wrong types."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.podspec import image_pull_policy, qos_class
from tests.unit.kindutil import apply_defaults


def pod(**spec) -> dict:
    base = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
    base["spec"].update(spec)
    return base


def container(**fields) -> dict:
    return {"name": "c", "image": "nginx:1.25", **fields}


def defaulted_pod(**spec) -> dict:
    return apply_defaults("Pod", pod(**spec))


# ------------------------------------------------------------------ pods
def test_pod_spec_defaults():
    p = defaulted_pod()
    spec = p["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert p["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_container_defaults():
    c = defaulted_pod(containers=[container(ports=[{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}])])["spec"]["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {}
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}]


def test_init_containers_get_container_defaults():
    p = defaulted_pod(initContainers=[{"name": "init", "image": "busybox"}])
    init = p["spec"]["initContainers"][0]
    assert init["imagePullPolicy"] == "Always"
    assert init["terminationMessagePolicy"] == "File"
    assert init["resources"] == {}


def test_existing_values_are_kept():
    p = pod(restartPolicy="Never", terminationGracePeriodSeconds=0, dnsPolicy="Default",
            schedulerName="mine", enableServiceLinks=False, priority=7, preemptionPolicy="Never",
            containers=[container(imagePullPolicy="Never", terminationMessagePath="/tmp/x",
                                  terminationMessagePolicy="FallbackToLogsOnError")])
    p["status"] = {"phase": "Running", "qosClass": "Burstable"}
    before = copy.deepcopy(p)
    apply_defaults("Pod", p)
    spec = p["spec"]
    assert (spec["restartPolicy"], spec["terminationGracePeriodSeconds"], spec["dnsPolicy"]) == ("Never", 0, "Default")
    assert (spec["schedulerName"], spec["enableServiceLinks"], spec["priority"]) == ("mine", False, 7)
    assert spec["preemptionPolicy"] == "Never"
    c = spec["containers"][0]
    assert (c["imagePullPolicy"], c["terminationMessagePath"]) == ("Never", "/tmp/x")
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert p["status"] == before["status"]


@pytest.mark.parametrize("image, policy", [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("library/nginx:1.25-alpine", "IfNotPresent"),
    ("localhost:5000/nginx", "Always"),  # a registry port is not a tag
    ("localhost:5000/nginx:latest", "Always"),
    ("localhost:5000/team/nginx:v2", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),  # a digest without a tag pins the image
    ("nginx:latest@sha256:" + "a" * 64, "Always"),
    ("registry.example.com/a/b/c:1.0", "IfNotPresent"),
])
def test_image_pull_policy(image, policy):
    assert image_pull_policy(image) == policy
    assert defaulted_pod(containers=[container(image=image)])["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_probe_defaults():
    c = defaulted_pod(containers=[container(
        livenessProbe={"httpGet": {"port": 80}},
        readinessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 5, "timeoutSeconds": 0},
        startupProbe={"exec": {"command": ["true"]}, "failureThreshold": 30},
    )])["spec"]["containers"][0]
    assert c["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    # 0 is Go's zero value for these ints, so it is defaulted too
    assert c["readinessProbe"]["periodSeconds"] == 5 and c["readinessProbe"]["timeoutSeconds"] == 1
    assert c["startupProbe"]["failureThreshold"] == 30 and c["startupProbe"]["periodSeconds"] == 10


def test_http_get_keeps_given_path_and_scheme():
    c = defaulted_pod(containers=[container(readinessProbe={"httpGet": {"port": 443, "path": "/healthz", "scheme": "HTTPS"}},
                                            lifecycle={"preStop": {"httpGet": {"port": 80}}})])["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"] == {"port": 443, "path": "/healthz", "scheme": "HTTPS"}
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}


def test_env_field_ref_api_version():
    env = [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}, {"name": "X", "value": "1"}]
    c = defaulted_pod(containers=[container(env=env)])["spec"]["containers"][0]
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "status.podIP", "apiVersion": "v1"}
    assert c["env"][1] == {"name": "X", "value": "1"}


def test_requests_default_to_limits():
    c = defaulted_pod(containers=[container(resources={"limits": {"cpu": "500m", "memory": "128Mi"},
                                                       "requests": {"cpu": "100m"}})])["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}


def test_volume_defaults():
    p = defaulted_pod(volumes=[{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "app"}},
                               {"name": "s", "secret": {"secretName": "tls", "defaultMode": 0o400}},
                               {"name": "h", "hostPath": {"path": "/var/log"}}])
    vols = {v["name"]: v for v in p["spec"]["volumes"]}
    assert vols["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert vols["cfg"]["configMap"] == {"name": "app", "defaultMode": 420}
    assert vols["s"]["secret"]["defaultMode"] == 0o400
    assert vols["h"]["hostPath"] == {"path": "/var/log", "type": ""}


def test_host_network_ports_default_host_port():
    p = defaulted_pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 8080}])])
    assert p["spec"]["containers"][0]["ports"][0]["hostPort"] == 8080
    p = defaulted_pod(containers=[container(ports=[{"containerPort": 8080}])])
    assert "hostPort" not in p["spec"]["containers"][0]["ports"][0]


@pytest.mark.parametrize("class_name, priority", [
    ("system-node-critical", 2000001000), ("system-cluster-critical", 2000000000), ("high", 0),
])
def test_priority_from_builtin_classes(class_name, priority):
    assert defaulted_pod(priorityClassName=class_name)["spec"]["priority"] == priority


def _res(requests=None, limits=None) -> dict:
    r = {}
    if requests is not None:
        r["requests"] = requests
    if limits is not None:
        r["limits"] = limits
    return r


GUARANTEED = _res({"cpu": "500m", "memory": "128Mi"}, {"cpu": "500m", "memory": "128Mi"})


@pytest.mark.parametrize("resources, init_resources, qos", [
    ([{}], None, "BestEffort"),
    ([{}, {}], None, "BestEffort"),
    ([_res({"ephemeral-storage": "1Gi"})], None, "BestEffort"),  # only cpu and memory count
    ([_res({"cpu": "0"})], None, "BestEffort"),  # zero does not count
    ([GUARANTEED], None, "Guaranteed"),
    ([GUARANTEED, GUARANTEED], None, "Guaranteed"),
    ([_res(None, {"cpu": "1", "memory": "1Gi"})], None, "Guaranteed"),  # requests defaulted from limits
    ([_res({"cpu": "0.5", "memory": "134217728"}, {"cpu": "500m", "memory": "128Mi"})], None, "Guaranteed"),
    ([_res({"cpu": "100m"})], None, "Burstable"),
    ([_res({"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m", "memory": "64Mi"})], None, "Burstable"),
    ([_res(None, {"cpu": "1"})], None, "Burstable"),  # memory limit missing
    ([GUARANTEED, {}], None, "Burstable"),
    ([GUARANTEED], [{}], "Burstable"),  # init containers count
    ([GUARANTEED], [GUARANTEED], "Guaranteed"),
    ([{}], [_res({"memory": "1Gi"})], "Burstable"),
    ([_res({"cpu": "garbage"})], None, "BestEffort"),  # unparsable quantities are validation's problem
])
def test_qos_class(resources, init_resources, qos):
    spec = {"containers": [container(name=f"c{i}", resources=r) for i, r in enumerate(resources)]}
    if init_resources is not None:
        spec["initContainers"] = [container(name=f"i{i}", resources=r) for i, r in enumerate(init_resources)]
    p = apply_defaults("Pod", pod(**spec))
    assert p["status"]["qosClass"] == qos
    assert qos_class(p) == qos


def test_qos_class_filled_when_status_exists_without_it():
    # The server sets status.phase before defaulting; qosClass still gets computed.
    p = pod(containers=[container(resources=GUARANTEED)])
    p["status"] = {"phase": "Pending"}
    assert apply_defaults("Pod", p)["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}


# ------------------------------------------------------------------ services, endpoints
def svc(**spec) -> dict:
    return {"metadata": {"name": "s", "namespace": "default"}, "spec": {"ports": [{"port": 80}], **spec}}


def test_service_defaults():
    s = apply_defaults("Service", svc(selector={"app": "web"}))
    assert s["spec"] == {
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"app": "web"},
        "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
    }


@pytest.mark.parametrize("port, target", [
    ({"port": 80}, 80), ({"port": 80, "targetPort": 0}, 80), ({"port": 80, "targetPort": ""}, 80),
    ({"port": 80, "targetPort": 8080}, 8080), ({"port": 80, "targetPort": "http"}, "http"),
])
def test_service_target_port(port, target):
    assert apply_defaults("Service", svc(ports=[port]))["spec"]["ports"][0]["targetPort"] == target


@pytest.mark.parametrize("svc_type", ["NodePort", "LoadBalancer"])
def test_external_services_get_external_traffic_policy(svc_type):
    spec = apply_defaults("Service", svc(type=svc_type))["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec.get("allocateLoadBalancerNodePorts") is (True if svc_type == "LoadBalancer" else None)


def test_cluster_ip_service_has_no_external_traffic_policy():
    assert "externalTrafficPolicy" not in apply_defaults("Service", svc())["spec"]


def test_external_name_service_gets_no_ip_fields():
    spec = apply_defaults("Service", svc(type="ExternalName", externalName="db.example.com", ports=[]))["spec"]
    for key in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy", "externalTrafficPolicy"):
        assert key not in spec


def test_client_ip_affinity_timeout():
    spec = apply_defaults("Service", svc(sessionAffinity="ClientIP"))["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    spec = apply_defaults("Service", svc(sessionAffinity="ClientIP",
                                         sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}
    assert "sessionAffinityConfig" not in apply_defaults("Service", svc())["spec"]


def test_endpoints_port_protocol():
    ep = {"metadata": {"name": "s"}, "subsets": [{"addresses": [{"ip": "10.244.1.5"}],
                                                  "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]}
    apply_defaults("Endpoints", ep)
    assert [p["protocol"] for p in ep["subsets"][0]["ports"]] == ["TCP", "UDP"]


# ------------------------------------------------------------------ other kinds
def test_namespace_defaults():
    ns = apply_defaults("Namespace", {"metadata": {"name": "team-a"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    ns = apply_defaults("Namespace", {"metadata": {"name": "x"}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}})
    assert ns["spec"]["finalizers"] == [] and ns["status"]["phase"] == "Terminating"


def test_node_defaults_only_ensure_dicts():
    assert apply_defaults("Node", {"metadata": {"name": "n1"}}) == {"metadata": {"name": "n1"}, "spec": {}, "status": {}}
    node = {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}, "status": {"capacity": {"cpu": "2"}}}
    assert apply_defaults("Node", copy.deepcopy(node)) == node


def test_event_defaults():
    ev = apply_defaults("Event", {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"}})
    assert ev["count"] == 1 and ev["type"] == "Normal"
    ev = apply_defaults("Event", {"metadata": {"name": "e"}, "count": 5, "type": "Warning"})
    assert ev["count"] == 5 and ev["type"] == "Warning"


@pytest.mark.parametrize("kind, obj", [
    ("Lease", {"metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "n1"}}),
    ("Ingress", {"metadata": {"name": "i"}, "spec": {"rules": [{"http": {"paths": [
        {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
    ("ConfigMap", {"metadata": {"name": "c"}, "data": {"a": "b"}}),
])
def test_kinds_without_defaults_are_unchanged(kind, obj):
    assert apply_defaults(kind, copy.deepcopy(obj)) == obj


def test_apply_defaults_returns_the_same_object():
    p = pod()
    assert apply_defaults("Pod", p) is p


# ------------------------------------------------------------------ robustness
@pytest.mark.parametrize("kind, obj", [
    ("Pod", {"spec": "nope"}),
    ("Pod", {"spec": {"containers": "nginx"}}),
    ("Pod", {"spec": {"containers": [1, None, "x", {"image": 5, "ports": [3, {"containerPort": "80"}]}]}}),
    ("Pod", {"spec": {"containers": [{"resources": {"limits": ["cpu"]}}], "priorityClassName": ["x"], "hostNetwork": True}}),
    ("Pod", {"spec": {"containers": [{"livenessProbe": "x", "env": [{"valueFrom": {"fieldRef": 1}}]}]}, "status": 3}),
    ("Service", {"spec": {"type": ["NodePort"], "ports": [{"port": "80"}], "sessionAffinity": "ClientIP",
                          "sessionAffinityConfig": "x"}}),
    ("Endpoints", {"subsets": [{"ports": "x"}, 1]}),
    ("Namespace", {"spec": [], "status": "x"}),
    ("Event", {"count": "1"}),
    ("Node", {"spec": 1}),
])
def test_wrong_types_are_left_for_validation(kind, obj):
    once = apply_defaults(kind, copy.deepcopy(obj))
    assert apply_defaults(kind, copy.deepcopy(once)) == once


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=8),
              st.sampled_from(["", "latest", "nginx", "1Gi", "100m", "ClientIP", "NodePort", "TCP", "x"])),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.sampled_from(
        ["spec", "containers", "initContainers", "ports", "resources", "limits", "requests", "cpu", "memory",
         "image", "status", "livenessProbe", "httpGet", "env", "valueFrom", "fieldRef", "volumes", "type",
         "sessionAffinity", "sessionAffinityConfig", "clientIP", "subsets", "targetPort", "port", "hostNetwork",
         "containerPort", "finalizers", "name", "lifecycle", "preStop", "qosClass", "priorityClassName"]), c, max_size=4)),
    max_leaves=25,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["Pod", "Service", "Endpoints", "Namespace", "Node", "Event", "Lease", "Ingress"]),
       st.dictionaries(st.sampled_from(["spec", "status", "subsets", "count", "type", "metadata"]), json_values, max_size=4))
def test_defaults_never_raise_and_are_idempotent(kind, obj):
    once = apply_defaults(kind, copy.deepcopy(obj))
    twice = apply_defaults(kind, copy.deepcopy(once))
    assert once == twice
    json.dumps(once)  # still plain JSON
