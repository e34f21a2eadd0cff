"""CRUD, selectors, pagination, patch, delete semantics against a real server (SQLite and PostgreSQL)."""
from __future__ import annotations

import json

import pytest

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web", "tier": "frontend"}},
    "spec": {
        "containers": [{
            "name": "web", "image": "nginx:1.25",
            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        }],
        "restartPolicy": "Always",
    },
}


def pod(name, labels=None, node=None, ns="default"):
    p = json.loads(json.dumps(POD))
    p["metadata"]["name"] = name
    p["metadata"]["namespace"] = ns
    if labels is not None:
        p["metadata"]["labels"] = labels
    if node:
        p["spec"]["nodeName"] = node
    return p


PODS = "/api/v1/namespaces/default/pods"


def test_builtins_exist(http):
    names = {n["metadata"]["name"] for n in http.get("/api/v1/namespaces").json()["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    svc = http.get("/api/v1/namespaces/default/services/kubernetes").json()
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    ep = http.get("/api/v1/namespaces/default/endpoints/kubernetes").json()
    assert ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1"


def test_create_get_defaults(http):
    r = http.post(PODS, json=pod("a"))
    assert r.status_code == 201, r.text
    obj = r.json()
    md = obj["metadata"]
    assert md["uid"] and md["creationTimestamp"] and int(md["resourceVersion"]) > 0
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["serviceAccountName"] == "default"
    assert obj["status"]["phase"] == "Pending"
    got = http.get(f"{PODS}/a").json()
    assert got["metadata"]["resourceVersion"] == md["resourceVersion"]
    r = http.post(PODS, json=pod("a"))
    assert r.status_code == 409 and r.json()["reason"] == "AlreadyExists"
    assert r.json()["message"] == 'pods "a" already exists'


def test_generate_name_and_missing_namespace(http):
    p = pod("x")
    del p["metadata"]["name"]
    p["metadata"]["generateName"] = "gen-"
    r = http.post(PODS, json=p)
    assert r.status_code == 201
    assert r.json()["metadata"]["name"].startswith("gen-")
    r = http.post("/api/v1/namespaces/nope/pods", json=pod("y", ns="nope"))
    assert r.status_code == 404 and r.json()["message"] == 'namespaces "nope" not found'


def test_not_found_and_invalid(http):
    r = http.get(f"{PODS}/missing")
    assert r.status_code == 404
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": 'pods "missing" not found', "reason": "NotFound",
                        "details": {"name": "missing", "kind": "pods"}, "code": 404}
    bad = pod("Bad_Name")
    r = http.post(PODS, json=bad)
    assert r.status_code == 422
    body = r.json()
    assert body["reason"] == "Invalid"
    assert any(c["field"] == "metadata.name" for c in body["details"]["causes"])
    nocont = pod("nocont")
    nocont["spec"]["containers"] = []
    r = http.post(PODS, json=nocont)
    assert r.status_code == 422
    assert "spec.containers" in r.json()["message"]


def test_update_conflict_and_status(http):
    created = http.post(PODS, json=pod("u")).json()
    rv = created["metadata"]["resourceVersion"]
    created["metadata"]["labels"]["x"] = "1"
    r = http.put(f"{PODS}/u", json=created)
    assert r.status_code == 200
    assert r.json()["metadata"]["labels"]["x"] == "1"
    assert int(r.json()["metadata"]["resourceVersion"]) > int(rv)
    created["metadata"]["resourceVersion"] = rv  # stale
    r = http.put(f"{PODS}/u", json=created)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    # status is ignored on the main resource, accepted on /status
    cur = http.get(f"{PODS}/u").json()
    cur["status"] = {"phase": "Running", "podIP": "10.244.1.5"}
    r = http.put(f"{PODS}/u", json=cur)
    assert r.json()["status"]["phase"] == "Pending"
    r = http.put(f"{PODS}/u/status", json=cur)
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Running"
    # spec is immutable apart from images
    cur = http.get(f"{PODS}/u").json()
    cur["spec"]["restartPolicy"] = "Never"
    r = http.put(f"{PODS}/u", json=cur)
    assert r.status_code == 422
    cur = http.get(f"{PODS}/u").json()
    cur["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert http.put(f"{PODS}/u", json=cur).status_code == 200


def test_label_and_field_selectors(http):
    http.post(PODS, json=pod("s1", {"app": "web", "env": "prod"}))
    http.post(PODS, json=pod("s2", {"app": "web", "env": "dev"}))
    http.post(PODS, json=pod("s3", {"app": "db"}, node="n1"))

    def names(**params):
        r = http.get(PODS, params=params)
        assert r.status_code == 200, r.text
        return sorted(i["metadata"]["name"] for i in r.json()["items"])

    assert names(labelSelector="app=web") == ["s1", "s2"]
    assert names(labelSelector="app==web,env!=prod") == ["s2"]
    assert names(labelSelector="env in (prod,dev)") == ["s1", "s2"]
    assert names(labelSelector="env notin (prod)") == ["s2", "s3"]
    assert names(labelSelector="env") == ["s1", "s2"]
    assert names(labelSelector="!env") == ["s3"]
    assert names(fieldSelector="spec.nodeName=n1") == ["s3"]
    assert names(fieldSelector="spec.nodeName=") == ["s1", "s2"]
    assert names(fieldSelector="metadata.name=s2") == ["s2"]
    assert names(fieldSelector="status.phase=Pending,metadata.name!=s1") == ["s2", "s3"]
    r = http.get(PODS, params={"labelSelector": "a in (b"})
    assert r.status_code == 400
    r = http.get(PODS, params={"fieldSelector": "spec.bogus=1"})
    assert r.status_code == 400 and "field label not supported" in r.json()["message"]


def test_pagination_is_consistent(http):
    for i in range(25):
        http.post(PODS, json=pod(f"p{i:02d}"))
    seen = []
    r = http.get(PODS, params={"limit": 10}).json()
    rv = r["metadata"]["resourceVersion"]
    seen += [i["metadata"]["name"] for i in r["items"]]
    http.post(PODS, json=pod("p99"))  # written mid-pagination: not part of this list
    while r["metadata"].get("continue"):
        r = http.get(PODS, params={"limit": 10, "continue": r["metadata"]["continue"]}).json()
        assert r["metadata"]["resourceVersion"] == rv
        seen += [i["metadata"]["name"] for i in r["items"]]
    assert seen == [f"p{i:02d}" for i in range(25)]
    assert http.get(PODS, params={"continue": "garbage!"}).status_code == 400
    # integer parameters are int64, as in Kubernetes: beyond that is a 400 naming the parameter, not a 503
    for q in ({"limit": "999999999999999999999"}, {"limit": "x"}, {"watch": "1", "timeoutSeconds": str(1 << 63)}):
        r = http.get(PODS, params=q)
        assert r.status_code == 400 and r.json()["kind"] == "Status" and list(q)[-1] in r.json()["message"]
    assert http.get(PODS, params={"limit": str((1 << 63) - 1)}).status_code == 200


def test_patch_types(http):
    http.post(PODS, json=pod("pt"))
    r = http.patch(f"{PODS}/pt", content=json.dumps({"metadata": {"labels": {"tier": None, "new": "1"}}}),
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["labels"] == {"app": "web", "new": "1"}
    r = http.patch(f"{PODS}/pt", content=json.dumps([{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]),
                   headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["metadata"]["annotations"] == {"a": "b"}
    r = http.patch(f"{PODS}/pt", content=json.dumps([{"op": "test", "path": "/metadata/name", "value": "zz"}]),
                   headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code in (422, 400)
    # the strategic merge patch kubectl apply sends
    smp = {"metadata": {"labels": {"tier": "api"}},
           "spec": {"$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"name": "web", "image": "nginx:1.26"}]}}
    r = http.patch(f"{PODS}/pt", content=json.dumps(smp), headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status_code == 200, r.text
    c = r.json()["spec"]["containers"]
    assert len(c) == 1 and c[0]["image"] == "nginx:1.26" and c[0]["ports"][0]["containerPort"] == 80
    r = http.patch(f"{PODS}/pt", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_server_side_apply_creates_then_merges(http):
    body = pod("ssa")
    r = http.patch(f"{PODS}/ssa", params={"fieldManager": "kubectl", "force": "false"},
                   content=json.dumps(body), headers={"Content-Type": "application/apply-patch+yaml"})
    assert r.status_code == 201, r.text
    body["metadata"]["labels"]["extra"] = "yes"
    r = http.patch(f"{PODS}/ssa", params={"fieldManager": "kubectl"},
                   content=json.dumps(body), headers={"Content-Type": "application/apply-patch+yaml"})
    assert r.status_code == 200 and r.json()["metadata"]["labels"]["extra"] == "yes"


def test_binding(http):
    http.post(PODS, json=pod("b"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"}, "target": {"kind": "Node", "name": "node-1"}}
    r = http.post(f"{PODS}/b/binding", json=binding)
    assert r.status_code == 201, r.text
    p = http.get(f"{PODS}/b").json()
    assert p["spec"]["nodeName"] == "node-1"
    cond = [c for c in p["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert cond and cond[0]["status"] == "True"
    r = http.post(f"{PODS}/b/binding", json=binding)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    # a binding made for an earlier pod of the same name is refused
    http.post(PODS, json=pod("b2"))
    stale = {"metadata": {"name": "b2", "uid": "not-this-pod"}, "target": {"kind": "Node", "name": "node-1"}}
    r = http.post(f"{PODS}/b2/binding", json=stale)
    assert r.status_code == 409 and "UID" in r.json()["message"]
    uid = http.get(f"{PODS}/b2").json()["metadata"]["uid"]
    stale["metadata"]["uid"] = uid
    assert http.post(f"{PODS}/b2/binding", json=stale).status_code == 201


def test_graceful_pod_delete_and_finalizers(http):
    http.post(PODS, json=pod("g", node="node-1"))
    r = http.delete(f"{PODS}/g")
    assert r.status_code == 200
    assert r.json()["metadata"]["deletionTimestamp"]
    assert r.json()["metadata"]["deletionGracePeriodSeconds"] == 30
    assert http.get(f"{PODS}/g").status_code == 200  # the node agent finishes it
    r = http.request("DELETE", f"{PODS}/g", json={"gracePeriodSeconds": 0})
    assert r.status_code == 200
    assert http.get(f"{PODS}/g").status_code == 404
    # unscheduled pods go at once
    http.post(PODS, json=pod("u2"))
    http.delete(f"{PODS}/u2")
    assert http.get(f"{PODS}/u2").status_code == 404
    # finalizers hold the object until removed
    p = pod("f")
    p["metadata"]["finalizers"] = ["example.com/hold"]
    http.post(PODS, json=p)
    r = http.delete(f"{PODS}/f")
    assert r.json()["metadata"]["deletionTimestamp"]
    cur = http.get(f"{PODS}/f").json()
    cur["metadata"]["finalizers"] = []
    r = http.put(f"{PODS}/f", json=cur)
    assert r.status_code == 200
    assert http.get(f"{PODS}/f").status_code == 404


def test_delete_collection(http):
    for i in range(3):
        http.post(PODS, json=pod(f"dc{i}", {"grp": "x"}))
    http.post(PODS, json=pod("keep", {"grp": "y"}))
    r = http.delete(PODS, params={"labelSelector": "grp=x"})
    assert r.status_code == 200
    left = sorted(i["metadata"]["name"] for i in http.get(PODS).json()["items"])
    assert left == ["keep"]


def test_services_allocate_ips_and_node_ports(http):
    SV = "/api/v1/namespaces/default/services"
    ips = set()
    for i in range(5):
        r = http.post(SV, json={"metadata": {"name": f"s{i}"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
        assert r.status_code == 201, r.text
        ip = r.json()["spec"]["clusterIP"]
        last = int(ip.split(".")[-1]) + 256 * int(ip.split(".")[-2])
        assert ip.startswith("10.") and (ip.split(".")[2] != "0" or last >= 16)
        assert r.json()["spec"]["ports"][0]["targetPort"] == 80
        ips.add(ip)
    assert len(ips) == 5
    r = http.post(SV, json={"metadata": {"name": "dns"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP", "name": "dns"}]}})
    assert r.status_code == 201 and r.json()["spec"]["clusterIP"] == "10.96.0.10"
    r = http.post(SV, json={"metadata": {"name": "dns2"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}})
    assert r.status_code == 422 and "already allocated" in r.json()["message"]
    r = http.post(SV, json={"metadata": {"name": "out"}, "spec": {"clusterIP": "192.168.0.1", "ports": [{"port": 53}]}})
    assert r.status_code == 422 and "not in the valid range" in r.json()["message"]
    http.delete(f"{SV}/dns")
    r = http.post(SV, json={"metadata": {"name": "dns3"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}})
    assert r.status_code == 201  # released on delete
    r = http.post(SV, json={"metadata": {"name": "hl"}, "spec": {"clusterIP": "None", "selector": {"a": "b"}, "ports": [{"port": 80}]}})
    assert r.json()["spec"]["clusterIP"] == "None"
    r = http.post(SV, json={"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    np = r.json()["spec"]["ports"][0]["nodePort"]
    assert 30000 <= np <= 32767
    r = http.post(SV, json={"metadata": {"name": "np2"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": np}]}})
    assert r.status_code == 422
    cur = http.get(f"{SV}/s0").json()
    cur["spec"]["clusterIP"] = "10.96.0.99"
    cur["spec"]["clusterIPs"] = ["10.96.0.99"]
    assert http.put(f"{SV}/s0", json=cur).status_code == 422  # immutable


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/default/events", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
    "/apis/networking.k8s.io/v1/namespaces/default/ingresses", "/api/v1/nodes", "/api/v1/namespaces/default/endpoints",
])
def test_other_resources_list(http, path):
    r = http.get(path)
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["items"], list)


def test_node_lease_event_ingress_roundtrip(http):
    node = {"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}
    r = http.post("/api/v1/nodes", json=node)
    assert r.status_code == 201, r.text
    n = r.json()
    n["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert http.put("/api/v1/nodes/node-1/status", json=n).status_code == 200
    lease = {"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    r = http.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease)
    assert r.status_code == 201, r.text
    ev = {"metadata": {"name": "e1", "namespace": "default"}, "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u-1"},
          "reason": "Scheduled", "message": "placed", "type": "Normal"}
    assert http.post("/api/v1/namespaces/default/events", json=ev).status_code == 201
    r = http.get("/api/v1/namespaces/default/events", params={"fieldSelector": "involvedObject.name=web,involvedObject.uid=u-1,involvedObject.namespace=default"})
    assert [e["metadata"]["name"] for e in r.json()["items"]] == ["e1"]
    assert http.get("/api/v1/namespaces/default/events", params={"fieldSelector": "involvedObject.uid=other"}).json()["items"] == []
    ing = {"metadata": {"name": "web"}, "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    r = http.post("/apis/networking.k8s.io/v1/namespaces/default/ingresses", json=ing)
    assert r.status_code == 201, r.text


def test_namespace_lifecycle(http):
    import time
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": "tmp"}}).status_code == 201
    assert http.post("/api/v1/namespaces/tmp/pods", json=pod("x", ns="tmp")).status_code == 201
    r = http.delete("/api/v1/namespaces/tmp")
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Terminating"
    assert http.post("/api/v1/namespaces/tmp/pods", json=pod("y", ns="tmp")).status_code == 403
    deadline = time.time() + 10
    while time.time() < deadline and http.get("/api/v1/namespaces/tmp").status_code != 404:
        time.sleep(0.2)
    assert http.get("/api/v1/namespaces/tmp").status_code == 404
    assert http.delete("/api/v1/namespaces/default").status_code == 403


def test_dry_run_writes_nothing(http):
    r = http.post(PODS, params={"dryRun": "All"}, json=pod("dry"))
    assert r.status_code == 201
    assert http.get(f"{PODS}/dry").status_code == 404


def test_exec_and_log_answer_with_status_when_there_is_no_kubelet_to_relay_to(http, server):
    # The relay itself is tested against a stand-in kubelet in test_node_relay.py.
    import json as _json

    from websockets.sync.client import connect

    http.post(PODS, json=pod("nohost"))
    http.post(PODS, json=pod("onnode", node="node-1"))
    r = http.get(f"{PODS}/nohost/log")
    assert r.status_code == 400 and "does not have a host assigned" in r.json()["message"]
    r = http.get(f"{PODS}/onnode/log")
    assert r.status_code == 404 and r.json()["message"] == 'nodes "node-1" not found'
    assert http.get(f"{PODS}/missing/log").status_code == 404
    assert http.put(f"{PODS}/onnode/log", json={}).status_code == 405
    url = server.url.replace("http://", "ws://") + f"{PODS}/onnode/exec?command=ls&stdout=true"
    with connect(url, subprotocols=["v5.channel.k8s.io"], open_timeout=5, proxy=None) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        msg = ws.recv(timeout=5)
    assert msg[0] == 3
    status = _json.loads(msg[1:])
    assert status["status"] == "Failure" and status["code"] == 404 and "node-1" in status["message"]


def test_namespace_status_subresource(http):
    http.post("/api/v1/namespaces", json={"metadata": {"name": "st"}})
    ns = http.get("/api/v1/namespaces/st/status").json()
    assert ns["kind"] == "Namespace" and ns["status"]["phase"] == "Active"
    ns["metadata"]["labels"] = {"team": "a"}
    r = http.put("/api/v1/namespaces/st/status", json=ns)
    assert r.status_code == 200 and r.json()["metadata"]["labels"]["team"] == "a"
    r = http.post("/api/v1/namespaces/st/bindings", json={"metadata": {"name": "nopod"}, "target": {"name": "n1"}})
    assert r.status_code == 404
