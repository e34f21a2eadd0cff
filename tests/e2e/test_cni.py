"""CNI end to end: the kubelet's ``CNI`` class plugging real pod namespaces into a real node bridge.

Every test gets a node namespace ``pk-<tag>-cninode`` with no link to the
machine at all, and pod namespaces ``pk-<tag>-a``/``-b``. The CNI calls run
inside the node namespace (a small Python helper started with ``ip netns
exec``), because that is where the kubelet runs and where the bridge, the
veths and any iptables rules (portmap) must go - never in the machine's own
namespace. Traffic only flows between the pod namespaces made here.

The same ``CNI`` class drives our ``pocketkube-bridge`` (in-process and as
the executable from ``CNI_PATH``) and the reference plugins from Debian's
containernetworking-plugins (``bridge`` + ``host-local``, ``loopback``,
``portmap``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from kubelet.cni.invoke import install_plugin, write_default_conflist
from kubelet.cni.plugin import host_veth_name
from tests.conftest import need
from tests.e2e.netns import CLIENT, ECHO_SERVER, Teardown, in_ns, kill_proc, nsrun, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF_BIN = "/usr/lib/cni"

HELPER = r"""
import json, sys
from kubelet.cni.invoke import CNI
from kubelet.cni.types import CNIError
from concurrent.futures import ThreadPoolExecutor
req = json.loads(sys.argv[1])
cni = CNI(req["conf_dir"], req["bin_dirs"], req["cache_dir"], in_process=req.get("in_process", True))
def do(op):
    kind = op.pop("op")
    try:
        if kind == "add":
            return {"result": cni.add(**op).to_dict()}
        getattr(cni, kind)(**op)
        return {}
    except CNIError as e:
        return {"error": e.to_dict()}
if req.get("parallel"):  # the kubelet's worker threads
    with ThreadPoolExecutor(len(req["ops"])) as ex:
        out = list(ex.map(do, req["ops"]))
else:
    out = [do(op) for op in req["ops"]]
print(json.dumps(out))
"""


class World:
    """A node namespace, pod namespaces, and the CNI directories of one test."""

    def __init__(self, tmp_path):
        self.tag = uuid.uuid4().hex[:6]
        self.node = f"pk-{self.tag}-cninode"
        self.tmp = tmp_path
        self.conf_dir = str(tmp_path / "net.d")
        self.bin_dir = str(tmp_path / "bin")
        self.cache_dir = str(tmp_path / "cache")
        self.ipam_dir = str(tmp_path / "ipam")
        self.teardown = Teardown()
        self.pods: dict[str, str] = {}

    def setup(self) -> "World":
        run("ip", "netns", "add", self.node)
        self.teardown.add(f"netns {self.node}", lambda: run("ip", "netns", "del", self.node, check=False))
        nsrun(self.node, "ip", "link", "set", "lo", "up")
        self.add_pods("a", "b")
        return self

    def add_pods(self, *names: str) -> None:
        for name in names:
            ns = f"pk-{self.tag}-{name}"
            run("ip", "netns", "add", ns)
            self.teardown.add(f"netns {ns}", lambda ns=ns: run("ip", "netns", "del", ns, check=False))
            self.pods[name] = ns

    def path(self, pod: str) -> str:
        return f"/var/run/netns/{self.pods[pod]}"

    def cni(self, *ops: dict, in_process: bool = True, bin_dirs: list[str] | None = None,
            parallel: bool = False) -> list[dict]:
        """Run CNI operations inside the node namespace (from threads if ``parallel``); one answer per op."""
        req = {"conf_dir": self.conf_dir, "bin_dirs": bin_dirs or [self.bin_dir, REF_BIN],
               "cache_dir": self.cache_dir, "in_process": in_process, "ops": list(ops), "parallel": parallel}
        p = subprocess.run(in_ns(self.node, sys.executable, "-c", HELPER, json.dumps(req)), cwd=ROOT,
                           capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        return json.loads(p.stdout)

    def add(self, pod: str, cid: str, **kw) -> dict:
        (out,) = self.cni({"op": "add", "container_id": cid, "netns_path": self.path(pod),
                           "args": {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": pod,
                                    "K8S_POD_INFRA_CONTAINER_ID": cid}, **kw.pop("op_args", {})}, **kw)
        assert "error" not in out, out
        return out["result"]

    def links(self, ns: str | None = None) -> dict[str, dict]:
        p = nsrun(ns or self.node, "ip", "-j", "-d", "link", "show")
        return {link["ifname"]: link for link in json.loads(p.stdout)}

    def addrs(self, ns: str) -> list[str]:
        p = nsrun(ns, "ip", "-j", "-4", "addr", "show")
        return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(p.stdout) for a in link.get("addr_info", [])]

    def serve(self, pod: str, port: int = 8080) -> None:
        """An echo server in the pod that answers with its name (bounded lifetime, killed on teardown)."""
        proc = subprocess.Popen(in_ns(self.pods[pod], sys.executable, "-c", ECHO_SERVER, pod, str(port), "0", "120"),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.teardown.add(f"server {pod}", lambda: kill_proc(proc))
        assert b"ready" in (proc.stdout.readline() if proc.stdout else b"")

    def connect(self, pod: str, host: str, port: int = 8080) -> dict:
        p = run(*in_ns(self.pods[pod], sys.executable, "-c", CLIENT, host, str(port), "3", "tcp", "2", "20"),
                timeout=60)
        return json.loads(p.stdout)

    def destroy(self) -> None:
        errors = self.teardown.run()
        assert not errors, errors
        left = run("ip", "netns", "list").stdout.decode()
        assert f"pk-{self.tag}-" not in left, left


@pytest.fixture
def world(tmp_path):
    need(os.geteuid() == 0, "needs root (network namespaces, veths, bridges)")
    need(shutil.which("ip") is not None, "ip not found (apt-get install iproute2)")
    w = World(tmp_path)
    try:
        w.setup()
        yield w
    finally:
        w.destroy()


def pod_ip(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


def test_pocketkube_bridge_in_process_and_as_executable(world):
    write_default_conflist(world.conf_dir, "10.244.1.0/24", data_dir=world.ipam_dir)
    install_plugin(world.bin_dir)
    a = world.add("a", "cid-a")                      # in-process
    b = world.add("b", "cid-b", in_process=False)    # the pocketkube-bridge executable found through CNI_PATH
    ip_a, ip_b = pod_ip(a), pod_ip(b)
    assert {ip_a, ip_b} == {"10.244.1.2", "10.244.1.3"}
    assert a["interfaces"][2] == {"name": "eth0", "mac": a["interfaces"][2]["mac"], "sandbox": world.path("a")}

    links = world.links()
    assert links["cni0"]["operstate"] == "UP"
    assert "10.244.1.1/24" in world.addrs(world.node)
    for result in (a, b):
        veth = result["interfaces"][1]["name"]
        assert veth.startswith("veth") and links[veth]["master"] == "cni0"
        assert links[veth]["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert nsrun(world.node, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == b"1"
    assert f"{ip_a}/24" in world.addrs(world.pods["a"])
    assert b"default via 10.244.1.1" in nsrun(world.pods["a"], "ip", "route").stdout

    # Pod to pod across the bridge, and pod to itself.
    world.serve("b")
    got = world.connect("a", ip_b)
    assert got["counts"] == {"b": 3} and got["sources"] == {ip_a: 3}, got
    assert world.connect("b", ip_b)["counts"] == {"b": 3}

    # Both ways of running the plugin see the same state: CHECK passes either way, ADD is idempotent.
    assert world.cni({"op": "check", "container_id": "cid-a", "netns_path": world.path("a")},
                     {"op": "check", "container_id": "cid-b", "netns_path": world.path("b")},
                     in_process=False) == [{}, {}]
    assert pod_ip(world.add("a", "cid-a")) == ip_a
    leases = sorted(f for f in os.listdir(os.path.join(world.ipam_dir, "networks", "pocketkube")) if f[0].isdigit())
    assert leases == sorted([ip_a, ip_b])

    # DEL twice: in-process for a, executable for b; everything is gone afterwards.
    dels = [{"op": "delete", "container_id": "cid-a", "netns_path": world.path("a")}] * 2
    assert world.cni(*dels) == [{}, {}]
    dels = [{"op": "delete", "container_id": "cid-b", "netns_path": world.path("b")}] * 2
    assert world.cni(*dels, in_process=False) == [{}, {}]
    assert os.listdir(os.path.join(world.ipam_dir, "networks", "pocketkube")) == ["last_reserved_ip.0"]
    assert [n for n in world.links() if n.startswith("veth")] == []
    assert "eth0" not in world.links(world.pods["a"]) and "eth0" not in world.links(world.pods["b"])
    assert os.listdir(os.path.join(world.cache_dir, "results")) == []

    # DEL after the pod namespace itself is gone (a crashed sandbox) is still fine.
    world.add("a", "cid-c")
    run("ip", "netns", "del", world.pods["a"])
    assert world.cni({"op": "delete", "container_id": "cid-c", "netns_path": world.path("a")}) == [{}]
    assert [n for n in world.links() if n.startswith("veth")] == []


def test_reference_plugins_behind_the_same_cni_class(world):
    need(all(os.access(os.path.join(REF_BIN, p), os.X_OK) for p in ("bridge", "host-local", "loopback", "portmap")),
         f"reference CNI plugins missing in {REF_BIN} (apt-get install containernetworking-plugins)")
    need(shutil.which("iptables") is not None, "iptables not found (portmap needs it)")
    os.makedirs(world.conf_dir)
    with open(os.path.join(world.conf_dir, "10-ref.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "refnet", "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "subnet": "10.244.2.0/24", "dataDir": world.ipam_dir,
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "loopback"},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ]}, f)
    mapping = {"portMappings": [{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}]}
    a = world.add("a", "ref-a", bin_dirs=[REF_BIN])
    b = world.add("b", "ref-b", bin_dirs=[REF_BIN], op_args={"runtime_config": mapping})
    ip_a, ip_b = pod_ip(a), pod_ip(b)
    assert ip_a != ip_b and ip_a.startswith("10.244.2.") and ip_b.startswith("10.244.2.")

    links = world.links()
    host_veths = [i["name"] for i in b["interfaces"] if i["name"].startswith("veth")]
    assert host_veths and all(links[v]["linkinfo"]["info_slave_data"]["hairpin"] is True for v in host_veths)
    assert world.links(world.pods["a"])["lo"]["operstate"] == "UNKNOWN"  # loopback plugin: lo is up
    assert "UP" in world.links(world.pods["a"])["lo"]["flags"]

    world.serve("b")
    got = world.connect("a", ip_b)
    assert got["counts"] == {"b": 3}, got
    # portmap: the node's gateway address, host port 18080, reaches pod b's 8080.
    got = world.connect("a", "10.244.2.1", 18080)
    assert got["counts"] == {"b": 3}, got
    assert "CNI-HOSTPORT-DNAT" in nsrun(world.node, "iptables-save", "-t", "nat").stdout.decode()

    for _ in range(2):
        assert world.cni({"op": "delete", "container_id": "ref-a", "netns_path": world.path("a")},
                         {"op": "delete", "container_id": "ref-b", "netns_path": world.path("b")},
                         bin_dirs=[REF_BIN]) == [{}, {}]
    leases = [f for f in os.listdir(os.path.join(world.ipam_dir, "refnet")) if f[0].isdigit()]
    assert leases == []
    assert [n for n in world.links() if n.startswith("veth")] == []
    assert "-A CNI-DN-" not in nsrun(world.node, "iptables-save", "-t", "nat").stdout.decode()


def test_failures_are_clear_and_leave_nothing_behind(world):
    # An exhausted subnet: a /30 has one address besides the gateway.
    write_default_conflist(world.conf_dir, "10.244.3.0/30", data_dir=world.ipam_dir)
    world.add("a", "full-a")
    (out,) = world.cni({"op": "add", "container_id": "full-b", "netns_path": world.path("b")})
    assert out["error"]["code"] == 11 and "no IP addresses available" in out["error"]["msg"], out
    assert [n for n in world.links() if n.startswith("veth")] == [host_veth_name("full-a")]
    assert "eth0" not in world.links(world.pods["b"])

    # A chain whose second plugin does not exist: the first one's work is rolled back.
    with open(os.path.join(world.conf_dir, "00-broken.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "broken", "plugins": [
            {"type": "pocketkube-bridge", "bridge": "cni9",
             "ipam": {"type": "host-local", "subnet": "10.244.4.0/24", "dataDir": world.ipam_dir}},
            {"type": "no-such-plugin"}]}, f)
    (out,) = world.cni({"op": "add", "container_id": "broken-b", "netns_path": world.path("b")})
    err = out["error"]
    assert err["code"] == 902 and '"no-such-plugin"' in err["msg"] and REF_BIN in err["details"], err
    assert [n for n in world.links() if n.startswith("veth")] == [host_veth_name("full-a")]
    assert "eth0" not in world.links(world.pods["b"])
    assert [f for f in os.listdir(os.path.join(world.ipam_dir, "networks", "broken")) if f[0].isdigit()] == []
    assert not os.path.exists(os.path.join(world.cache_dir, "results", "broken-broken-b-eth0"))


def test_concurrent_adds_and_deletes_from_threads(world):
    names = [f"t{i}" for i in range(6)]
    world.add_pods(*names)
    write_default_conflist(world.conf_dir, "10.244.5.0/24", data_dir=world.ipam_dir)
    adds = [{"op": "add", "container_id": f"cid-{n}", "netns_path": world.path(n)} for n in names]
    out = world.cni(*adds, parallel=True)
    assert all("result" in o for o in out), out
    ips = [pod_ip(o["result"]) for o in out]
    assert len(set(ips)) == 6
    links = world.links()
    assert sorted(n for n in links if n.startswith("veth")) == sorted(host_veth_name(f"cid-{n}") for n in names)
    assert len([n for n in links if n == "cni0"]) == 1
    world.serve("t0")
    assert world.connect("t5", ips[0])["counts"] == {"t0": 3}
    dels = [{"op": "delete", "container_id": f"cid-{n}", "netns_path": world.path(n)} for n in names]
    assert world.cni(*dels, parallel=True) == [{}] * 6
    assert [n for n in world.links() if n.startswith("veth")] == []
    assert os.listdir(os.path.join(world.ipam_dir, "networks", "pocketkube")) == ["last_reserved_ip.0"]


def test_pause_process_namespace_by_proc_path(world):
    """The kubelet names a sandbox's namespace /proc/<pause pid>/ns/net; ADD and DEL work with that form."""
    need(shutil.which("unshare") is not None, "unshare not found (util-linux)")
    write_default_conflist(world.conf_dir, "10.244.6.0/24", data_dir=world.ipam_dir)
    pause = subprocess.Popen(["unshare", "--net", "sleep", "120"])  # unshare execs sleep: same pid
    world.teardown.add("pause", lambda: kill_proc(pause))
    path = f"/proc/{pause.pid}/ns/net"
    deadline = time.monotonic() + 10
    while os.readlink(path) == os.readlink("/proc/self/ns/net") and time.monotonic() < deadline:
        time.sleep(0.02)  # until unshare has switched namespaces
    (out,) = world.cni({"op": "add", "container_id": "pause1", "netns_path": path})
    assert pod_ip(out["result"]) == "10.244.6.2", out
    p = run("nsenter", f"--net={path}", "ip", "-4", "-o", "addr", "show", "eth0")
    assert b"10.244.6.2/24" in p.stdout
    assert world.cni({"op": "delete", "container_id": "pause1", "netns_path": path}) == [{}]
    kill_proc(pause)
    assert world.cni({"op": "delete", "container_id": "pause1", "netns_path": path}) == [{}]  # process gone
    assert [n for n in world.links() if n.startswith("veth")] == []
