"""Server-side Table output (api.tables) against kube-apiserver's printers.

kubectl prints the cells the server sends without changing them, so every cell
here has to match what a real cluster prints. That covers the pod STATUS state
machine (init containers, waiting and terminated reasons, Completed vs Running,
Terminating), Restarts with its "(5m ago)" suffix, the service
EXTERNAL-IP/PORT(S) rules, node status and roles, the Endpoints "+ N more..."
truncation and HumanDuration ages. These tests pin those rules, using the
expected values from kube's own printer logic, so a refactor cannot drift from
what users see on a real cluster.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from api.tables import column_definitions, human_duration, row_cells, row_conditions, table_for

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def ts(ago: timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


H1 = ts(timedelta(hours=1))


def names(kind: str) -> list[str]:
    return [c["name"] for c in column_definitions(kind)]


def narrow(kind: str) -> list[str]:
    return [c["name"] for c in column_definitions(kind) if c["priority"] == 0]


def cells(kind: str, obj: dict) -> dict:
    """Cells keyed by column name, so assertions read like kubectl's output."""
    row = row_cells(kind, obj, NOW)
    cols = names(kind)
    assert len(row) == len(cols), (row, cols)
    return dict(zip(cols, row))


# --------------------------------------------------------------------------
# human_duration
# --------------------------------------------------------------------------

@pytest.mark.parametrize("seconds,expected", [
    (-5, "<invalid>"),
    (-2, "<invalid>"),
    (-1.5, "0s"),
    (-1, "0s"),
    (0, "0s"),
    (0.9, "0s"),
    (45, "45s"),
    (119, "119s"),
    (120, "2m"),
    (123, "2m3s"),
    (5 * 60 + 30, "5m30s"),
    (9 * 60 + 59, "9m59s"),
    (10 * 60, "10m"),
    (10 * 60 + 59, "10m"),
    (3 * 3600 - 1, "179m"),
    (3 * 3600, "3h"),
    (3 * 3600 + 25 * 60, "3h25m"),
    (7 * 3600 + 59 * 60 + 59, "7h59m"),
    (8 * 3600, "8h"),
    (47 * 3600 + 3599, "47h"),
    (48 * 3600, "2d"),
    (3 * 86400 + 5 * 3600, "3d5h"),
    (8 * 86400 - 1, "7d23h"),
    (8 * 86400, "8d"),
    (729 * 86400, "729d"),
    (730 * 86400, "2y"),
    (730 * 86400 + 10 * 86400, "2y10d"),
    (8 * 365 * 86400 - 1, "7y364d"),
    (8 * 365 * 86400, "8y"),
    (20 * 365 * 86400, "20y"),
])
def test_human_duration(seconds, expected):
    assert human_duration(seconds) == expected


def test_age_unknown_without_creation_timestamp():
    assert cells("Namespace", {"metadata": {"name": "x"}})["Age"] == "<unknown>"
    assert cells("Namespace", {"metadata": {"name": "x", "creationTimestamp": None}})["Age"] == "<unknown>"


def test_age_accepts_fractions_offsets_and_naive_now():
    obj = {"metadata": {"name": "x", "creationTimestamp": "2024-06-01T11:59:15.123456789Z"}}
    assert cells("Namespace", obj)["Age"] == "44s"
    obj = {"metadata": {"name": "x", "creationTimestamp": "2024-06-01T13:00:00+02:00"}}  # 11:00Z
    assert cells("Namespace", obj)["Age"] == "60m"
    assert row_cells("Namespace", obj, NOW.replace(tzinfo=None))[2] == "60m"


# --------------------------------------------------------------------------
# column definitions
# --------------------------------------------------------------------------

def test_column_names_match_kubectl_headers():
    assert narrow("Pod") == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert names("Pod")[5:] == ["IP", "Node", "Nominated Node", "Readiness Gates"]
    assert names("Service") == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    assert names("Endpoints") == ["Name", "Endpoints", "Age"]
    assert names("Node") == ["Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP",
                             "OS-Image", "Kernel-Version", "Container-Runtime"]
    assert narrow("Node") == ["Name", "Status", "Roles", "Age", "Version"]
    assert names("Namespace") == ["Name", "Status", "Age"]
    assert narrow("Event") == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert names("Event") == ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message",
                              "First Seen", "Count", "Name"]
    assert names("Lease") == ["Name", "Holder", "Age"]
    assert names("Ingress") == ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    assert narrow("Deployment") == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert names("Deployment")[5:] == ["Containers", "Images", "Selector"]
    assert narrow("ReplicaSet") == ["Name", "Desired", "Current", "Ready", "Age"]
    assert names("Widget") == ["Name", "Created At"]


@pytest.mark.parametrize("kind", ["Pod", "Service", "Endpoints", "Node", "Namespace", "Event", "Lease",
                                  "Ingress", "Deployment", "ReplicaSet", "Widget"])
def test_column_definition_shape(kind):
    cols = column_definitions(kind)
    for c in cols:
        assert set(c) == {"name", "type", "format", "description", "priority"}
        assert c["type"] in ("string", "integer", "date")
        assert c["priority"] in (0, 1)
        assert c["description"]
    name_cols = [c for c in cols if c["name"] == "Name"]
    assert len(name_cols) == 1 and name_cols[0]["format"] == "name"
    if kind != "Event":  # kube prints LAST SEEN first for events; NAME is wide-only
        assert cols[0]["name"] == "Name"
    else:
        assert name_cols[0]["priority"] == 1
    assert [c["name"] for c in cols if c["format"] == "name"] == ["Name"]


def test_column_types():
    rs = {c["name"]: c["type"] for c in column_definitions("ReplicaSet")}
    assert rs["Desired"] == rs["Current"] == rs["Ready"] == "integer"
    assert {c["name"]: c["type"] for c in column_definitions("Widget")}["Created At"] == "date"
    assert {c["name"]: c["type"] for c in column_definitions("Pod")}["Restarts"] == "string"


def test_column_definitions_are_copies_and_kind_aliases_resolve():
    column_definitions("Pod")[0]["name"] = "mutated"
    assert column_definitions("Pod")[0]["name"] == "Name"
    assert column_definitions("pods") == column_definitions("Pod")
    assert column_definitions("svc") == column_definitions("Service")
    assert column_definitions("deploy") == column_definitions("Deployment")


# --------------------------------------------------------------------------
# pods
# --------------------------------------------------------------------------

def pod(name="web-0", containers=("app",), init=(), statuses=None, init_statuses=None, phase="Pending",
        conditions=None, deletion=None, reason=None, node=None, ip=None, gates=None, created=H1):
    p = {
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": {"containers": [{"name": c, "image": "nginx"} for c in containers]},
        "status": {"phase": phase},
    }
    if init:
        p["spec"]["initContainers"] = [c if isinstance(c, dict) else {"name": c, "image": "busybox"}
                                       for c in init]
    if statuses is not None:
        p["status"]["containerStatuses"] = statuses
    if init_statuses is not None:
        p["status"]["initContainerStatuses"] = init_statuses
    if conditions is not None:
        p["status"]["conditions"] = conditions
    if deletion:
        p["metadata"]["deletionTimestamp"] = deletion
    if reason:
        p["status"]["reason"] = reason
    if node:
        p["spec"]["nodeName"] = node
    if ip:
        p["status"]["podIP"] = ip
    if gates:
        p["spec"]["readinessGates"] = [{"conditionType": g} for g in gates]
    return p


def running(name="app", ready=True, restarts=0, last_finished=None):
    cs = {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": H1}}}
    if last_finished:
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": last_finished}}
    return cs


def waiting(reason, name="app", restarts=0, last_finished=None):
    cs = {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}}
    if last_finished:
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": last_finished}}
    return cs


def terminated(name="app", exit_code=0, reason=None, signal=None, restarts=0):
    t = {"exitCode": exit_code}
    if reason:
        t["reason"] = reason
    if signal:
        t["signal"] = signal
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"terminated": t}}


def status_of(p: dict) -> tuple[str, str, str]:
    c = cells("Pod", p)
    return c["Ready"], c["Status"], c["Restarts"]


def test_pod_pending_unscheduled():
    c = cells("Pod", pod())
    assert (c["Name"], c["Ready"], c["Status"], c["Restarts"], c["Age"]) == ("web-0", "0/1", "Pending", "0", "60m")
    assert (c["IP"], c["Node"], c["Nominated Node"], c["Readiness Gates"]) == ("<none>",) * 4


def test_pod_without_phase_prints_empty_status():
    p = pod()
    del p["status"]
    assert status_of(p) == ("0/1", "", "0")


def test_pod_container_creating():
    p = pod(statuses=[waiting("ContainerCreating")], node="node-1")
    assert status_of(p) == ("0/1", "ContainerCreating", "0")
    assert cells("Pod", p)["Node"] == "node-1"


def test_pod_running_one_of_two_ready():
    p = pod(containers=("app", "sidecar"), phase="Running", node="node-1", ip="10.244.1.5",
            statuses=[running("app"), running("sidecar", ready=False)])
    c = cells("Pod", p)
    assert (c["Ready"], c["Status"], c["Restarts"]) == ("1/2", "Running", "0")
    assert (c["IP"], c["Node"]) == ("10.244.1.5", "node-1")


def test_pod_ip_prefers_pod_ips():
    p = pod(phase="Running", statuses=[running()], ip="10.0.0.1")
    p["status"]["podIPs"] = [{"ip": "10.0.0.2"}, {"ip": "fd00::2"}]
    assert cells("Pod", p)["IP"] == "10.0.0.2"


def test_pod_crashloop_with_restarts_and_last_restart_age():
    p = pod(phase="Running", statuses=[waiting("CrashLoopBackOff", restarts=5,
                                               last_finished=ts(timedelta(minutes=5, seconds=30)))])
    assert status_of(p) == ("0/1", "CrashLoopBackOff", "5 (5m30s ago)")


def test_pod_restarts_takes_latest_finish_across_containers():
    p = pod(containers=("a", "b"), phase="Running",
            statuses=[running("a", restarts=2, last_finished=ts(timedelta(hours=2))),
                      running("b", restarts=1, last_finished=ts(timedelta(seconds=40)))])
    assert status_of(p) == ("2/2", "Running", "3 (40s ago)")


def test_pod_restarts_without_last_state_has_no_suffix():
    p = pod(phase="Running", statuses=[running(restarts=3)])
    assert status_of(p)[2] == "3"


def test_pod_err_image_pull_and_terminated_reasons():
    assert status_of(pod(statuses=[waiting("ErrImagePull")]))[1] == "ErrImagePull"
    assert status_of(pod(statuses=[waiting("ImagePullBackOff")]))[1] == "ImagePullBackOff"
    assert status_of(pod(phase="Running", statuses=[terminated(exit_code=137, reason="OOMKilled")]))[1] == "OOMKilled"
    assert status_of(pod(phase="Running", statuses=[terminated(exit_code=2)]))[1] == "ExitCode:2"
    assert status_of(pod(phase="Running", statuses=[terminated(exit_code=143, signal=15)]))[1] == "Signal:15"


def test_pod_completed():
    p = pod(phase="Succeeded", statuses=[terminated(reason="Completed")])
    assert status_of(p) == ("0/1", "Completed", "0")
    assert row_conditions("Pod", p) == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                         "message": "The pod has completed successfully."}]
    failed = pod(phase="Failed", statuses=[terminated(exit_code=1, reason="Error")])
    assert status_of(failed)[1] == "Error"
    assert row_conditions("Pod", failed)[0]["reason"] == "Failed"
    assert row_conditions("Pod", pod(phase="Running")) is None


def test_pod_completed_container_with_another_running():
    statuses = [terminated("job", reason="Completed"), running("web")]
    ready = [{"type": "Ready", "status": "True"}]
    assert status_of(pod(containers=("job", "web"), phase="Running", statuses=statuses,
                         conditions=ready)) == ("1/2", "Running", "0")
    assert status_of(pod(containers=("job", "web"), phase="Running", statuses=statuses))[1] == "NotReady"


def test_pod_terminating():
    p = pod(phase="Running", statuses=[running()], deletion=ts(timedelta(seconds=5)))
    assert status_of(p) == ("1/1", "Terminating", "0")
    # A pod that already finished is not shown as Terminating.
    done = pod(phase="Succeeded", statuses=[terminated(reason="Completed")], deletion=ts(timedelta(seconds=5)))
    assert status_of(done)[1] == "Completed"


def test_pod_node_lost():
    assert status_of(pod(phase="Running", reason="NodeLost"))[1] == "NodeLost"
    assert status_of(pod(phase="Running", reason="NodeLost", deletion=H1))[1] == "Unknown"


def test_pod_status_reason_overrides_phase():
    assert status_of(pod(phase="Failed", reason="Evicted"))[1] == "Evicted"


def test_pod_scheduling_gated():
    p = pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    assert status_of(p)[1] == "SchedulingGated"


def test_pod_init_containers_progress():
    p = pod(init=("init-a", "init-b"), statuses=[waiting("PodInitializing")],
            init_statuses=[terminated("init-a", reason="Completed"),
                           {"name": "init-b", "ready": False, "restartCount": 0, "state": {"running": {}}}])
    assert status_of(p) == ("0/1", "Init:1/2", "0")
    none_started = pod(init=("init-a", "init-b"),
                       init_statuses=[waiting("PodInitializing", "init-a"), waiting("PodInitializing", "init-b")])
    assert status_of(none_started)[1] == "Init:0/2"


def test_pod_init_container_crashloop_and_errors():
    p = pod(init=("init-a",), init_statuses=[waiting("CrashLoopBackOff", "init-a", restarts=4,
                                                     last_finished=ts(timedelta(minutes=2)))],
            statuses=[waiting("PodInitializing")])
    assert status_of(p) == ("0/1", "Init:CrashLoopBackOff", "4 (2m ago)")
    assert status_of(pod(init=("i",), init_statuses=[terminated("i", exit_code=1, reason="Error")]))[1] == "Init:Error"
    assert status_of(pod(init=("i",), init_statuses=[terminated("i", exit_code=3)]))[1] == "Init:ExitCode:3"
    assert status_of(pod(init=("i",), init_statuses=[terminated("i", exit_code=137, signal=9)]))[1] == "Init:Signal:9"


def test_pod_init_done_then_running():
    p = pod(init=("init-a",), phase="Running", init_statuses=[terminated("init-a", reason="Completed", restarts=1)],
            statuses=[running()])
    # Restarts of ordinary init containers stop counting once the pod is initialized.
    assert status_of(p) == ("1/1", "Running", "0")


def test_pod_sidecar_init_container_counts_towards_ready():
    sidecar = {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
    p = pod(init=(sidecar,), phase="Running",
            init_statuses=[{"name": "proxy", "ready": True, "started": True, "restartCount": 2,
                            "state": {"running": {}},
                            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(timedelta(minutes=3))}}}],
            statuses=[running()], conditions=[{"type": "Initialized", "status": "True"}])
    assert status_of(p) == ("2/2", "Running", "2 (3m ago)")


def test_pod_readiness_gates():
    p = pod(phase="Running", statuses=[running()], gates=("a", "b"),
            conditions=[{"type": "a", "status": "True"}, {"type": "b", "status": "False"}])
    assert cells("Pod", p)["Readiness Gates"] == "1/2"


def test_pod_nominated_node():
    p = pod()
    p["status"]["nominatedNodeName"] = "node-2"
    assert cells("Pod", p)["Nominated Node"] == "node-2"


# --------------------------------------------------------------------------
# services
# --------------------------------------------------------------------------

def svc(type_="ClusterIP", ports=None, cluster_ip="10.96.0.10", selector=None, **spec_extra):
    s = {"metadata": {"name": "web", "creationTimestamp": H1},
         "spec": {"type": type_, "ports": ports if ports is not None else [{"port": 80, "protocol": "TCP"}],
                  **spec_extra},
         "status": {}}
    if cluster_ip:
        s["spec"]["clusterIP"] = cluster_ip
        s["spec"]["clusterIPs"] = [cluster_ip]
    if selector is not None:
        s["spec"]["selector"] = selector
    return s


def test_service_cluster_ip():
    c = cells("Service", svc(selector={"app": "web", "tier": "fe"}))
    assert c == {"Name": "web", "Type": "ClusterIP", "Cluster-IP": "10.96.0.10", "External-IP": "<none>",
                 "Port(s)": "80/TCP", "Age": "60m", "Selector": "app=web,tier=fe"}


def test_service_defaults_and_headless():
    s = svc(ports=[{"port": 53}, {"port": 53, "protocol": "UDP"}], cluster_ip=None)
    del s["spec"]["type"]
    s["spec"]["clusterIP"] = "None"
    c = cells("Service", s)
    assert (c["Type"], c["Cluster-IP"], c["Port(s)"], c["Selector"]) == ("ClusterIP", "None", "53/TCP,53/UDP", "<none>")
    assert cells("Service", svc(ports=[]))["Port(s)"] == "<none>"
    assert cells("Service", svc(cluster_ip=None))["Cluster-IP"] == "<none>"


def test_service_external_ips_on_cluster_ip():
    assert cells("Service", svc(externalIPs=["1.2.3.4", "5.6.7.8"]))["External-IP"] == "1.2.3.4,5.6.7.8"


def test_service_node_port():
    c = cells("Service", svc("NodePort", ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                                                {"port": 443, "nodePort": 30443, "protocol": "TCP"}]))
    assert (c["Type"], c["External-IP"], c["Port(s)"]) == ("NodePort", "<none>", "80:30080/TCP,443:30443/TCP")


def test_service_load_balancer():
    s = svc("LoadBalancer", ports=[{"port": 80, "nodePort": 31000, "protocol": "TCP"}])
    assert cells("Service", s)["External-IP"] == "<pending>"
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"},
                                                {"ip": "203.0.113.9"}]}}
    assert cells("Service", s)["External-IP"] == "203.0.113.9,lb.example.com"
    s["spec"]["externalIPs"] = ["198.51.100.1"]
    assert cells("Service", s)["External-IP"] == "203.0.113.9,lb.example.com,198.51.100.1"
    s["status"] = {}
    assert cells("Service", s)["External-IP"] == "198.51.100.1"


def test_service_external_name():
    c = cells("Service", svc("ExternalName", ports=[], cluster_ip=None, externalName="db.example.com"))
    assert (c["Type"], c["Cluster-IP"], c["External-IP"], c["Port(s)"]) == (
        "ExternalName", "<none>", "db.example.com", "<none>")


# --------------------------------------------------------------------------
# endpoints
# --------------------------------------------------------------------------

def test_endpoints():
    ep = {"metadata": {"name": "web", "creationTimestamp": H1},
          "subsets": [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.1.6"}], "ports": [{"port": 80}]}]}
    assert cells("Endpoints", ep) == {"Name": "web", "Endpoints": "10.244.1.5:80,10.244.1.6:80", "Age": "60m"}
    assert cells("Endpoints", {"metadata": {"name": "e"}})["Endpoints"] == "<none>"
    assert cells("Endpoints", {"metadata": {"name": "e"}, "subsets": []})["Endpoints"] == "<none>"


def test_endpoints_more_than_three():
    ep = {"metadata": {"name": "web"},
          "subsets": [{"addresses": [{"ip": f"10.244.1.{i}"} for i in range(1, 6)],
                       "ports": [{"port": 80}, {"port": 443}]}]}
    assert cells("Endpoints", ep)["Endpoints"] == "10.244.1.1:80,10.244.1.2:80,10.244.1.3:80 + 7 more..."
    exactly_three = {"metadata": {"name": "web"},
                     "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(3)], "ports": [{"port": 8080}]}]}
    assert cells("Endpoints", exactly_three)["Endpoints"] == "10.0.0.0:8080,10.0.0.1:8080,10.0.0.2:8080"


def test_endpoints_headless_without_ports_and_ipv6():
    ep = {"metadata": {"name": "db"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]},
                                                   {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 5432}]}]}
    assert cells("Endpoints", ep)["Endpoints"] == "10.0.0.1,10.0.0.2,[fd00::1]:5432"


# --------------------------------------------------------------------------
# nodes
# --------------------------------------------------------------------------

def node(ready="True", unschedulable=False, labels=None, conditions=True):
    n = {"metadata": {"name": "node-1", "creationTimestamp": ts(timedelta(days=3, hours=5)), "labels": labels or {}},
         "spec": {},
         "status": {"nodeInfo": {"kubeletVersion": "v1.30.0", "osImage": "Ubuntu 22.04.4 LTS",
                                 "kernelVersion": "6.5.0-1", "containerRuntimeVersion": "containerd://1.7.0"},
                    "addresses": [{"type": "Hostname", "address": "node-1"},
                                  {"type": "InternalIP", "address": "172.18.0.2"}]}}
    if conditions:
        n["status"]["conditions"] = [{"type": "MemoryPressure", "status": "False"},
                                     {"type": "Ready", "status": ready}]
    if unschedulable:
        n["spec"]["unschedulable"] = True
    return n


def test_node_ready():
    c = cells("Node", node(labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"}))
    assert c == {"Name": "node-1", "Status": "Ready", "Roles": "control-plane", "Age": "3d5h",
                 "Version": "v1.30.0", "Internal-IP": "172.18.0.2", "External-IP": "<none>",
                 "OS-Image": "Ubuntu 22.04.4 LTS", "Kernel-Version": "6.5.0-1",
                 "Container-Runtime": "containerd://1.7.0"}


def test_node_not_ready_unknown_and_cordoned():
    assert cells("Node", node(ready="False"))["Status"] == "NotReady"
    assert cells("Node", node(ready="Unknown"))["Status"] == "NotReady"
    assert cells("Node", node(conditions=False))["Status"] == "Unknown"
    assert cells("Node", node(unschedulable=True))["Status"] == "Ready,SchedulingDisabled"
    assert cells("Node", node(ready="False", unschedulable=True))["Status"] == "NotReady,SchedulingDisabled"


def test_node_roles_and_missing_info():
    assert cells("Node", node())["Roles"] == "<none>"
    labels = {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/infra": "",
              "kubernetes.io/role": "edge", "node-role.kubernetes.io/": ""}
    assert cells("Node", node(labels=labels))["Roles"] == "edge,infra,worker"
    bare = {"metadata": {"name": "n"}}
    c = cells("Node", bare)
    assert (c["Version"], c["OS-Image"], c["Internal-IP"], c["Age"]) == ("", "<unknown>", "<none>", "<unknown>")


# --------------------------------------------------------------------------
# other kinds
# --------------------------------------------------------------------------

def test_namespace_and_lease():
    assert cells("Namespace", {"metadata": {"name": "default", "creationTimestamp": ts(timedelta(days=400))},
                               "status": {"phase": "Active"}}) == {"Name": "default", "Status": "Active", "Age": "400d"}
    lease = {"metadata": {"name": "node-1", "creationTimestamp": H1}, "spec": {"holderIdentity": "node-1"}}
    assert cells("Lease", lease) == {"Name": "node-1", "Holder": "node-1", "Age": "60m"}
    assert cells("Lease", {"metadata": {"name": "x"}, "spec": {}})["Holder"] == ""


def test_event():
    ev = {"metadata": {"name": "web-0.17a", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
          "reason": "Pulled", "type": "Normal", "message": "Successfully pulled image \"nginx\"\n",
          "source": {"component": "kubelet", "host": "node-1"},
          "firstTimestamp": ts(timedelta(minutes=5)), "lastTimestamp": ts(timedelta(seconds=30)), "count": 3}
    assert cells("Event", ev) == {
        "Last Seen": "30s", "Type": "Normal", "Reason": "Pulled", "Object": "pod/web-0",
        "Subobject": "spec.containers{app}", "Source": "kubelet, node-1",
        "Message": "Successfully pulled image \"nginx\"", "First Seen": "5m", "Count": 3, "Name": "web-0.17a"}


def test_event_new_api_fields():
    ev = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"},
          "eventTime": "2024-06-01T11:58:00.000000Z", "reportingComponent": "scheduler", "reason": "R"}
    c = cells("Event", ev)
    assert (c["Last Seen"], c["First Seen"], c["Count"], c["Object"], c["Source"]) == ("2m", "2m", 1, "node", "scheduler")
    ev["series"] = {"count": 7, "lastObservedTime": "2024-06-01T11:59:50.000000Z"}
    c = cells("Event", ev)
    assert (c["Last Seen"], c["Count"]) == ("10s", 7)
    assert cells("Event", {"metadata": {"name": "e"}})["Last Seen"] == "<unknown>"


def test_ingress():
    ing = {"metadata": {"name": "web", "creationTimestamp": H1},
           "spec": {"rules": [{"host": "a.example.com"}, {"host": "b.example.com"}]}, "status": {}}
    assert cells("Ingress", ing) == {"Name": "web", "Class": "<none>", "Hosts": "a.example.com,b.example.com",
                                     "Address": "", "Ports": "80", "Age": "60m"}
    ing["spec"]["ingressClassName"] = "nginx"
    ing["spec"]["tls"] = [{"hosts": ["a.example.com"]}]
    ing["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    c = cells("Ingress", ing)
    assert (c["Class"], c["Address"], c["Ports"]) == ("nginx", "192.0.2.1", "80, 443")
    assert cells("Ingress", {"metadata": {"name": "x"}, "spec": {"rules": [{}]}})["Hosts"] == "*"
    many = {"metadata": {"name": "x"}, "spec": {"rules": [{"host": f"h{i}"} for i in range(5)]}}
    assert cells("Ingress", many)["Hosts"] == "h0,h1,h2 + 2 more..."


def test_deployment_and_replicaset():
    template = {"spec": {"containers": [{"name": "app", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}}
    dep = {"metadata": {"name": "web", "creationTimestamp": H1},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                                                "matchExpressions": [{"key": "env", "operator": "In",
                                                                      "values": ["prod", "dev"]}]},
                    "template": template},
           "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert cells("Deployment", dep) == {"Name": "web", "Ready": "2/3", "Up-to-date": 3, "Available": 2,
                                        "Age": "60m", "Containers": "app,log", "Images": "nginx:1.25,busybox",
                                        "Selector": "app=web,env in (dev,prod)"}
    assert cells("Deployment", {"metadata": {"name": "d"}, "spec": {}})["Ready"] == "0/1"
    rs = {"metadata": {"name": "web-5d4f", "creationTimestamp": H1},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}},
                   "template": template},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert cells("ReplicaSet", rs) == {"Name": "web-5d4f", "Desired": 3, "Current": 3, "Ready": 1, "Age": "60m",
                                       "Containers": "app,log", "Images": "nginx:1.25,busybox",
                                       "Selector": "app=web,pod-template-hash=5d4f"}
    assert cells("ReplicaSet", {"metadata": {"name": "r"}, "spec": {"replicas": 0}})["Selector"] == "<none>"


def test_unknown_kind_uses_default_convertor():
    obj = {"metadata": {"name": "cm", "creationTimestamp": "2024-05-01T08:09:10.5+02:00"}}
    assert row_cells("Widget", obj, NOW) == ["cm", "2024-05-01T06:09:10Z"]
    assert row_cells("Widget", {"metadata": {"name": "x"}}, NOW) == ["x", "0001-01-01T00:00:00Z"]


# --------------------------------------------------------------------------
# the Table itself
# --------------------------------------------------------------------------

def test_table_for_shape_metadata_mode():
    p = pod(phase="Running", statuses=[running()], node="node-1", ip="10.244.0.7")
    p["metadata"]["labels"] = {"app": "web"}
    t = table_for("Pod", [p], NOW, resource_version="107")
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "107"}
    assert t["columnDefinitions"] == column_definitions("Pod")
    assert len(t["rows"]) == 1
    row = t["rows"][0]
    assert row["cells"] == ["web-0", "1/1", "Running", "0", "60m", "10.244.0.7", "node-1", "<none>", "<none>"]
    assert len(row["cells"]) == len(t["columnDefinitions"])
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": p["metadata"]}
    assert "conditions" not in row
    json.dumps(t)  # plain JSON all the way down


def test_table_for_object_and_none_modes():
    ns = {"metadata": {"name": "default", "creationTimestamp": H1}, "status": {"phase": "Active"}}
    t = table_for("Namespace", [ns], NOW, include_object="Object")
    assert t["rows"][0]["object"] == {"kind": "Namespace", "apiVersion": "v1", **ns}
    assert "kind" not in ns  # the input is not mutated
    full = {"kind": "Namespace", "apiVersion": "v1", **ns}
    assert table_for("Namespace", [full], NOW, include_object="Object")["rows"][0]["object"] is full
    t = table_for("Namespace", [ns], NOW, include_object="None")
    assert "object" not in t["rows"][0]
    assert t["metadata"] == {}


def test_table_for_empty_list_and_watch_rows():
    t = table_for("Pod", [], NOW, resource_version="5")
    assert t["rows"] == [] and t["columnDefinitions"]
    w = table_for("Pod", [pod()], NOW, resource_version="6", include_columns=False)
    assert w["columnDefinitions"] is None and len(w["rows"]) == 1


def test_table_for_marks_completed_pods():
    t = table_for("Pod", [pod(phase="Succeeded", statuses=[terminated(reason="Completed")]), pod()], NOW)
    assert t["rows"][0]["conditions"][0]["type"] == "Completed"
    assert "conditions" not in t["rows"][1]


def test_table_for_many_kinds_row_width_matches_columns():
    samples = {
        "Service": svc(), "Endpoints": {"metadata": {"name": "e"}}, "Node": node(),
        "Namespace": {"metadata": {"name": "n"}}, "Event": {"metadata": {"name": "e"}},
        "Lease": {"metadata": {"name": "l"}}, "Ingress": {"metadata": {"name": "i"}},
        "Deployment": {"metadata": {"name": "d"}}, "ReplicaSet": {"metadata": {"name": "r"}},
        "Secret": {"metadata": {"name": "s"}},
    }
    for kind, obj in samples.items():
        t = table_for(kind, [obj], NOW)
        assert len(t["rows"][0]["cells"]) == len(t["columnDefinitions"]), kind
