"""Unit tests: what a pod spec means on the node, and the status the kubelet reports (pure functions)."""
from __future__ import annotations

import pytest

from kubelet import podspec
from kubelet.status import pod_status, qos_class


def pod(**spec) -> dict:
    md = spec.pop("metadata", {})
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1", **md},
            "spec": {"containers": [{"name": "c", "image": "pocketkube/host"}], "nodeName": "n1", **spec},
            "status": {}}


SERVICES = [
    {"metadata": {"name": "kubernetes", "namespace": "default"},
     "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}},
    {"metadata": {"name": "redis-main", "namespace": "shop"},
     "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "redis", "port": 6379, "protocol": "TCP"},
                                                   {"name": "metrics", "port": 9121, "protocol": "TCP"}]}},
    {"metadata": {"name": "headless", "namespace": "shop"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}},
    {"metadata": {"name": "other", "namespace": "elsewhere"}, "spec": {"clusterIP": "10.96.0.30",
                                                                         "ports": [{"port": 80}]}},
]


def test_service_env_follows_kubernetes_names():
    env = podspec.service_env(SERVICES, "shop")
    assert env["REDIS_MAIN_SERVICE_HOST"] == "10.96.0.20"
    assert env["REDIS_MAIN_SERVICE_PORT"] == "6379"
    assert env["REDIS_MAIN_SERVICE_PORT_METRICS"] == "9121"
    assert env["REDIS_MAIN_PORT"] == "tcp://10.96.0.20:6379"
    assert env["REDIS_MAIN_PORT_9121_TCP_ADDR"] == "10.96.0.20"
    assert env["REDIS_MAIN_PORT_6379_TCP_PROTO"] == "tcp"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert not any(k.startswith(("HEADLESS_", "OTHER_")) for k in env)
    only_master = podspec.service_env(SERVICES, None)
    assert set(k.split("_")[0] for k in only_master) == {"KUBERNETES"}


def test_container_env_field_refs_and_expansion():
    p = pod(serviceAccountName="sa", metadata={"labels": {"app": "x"}})
    c = {"name": "c", "env": [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "URL", "value": "http://$(IP):80/$(POD)/$(MISSING)/$$(POD)"},
    ]}
    env = podspec.container_env(p, c, services=SERVICES, node_name="n1", pod_ip="10.244.1.5", host_ip="100.64.0.2")
    assert env["POD"] == "web" and env["IP"] == "10.244.1.5" and env["NODE"] == "n1" and env["APP"] == "x"
    assert env["URL"] == "http://10.244.1.5:80/web/$(MISSING)/$(POD)"
    assert env["HOSTNAME"] == "web"
    cmd, args = podspec.command_and_args({"command": ["echo", "$(POD)"], "args": ["$(IP)"]}, env)
    assert cmd == ["echo", "web"] and args == ["10.244.1.5"]
    with pytest.raises(podspec.EnvError, match="secretKeyRef"):
        podspec.container_env(p, {"name": "c", "env": [{"name": "S", "valueFrom": {"secretKeyRef": {}}}]},
                              services=[], node_name="n1", pod_ip="", host_ip="")


def test_resolv_conf_and_hosts():
    text = podspec.resolv_conf(pod(), "10.96.0.10", "cluster.local")
    assert text == ("nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\n"
                    "options ndots:5\n")
    assert podspec.resolv_conf(pod(dnsPolicy="Default"), "10.96.0.10", "cluster.local") is None
    assert podspec.resolv_conf(pod(hostNetwork=True), "10.96.0.10", "cluster.local") is None
    custom = podspec.resolv_conf(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.2.3.4"], "searches": ["a.b"],
                                                                   "options": [{"name": "ndots", "value": "2"}]}),
                                 "10.96.0.10", "cluster.local")
    assert custom == "nameserver 1.2.3.4\nsearch a.b\noptions ndots:2\n"
    hosts = podspec.hosts_file(pod(hostAliases=[{"ip": "1.1.1.1", "hostnames": ["one", "uno"]}]), "10.244.1.5",
                               "cluster.local")
    assert "127.0.0.1\tlocalhost" in hosts and "10.244.1.5\tweb" in hosts and "1.1.1.1\tone\tuno" in hosts
    sub = podspec.hosts_file(pod(hostname="h", subdomain="s"), "10.244.1.5", "cluster.local")
    assert "10.244.1.5\th.s.shop.svc.cluster.local\th" in sub


def test_modes_limits_restart_and_backoff():
    assert podspec.network_mode(pod()) == "pod"
    assert podspec.network_mode(pod(hostNetwork=True)) == "host"
    assert podspec.network_mode(pod(metadata={"annotations": {"pocketkube.io/network": "none"}})) == "none"
    assert podspec.limits({"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}) == (64 * 1024 * 1024, 250)
    assert podspec.limits({}) == (None, None)
    assert [podspec.should_restart(p, 0) for p in ("Always", "OnFailure", "Never")] == [True, False, False]
    assert [podspec.should_restart(p, 1) for p in ("Always", "OnFailure", "Never")] == [True, True, False]
    assert [podspec.backoff_delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [10, 20, 40, 80, 160, 300, 300]


# ------------------------------------------------------------------- status
def rec(name: str, state: str, attempt: int = 0, code: int | None = None, reason: str = "") -> dict:
    return {"id": f"{name}-{attempt}", "name": name, "attempt": attempt, "state": state, "exit_code": code,
            "reason": reason, "started_at": "2026-01-01T00:00:00Z", "finished_at": "" if state != "exited" else
            "2026-01-01T00:00:05Z", "created_at": "x"}


def status(p, records, waiting=None, ready=None, sandbox_ready=True):
    return pod_status(p, sandbox_ready=sandbox_ready, pod_ip="10.244.1.5", host_ip="100.64.0.2", records=records,
                      waiting=waiting or {}, ready=ready or {}, started={}, start_time="2026-01-01T00:00:00Z")


def cond(st, t):
    return next(c["status"] for c in st["conditions"] if c["type"] == t)


def test_status_running_ready_and_not_ready():
    st = status(pod(), {"c": [rec("c", "running")]})
    assert st["phase"] == "Running" and cond(st, "Ready") == "True" and cond(st, "Initialized") == "True"
    c = st["containerStatuses"][0]
    assert c["ready"] and c["started"] and "running" in c["state"] and c["containerID"] == "pocketkube://c-0"
    st = status(pod(), {"c": [rec("c", "running")]}, ready={"c": False})
    assert st["phase"] == "Running" and cond(st, "Ready") == "False" and cond(st, "ContainersReady") == "False"
    assert st["podIP"] == "10.244.1.5" and st["podIPs"] == [{"ip": "10.244.1.5"}] and st["qosClass"] == "BestEffort"


def test_status_pending_waiting_reasons():
    st = status(pod(), {}, waiting={"c": ("ErrImagePull", 'image "x" not found')})
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "ErrImagePull",
                                                               "message": 'image "x" not found'}}
    st = status(pod(), {}, sandbox_ready=False)
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"


def test_status_crashloop_has_last_state_and_restart_count():
    recs = {"c": [rec("c", "exited", 0, 1), rec("c", "exited", 1, 2)]}
    st = status(pod(), recs, waiting={"c": ("CrashLoopBackOff", "back-off 20s")})
    c = st["containerStatuses"][0]
    assert st["phase"] == "Running"
    assert c["restartCount"] == 1 and c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert c["lastState"]["terminated"]["exitCode"] == 2


def test_status_terminal_phases_by_restart_policy():
    ok = status(pod(restartPolicy="Never"), {"c": [rec("c", "exited", 0, 0)]})
    assert ok["phase"] == "Succeeded" and cond(ok, "Ready") == "False"
    assert ok["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    bad = status(pod(restartPolicy="Never"), {"c": [rec("c", "exited", 0, 3)]})
    assert bad["phase"] == "Failed"
    onf = status(pod(restartPolicy="OnFailure"), {"c": [rec("c", "exited", 0, 3)]})
    assert onf["phase"] == "Running"                         # it will be restarted
    always = status(pod(), {"c": [rec("c", "exited", 0, 0)]})
    assert always["phase"] == "Running"


def test_status_init_containers():
    p = pod(initContainers=[{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}])
    st = status(p, {"i1": [rec("i1", "exited", 0, 0)], "i2": [rec("i2", "running")]})
    assert st["phase"] == "Pending" and cond(st, "Initialized") == "False"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert st["initContainerStatuses"][0]["ready"] is True
    p["spec"]["restartPolicy"] = "Never"
    st = status(p, {"i1": [rec("i1", "exited", 0, 1)]})
    assert st["phase"] == "Failed"


def test_condition_transition_time_kept_while_value_stays():
    p = pod()
    first = status(p, {"c": [rec("c", "running")]})
    p["status"] = {"conditions": [dict(c, lastTransitionTime="2020-01-01T00:00:00Z") for c in first["conditions"]]}
    again = status(p, {"c": [rec("c", "running")]})
    assert all(c["lastTransitionTime"] == "2020-01-01T00:00:00Z" for c in again["conditions"])
    flipped = status(p, {"c": [rec("c", "running")]}, ready={"c": False})
    assert next(c for c in flipped["conditions"] if c["type"] == "Ready")["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_qos_class():
    assert qos_class(pod()) == "BestEffort"
    g = pod(containers=[{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}])
    assert qos_class(g) == "Guaranteed"
    b = pod(containers=[{"name": "c", "resources": {"requests": {"cpu": "1"}}}])
    assert qos_class(b) == "Burstable"
