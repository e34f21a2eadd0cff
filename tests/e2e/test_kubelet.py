"""e2e: a real kubelet + runtime in a node namespace runs real pods (issue 4).

Every test talks to the API server only (create pods, read status) and checks
the node from outside (namespaces, processes, files, packets). The cluster
(API server, scheduler, controller-manager, proxy, kubelet) is shared by the
module; each test makes pods with names of its own and deletes them.
"""
from __future__ import annotations

import errno
import json
import os
import sys
import re
import socket
import subprocess
import time

import pytest

from api import resources as R
from nodeutil import mounts
from tests.conftest import need
from tests.e2e.kubelet_cluster import fixture
from tests.e2e.netns import have_root_tools, wait_until

pytestmark = pytest.mark.slow

HOST = "pocketkube/host"


@pytest.fixture(scope="module")
def kc(tmp_path_factory):
    ok, why = have_root_tools("iptables-restore", "iptables-save", "nsenter")
    need(ok, why)
    yield from fixture(str(tmp_path_factory.mktemp("kubelet")))


def sh(script: str, name: str = "main", **extra) -> dict:
    return {"name": name, "image": HOST, "args": ["sh", "-c", script], **extra}


def cstatus(pod: dict, name: str) -> dict:
    return next(c for c in pod["status"].get("containerStatuses") or [] if c["name"] == name)


def logs(kc, name: str, container: str | None = None, **params) -> str:
    q = {"container": container} if container else {}
    q.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()})
    return kc.client.request("GET", f"/api/v1/namespaces/default/pods/{name}/log", params=q, raw=True).decode()


# ------------------------------------------------------------------- the node
def test_node_registration_heartbeat_and_kubelet_api_auth(kc):
    node = kc.client.get(R.NODES, "node-1")
    st = node["status"]
    assert {"type": "InternalIP", "address": kc.node.node_ip} in st["addresses"]
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kc.kubelet_port
    assert st["capacity"]["pods"] == "110" and int(st["capacity"]["cpu"]) >= 1 and st["capacity"]["memory"].endswith("Ki")
    assert node["spec"]["podCIDR"] == kc.node.pod_cidr
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-1"
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    lease = kc.client.get(R.LEASES, "node-1", "kube-node-lease")
    first = lease["spec"]["renewTime"]
    assert lease["spec"]["holderIdentity"] == "node-1"
    wait_until(lambda: kc.client.get(R.LEASES, "node-1", "kube-node-lease")["spec"]["renewTime"] != first,
               timeout=25, interval=1, what="lease renewed within one heartbeat")
    # the kubelet API refuses anyone without the API server's token
    url = f"http://{kc.node.node_ip}:{kc.kubelet_port}"
    probe = ("import sys, urllib.request as u\n"
             "def get(path, token=None):\n"
             "    r = u.Request(sys.argv[1] + path, headers={'Authorization': 'Bearer ' + token} if token else {})\n"
             "    try:\n"
             "        return u.urlopen(r, timeout=5).status\n"
             "    except u.HTTPError as e:\n"
             "        return e.code\n"
             "print(get('/healthz'), get('/containerLogs/default/x/y'), get('/containerLogs/default/x/y', 'wrong'),"
             " get('/containerLogs/default/x/y', sys.argv[2]))\n")
    token = open(kc.token_file).read().strip()
    r = subprocess.run(["nsenter", f"--net=/run/netns/{kc.node.ns}", sys.executable, "-c", probe, url, token],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.split() == ["200", "401", "401", "404"], r


# ---------------------------------------------------------------- networking
def test_pod_to_pod_two_containers_localhost_files_and_env(kc):
    kc.pod("srv", [{"name": "web", "image": HOST, "args": ["python3", "-m", "http.server", "8080"],
                    "readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 1}}],
           metadata={"labels": {"app": "srv"}})
    srv = kc.wait_running("srv")
    ip = srv["status"]["podIP"]
    assert ip.startswith("10.244.1.")
    kc.pod("duo", [
        sh("python3 -m http.server 9090", name="a"),
        sh(f"sleep 1; python3 -c \"import urllib.request as u; print('peer', u.urlopen('http://{ip}:8080/').status); "
           f"print('local', u.urlopen('http://localhost:9090/').status)\"; hostname; cat /etc/hosts /etc/resolv.conf;"
           f" echo POD=$MY_POD NS=$MY_NS IP=$MY_IP NODE=$MY_NODE X=$X; sleep 600", name="b",
           env=[{"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "X", "value": "$(MY_POD)-x"}])])
    duo = kc.wait_running("duo")
    wait_until(lambda: "POD=" in logs(kc, "duo", "b"), timeout=20, what="duo logs")
    out = logs(kc, "duo", "b")
    assert "peer 200" in out and "local 200" in out
    assert "\nduo\n" in out                                   # the pod's hostname
    assert f"{duo['status']['podIP']}\tduo" in out            # /etc/hosts
    assert "nameserver 10.96.0.10" in out and "search default.svc.cluster.local svc.cluster.local cluster.local" in out
    assert "options ndots:5" in out
    assert f"POD=duo NS=default IP={duo['status']['podIP']} NODE=node-1 X=duo-x" in out
    # the two containers share one network namespace and have their own pid namespaces
    a = kc.exec_in_pod(duo, "ip", "-o", "addr", "show", "eth0")
    assert duo["status"]["podIP"] in a.stdout.decode()
    for n in ("srv", "duo"):
        kc.delete_pod(n)


def test_service_env_and_cluster_ip_with_hairpin(kc):
    kc.client.create(R.SERVICES, {"metadata": {"name": "hp", "namespace": "default"},
                                  "spec": {"selector": {"app": "hp"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    svc = kc.client.get(R.SERVICES, "hp", "default")
    vip = svc["spec"]["clusterIP"]
    kc.pod("hp", [sh("python3 -m http.server 8080 & sleep 2; "
                     "for i in 1 2 3 4 5 6 7 8 9 10; do python3 -c \"import urllib.request as u,os;"
                     "print('self-via-vip', u.urlopen('http://%s:%s/' % (os.environ['HP_SERVICE_HOST'], "
                     "os.environ['HP_SERVICE_PORT']), timeout=2).status)\" && break; sleep 1; done; sleep 600",
                     readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})],
           metadata={"labels": {"app": "hp"}})
    kc.wait_running("hp")
    wait_until(lambda: "self-via-vip 200" in logs(kc, "hp"), timeout=30, what="pod reaches itself via its service")
    out = logs(kc, "hp")
    assert "self-via-vip 200" in out
    kc.delete_pod("hp")
    kc.client.delete(R.SERVICES, "hp", "default")
    assert vip


def test_host_network_and_none_network(kc):
    kc.pod("hostnet", [sh("ip -o -4 addr; hostname; sleep 600")], hostNetwork=True)
    kc.pod("nonet", [sh("ip -o link; sleep 600")], metadata={"annotations": {"pocketkube.io/network": "none"}})
    h = kc.wait_running("hostnet")
    n = kc.wait_running("nonet")
    assert h["status"]["podIP"] == kc.node.node_ip
    wait_until(lambda: kc.node.node_ip in logs(kc, "hostnet"), timeout=10, what="hostnet logs")
    # host mode shares the node's UTS namespace too: the kubelet's (here the machine's) hostname
    assert socket.gethostname() in logs(kc, "hostnet").split()
    wait_until(lambda: "lo:" in logs(kc, "nonet"), timeout=10, what="nonet logs")
    links = logs(kc, "nonet")
    assert "lo:" in links and "UP" in links and "eth0" not in links
    assert not n["status"].get("podIP")
    kc.delete_pod("hostnet")
    kc.delete_pod("nonet")


# ------------------------------------------------------------------ lifecycle
def test_restart_policies(kc):
    kc.pod("never-ok", [sh("exit 0")], restartPolicy="Never")
    kc.pod("never-fail", [sh("echo bye; exit 3")], restartPolicy="Never")
    kc.pod("onfail", [sh("f=/tmp/pk-onfail-$MY_UID; if [ -e $f ]; then rm $f; exit 0; fi; touch $f; exit 1",
                         env=[{"name": "MY_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}])],
           restartPolicy="OnFailure")
    ok = kc.wait_pod("never-ok", lambda p: p["status"].get("phase") == "Succeeded", 30, "Succeeded")
    assert cstatus(ok, "main")["state"]["terminated"]["reason"] == "Completed"
    bad = kc.wait_pod("never-fail", lambda p: p["status"].get("phase") == "Failed", 30, "Failed")
    term = cstatus(bad, "main")["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert logs(kc, "never-fail") == "bye\n"                # logs survive the end of the pod
    of = kc.wait_pod("onfail", lambda p: p["status"].get("phase") == "Succeeded", 40, "OnFailure -> Succeeded")
    st = cstatus(of, "main")
    assert st["restartCount"] == 1 and st["lastState"]["terminated"]["exitCode"] == 1
    for n in ("never-ok", "never-fail", "onfail"):
        kc.delete_pod(n)


def test_crashloop_backoff_delays(kc, tmp_path):
    stamp = str(tmp_path / "starts")
    kc.pod("crash", [sh(f"date +%s.%N >> {stamp}; echo crashing; exit 2")])
    wait_until(lambda: os.path.exists(stamp) and len(open(stamp).read().split()) >= 4, timeout=120, interval=0.5,
               what="four starts")
    starts = [float(x) for x in open(stamp).read().split()]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # back-off 10 s, 20 s, 40 s (+ the time to notice the exit, at most ~1.5 s)
    for got, want in zip(gaps[:3], (10, 20, 40)):
        assert want - 0.5 <= got <= want + 2.5, gaps
    pod = kc.get_pod("crash")
    st = cstatus(pod, "main")
    assert st["restartCount"] >= 3
    assert st["lastState"]["terminated"]["exitCode"] == 2
    if "waiting" in st["state"]:
        assert st["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "crashing" in logs(kc, "crash", previous=True)
    kc.delete_pod("crash")


def test_init_containers_run_in_order(kc, tmp_path):
    f = str(tmp_path / "order")
    kc.pod("init", [sh(f"echo main >> {f}; sleep 600")],
           initContainers=[sh(f"echo one >> {f}", name="one"), sh(f"sleep 0.5; echo two >> {f}", name="two")])
    p = kc.wait_running("init")
    assert open(f).read().split() == ["one", "two", "main"]
    assert all(s["state"]["terminated"]["exitCode"] == 0 for s in p["status"]["initContainerStatuses"])
    kc.delete_pod("init")


def test_probes(kc, tmp_path):
    flag = str(tmp_path / "ready")
    kc.pod("probed", [
        sh("python3 -m http.server 8080", name="web",
           readinessProbe={"exec": {"command": ["test", "-e", flag]}, "periodSeconds": 1, "failureThreshold": 1},
           startupProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30},
           livenessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1})])
    kc.wait_running("probed", ready=False)
    time.sleep(2)
    p = kc.get_pod("probed")
    assert not cstatus(p, "web")["ready"]                  # readiness: the flag file is missing
    open(flag, "w").close()
    kc.wait_running("probed", ready=True, timeout=15)
    os.unlink(flag)
    kc.wait_pod("probed", lambda p: not cstatus(p, "web")["ready"], 15, "readiness drops")
    # liveness: an exec probe that fails makes the kubelet restart the container
    kc.pod("live", [sh("sleep 600", livenessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1,
                                                    "failureThreshold": 2})])
    p = kc.wait_pod("live", lambda p: p["status"].get("containerStatuses") and
                    cstatus(p, "main")["restartCount"] >= 1, 30, "liveness restart")
    assert cstatus(p, "main")["lastState"]["terminated"]["exitCode"] == 137
    ev = kc.client.list(R.EVENTS, "default", field_selector="involvedObject.name=live")["items"]
    assert any(e["reason"] == "Unhealthy" for e in ev) and any(e["reason"] == "Killing" for e in ev)
    kc.delete_pod("probed")
    kc.delete_pod("live")


def test_graceful_termination(kc, tmp_path):
    out = str(tmp_path / "term")
    kc.pod("graceful", [sh(f"trap 'echo got-TERM >> {out}; exit 0' TERM; echo started >> {out}; "
                           f"while true; do sleep 0.1; done",
                           lifecycle={"preStop": {"exec": {"command": ["sh", "-c", f"echo prestop >> {out}"]}}})],
           terminationGracePeriodSeconds=20)
    kc.pod("stubborn", [sh("sleep 600")], terminationGracePeriodSeconds=3)
    kc.wait_running("graceful")
    kc.wait_running("stubborn")
    t = time.monotonic()
    kc.delete_pod("graceful")
    took = time.monotonic() - t
    assert open(out).read().split() == ["started", "prestop", "got-TERM"]
    assert took < 10                                        # it exited on SIGTERM, long before the grace period
    t = time.monotonic()
    kc.delete_pod("stubborn")                               # sh as pid 1 ignores SIGTERM: SIGKILL after 3 s
    took = time.monotonic() - t
    assert 2.5 <= took <= 12


def test_bad_image_and_config_error(kc):
    kc.pod("badimg", [{"name": "main", "image": "nosuch/image:1.0", "args": ["true"]}])
    p = kc.wait_pod("badimg", lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("state", {})
                    .get("waiting", {}).get("reason") == "ErrImagePull", 20, "ErrImagePull")
    w = cstatus(p, "main")["state"]["waiting"]
    assert "nosuch/image:1.0" in w["message"]
    assert p["status"]["phase"] == "Pending"
    kc.delete_pod("badimg")


def test_memory_limit_oomkills_and_cpu_quota(kc):
    kc.pod("hog", [sh("python3 -c \"x = bytearray(200 * 1024 * 1024); import time; time.sleep(60)\"",
                      resources={"limits": {"memory": "64Mi", "cpu": "250m"}})], restartPolicy="Never")
    p = kc.wait_pod("hog", lambda p: p["status"].get("phase") == "Failed", 30, "OOM kill")
    term = cstatus(p, "main")["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137
    kc.pod("cpu", [sh("sleep 600", resources={"limits": {"cpu": "250m", "memory": "32Mi"}})])
    p = kc.wait_running("cpu")
    cid = cstatus(p, "main")["containerID"].split("//")[1]
    base = f"/sys/fs/cgroup/cpu/{kc.cgroup_root}/pod{p['metadata']['uid']}/{cid}"
    assert open(base + "/cpu.cfs_quota_us").read().strip() == "25000"
    mem = f"/sys/fs/cgroup/memory/{kc.cgroup_root}/pod{p['metadata']['uid']}/{cid}/memory.limit_in_bytes"
    assert open(mem).read().strip() == str(32 * 1024 * 1024)
    assert p["status"]["qosClass"] == "Guaranteed"
    for n in ("hog", "cpu"):
        kc.delete_pod(n)


# -------------------------------------------------------- restarts and outages
def _runtime_containers(kc) -> dict:
    from kubelet.runtime.client import RuntimeClient
    rc = RuntimeClient(os.path.join(kc.root, "runtime", "runtime.sock"))
    return {c["id"]: c for c in rc.call("list_containers")["items"]}


def test_kubelet_restart_adopts_running_pods(kc):
    kc.pod("adopt", [sh("echo $$; sleep 600")])
    p = kc.wait_running("adopt")
    before = cstatus(p, "main")["containerID"]
    run = os.path.realpath(os.path.join(kc.root, "run"))
    assert [t for m, t in mounts.mounts() if m == run] == ["tmpfs"]      # the kubelet's run directory
    records = sorted(os.listdir(os.path.join(run, "pods", p["metadata"]["uid"])))
    kc.kubelet.stop()
    time.sleep(1)
    kc.start_kubelet()
    time.sleep(2)
    p = kc.wait_running("adopt")
    st = cstatus(p, "main")
    assert st["containerID"] == before and st["restartCount"] == 0
    # the restarted kubelet found its tmpfs (the records on it) and mounted no second one over it
    assert [t for m, t in mounts.mounts() if m == run] == ["tmpfs"]
    assert sorted(os.listdir(os.path.join(run, "pods", p["metadata"]["uid"]))) == records
    running = [c for c in _runtime_containers(kc).values() if c["name"] == "main" and c["state"] == "running"
               and c["labels"].get("pod-uid") == p["metadata"]["uid"]]
    assert len(running) == 1
    kc.delete_pod("adopt")


def test_apiserver_down_pods_keep_running_and_status_catches_up(kc):
    kc.pod("outage", [sh("sleep 600", name="long"), sh("sleep 3; exit 4", name="short")], restartPolicy="Never")
    p = kc.wait_running("outage", ready=False)
    ip = p["status"]["podIP"]
    kc.apiserver.stop()
    try:
        time.sleep(30)
        # still running on the node: the long container, and the pod's address answers on its network
        running = [c for c in _runtime_containers(kc).values() if c["labels"].get("pod-uid") == p["metadata"]["uid"]
                   and c["state"] == "running"]
        assert [c["name"] for c in running] == ["long"]
        r = subprocess.run(["nsenter", f"--net=/run/netns/{kc.node.ns}", sys.executable, "-c",
                            "import socket,sys; s=socket.socket(); s.settimeout(2); print(s.connect_ex((sys.argv[1], 9)))",
                            ip], capture_output=True, timeout=10, text=True)
        assert r.stdout.strip() == str(errno.ECONNREFUSED), r    # a RST from the pod: it is alive on the bridge
    finally:
        kc.apiserver.start()
        wait_until(lambda: _ready(kc), timeout=30, what="API server back")
    p = kc.wait_pod("outage", lambda p: cstatus(p, "short").get("state", {}).get("terminated", {}).get("exitCode") == 4,
                    30, "status catches up")
    assert "running" in cstatus(p, "long")["state"]
    kc.delete_pod("outage")


def _ready(kc) -> bool:
    import httpx
    try:
        return httpx.get(kc.url + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------- leftovers
def test_create_delete_cycles_leave_nothing_behind(kc):
    for i in range(200):
        kc.pod(f"cyc-{i}", [sh("sleep 600")], terminationGracePeriodSeconds=0)
        if i % 10 == 9:
            for j in range(i - 9, i + 1):
                kc.wait_running(f"cyc-{j}", ready=False, timeout=60)
            for j in range(i - 9, i + 1):
                kc.client.delete(R.PODS, f"cyc-{j}", "default")
    wait_until(lambda: not [p for p in kc.client.list(R.PODS, "default")["items"]
                            if p["metadata"]["name"].startswith("cyc-")], timeout=120, what="all cycles deleted")
    time.sleep(1)
    leftovers = [c for c in _runtime_containers(kc).values()]
    assert not [c for c in leftovers if c["labels"].get("container") == "main" and c["state"] == "running"]
    from tests.e2e.netns import nsrun
    links = nsrun(kc.node.ns, "ip", "-o", "link").stdout.decode()
    assert len(re.findall(r"veth[0-9a-f]{8}", links)) == len(_live_pod_sandboxes(kc))
    ipam = os.path.join(kc.root, "run", "cni", "ipam")
    leases = [f for _d, _s, files in os.walk(ipam) for f in files if re.match(r"^\d+\.\d+\.\d+\.\d+$", f)]
    assert len(leases) == len(_live_pod_sandboxes(kc))
    # the run directory (a tmpfs): hosts/resolv.conf and network records only for pods that still exist,
    # a cached CNI result only per live attachment
    pods_dir, cache_dir = (os.path.join(kc.root, "run", *p) for p in (("pods",), ("cni", "cache", "results")))
    existing = {p["metadata"]["uid"] for p in kc.client.list(R.PODS)["items"]}
    assert set(os.listdir(pods_dir)) <= existing
    assert len(os.listdir(cache_dir)) == len(_live_pod_sandboxes(kc))
    pod_cgroups = [d for d in os.listdir(f"/sys/fs/cgroup/memory/{kc.cgroup_root}") if d.startswith("pod")]
    assert len(pod_cgroups) == len(_live_pod_sandboxes(kc, any_network=True))
    ps = subprocess.run(["pgrep", "-f", "pause infinity"], capture_output=True, text=True).stdout.split()
    mine = [pid for pid in ps if _in_cgroup(pid, kc.cgroup_root)]
    assert len(mine) == len(_live_pod_sandboxes(kc, any_network=True))


def _live_pod_sandboxes(kc, any_network: bool = False) -> list:
    from kubelet.runtime.client import RuntimeClient
    rc = RuntimeClient(os.path.join(kc.root, "runtime", "runtime.sock"))
    return [s for s in rc.call("list_sandboxes")["items"] if s["state"] == "ready" and
            (any_network or s["network"] == "pod")]


def _in_cgroup(pid: str, root: str) -> bool:
    try:
        return root in open(f"/proc/{pid}/cgroup").read()
    except OSError:
        return False


# ------------------------------------------------------------- images, DNS
def _busybox_image(path: str) -> None:
    """A `docker save` tarball with Debian's busybox-static as the whole root filesystem."""
    import io
    import tarfile

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        t.add("/bin/busybox", arcname="bin/busybox")
        for applet in ("sh", "echo", "ls", "cat", "hostname", "sleep", "wget", "httpd", "ps"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            t.addfile(info)
        for d in ("etc", "tmp", "www"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            t.addfile(info)
        data = b"hello from busybox\n"
        info = tarfile.TarInfo("www/index.html")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    config = json.dumps({"config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/www"}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["busybox:e2e"], "Layers": ["l/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in (("config.json", config), ("l/layer.tar", layer.getvalue()), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_image_imported_from_a_tarball_runs(kc, tmp_path):
    need(os.path.exists("/bin/busybox"), "busybox-static is not installed (apt-get install busybox-static)")
    tarball = str(tmp_path / "busybox.tar")
    _busybox_image(tarball)
    out = subprocess.run([sys.executable, "-m", "deploy.cli", "image", "--root-dir", kc.root, "import", tarball],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "imported busybox:e2e" in out.stdout, out
    kc.pod("bb", [{"name": "main", "image": "busybox:e2e",
                   "command": ["sh", "-c", "ls /; pwd; cat index.html; echo > /www/written; httpd -f -p 8080"]}])
    p = kc.wait_running("bb")
    wait_until(lambda: "hello from busybox" in logs(kc, "bb"), timeout=15, what="busybox logs")
    text = logs(kc, "bb")
    assert "/www" in text and "bin" in text.split() and "usr" not in text.split()   # the image's root, not the host's
    r = kc.exec_in_pod(p, sys.executable, "-c", "import urllib.request as u; "
                       f"print(u.urlopen('http://{p['status']['podIP']}:8080/index.html', timeout=5).read().decode())")
    assert "hello from busybox" in r.stdout.decode()
    kc.delete_pod("bb")
    # the container wrote into its own overlay, never into the image
    img_root = os.path.join(kc.root, "runtime", "images")
    assert not [f for d, _s, files in os.walk(img_root) for f in files if f == "written"]


def test_cluster_dns_from_a_real_pod(kc, tmp_path):
    from tests.e2e.dns_fixtures import ClusterDNS

    dns = ClusterDNS(kc, str(tmp_path))
    dns.start()
    try:
        kc.client.create(R.SERVICES, {"metadata": {"name": "web", "namespace": "default"},
                                      "spec": {"selector": {"app": "dnsweb"}, "ports": [{"port": 80,
                                                                                         "targetPort": 8080}]}})
        kc.pod("dnsweb", [sh("python3 -m http.server 8080", readinessProbe={"tcpSocket": {"port": 8080},
                                                                             "periodSeconds": 1})],
               metadata={"labels": {"app": "dnsweb"}})
        kc.wait_running("dnsweb")
        kc.pod("dnsclient", [sh("for i in $(seq 1 20); do getent hosts web && break; sleep 0.5; done; "
                                "getent hosts web.default; getent hosts web.default.svc.cluster.local; "
                                "for i in $(seq 1 20); do python3 -c \"import urllib.request as u; print('http', "
                                "u.urlopen('http://web/', timeout=5).status)\" && break; sleep 0.5; done; "
                                "sleep 600")])
        kc.wait_running("dnsclient")
        vip = kc.client.get(R.SERVICES, "web", "default")["spec"]["clusterIP"]
        wait_until(lambda: "http 200" in logs(kc, "dnsclient"), timeout=45, what="HTTP by service name")
        text = logs(kc, "dnsclient")
        assert text.count(vip) >= 3 and "web.default.svc.cluster.local" in text
    finally:
        for n in ("dnsclient", "dnsweb"):
            try:
                kc.delete_pod(n)
            except Exception:  # noqa: BLE001
                pass
        try:
            kc.client.delete(R.SERVICES, "web", "default")
        except Exception:  # noqa: BLE001
            pass
        dns.stop()


def test_pkctl_logs_and_exec_against_the_real_kubelet(kc):
    kc.pod("pk", [sh("for i in 1 2 3; do echo line $i; done; sleep 600")])
    kc.wait_running("pk")
    wait_until(lambda: "line 3" in logs(kc, "pk"), timeout=10, what="logs")

    def pkctl(*args, input=None):
        return subprocess.run([sys.executable, "-m", "pkctl.main", "-s", kc.url, *args], capture_output=True,
                              text=True, timeout=60, input=input)
    r = pkctl("logs", "pk", "--tail", "2")
    assert r.returncode == 0 and r.stdout == "line 2\nline 3\n", r
    r = pkctl("exec", "pk", "--", "sh", "-c", "echo out; echo err >&2; hostname; exit 3")
    assert r.returncode == 3 and "out\npk\n" in r.stdout and "err" in r.stderr, r
    r = pkctl("exec", "-i", "pk", "--", "cat", input="through stdin\n")
    assert r.returncode == 0 and r.stdout == "through stdin\n", r
    r = pkctl("logs", "nosuchpod")
    assert r.returncode != 0 and 'pods "nosuchpod" not found' in r.stderr
    kc.delete_pod("pk")
