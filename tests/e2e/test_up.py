"""e2e: `pocketkube up` / `status` / `down` on a clean data directory, used with stock kubectl (issue 7).

Runs the real launcher as a user would, with three test-only flags that keep
it apart from a user's cluster and from concurrent test clusters (docs/design.md
safety rules): a free node network picked from 100.64.0.0/16 (never the
default 100.64.0.0/24), a free API port, and ``--no-host-routes`` (no
routes to 10.244/10.96 in the machine's namespace; the service is fetched
from inside the node namespace instead). ``--egress`` is never used here.

One test walks the whole life cycle (one node, the README's path; the
multi-node cluster is tests/e2e/test_multinode.py's): up -> kubectl 1.33 and 1.27 see the
node Ready -> the sample web manifest runs and answers through its cluster
IP -> a pod resolves the service by name through cluster DNS -> status ->
down leaves nothing (namespace, link, processes, pause processes, cgroups)
-> a second down is a no-op -> up again keeps the stored pod, which runs
again -> down --purge deletes the data directory. Teardown always runs
`down --purge` and checks that no namespace of ours is left.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from deploy.state import load_state
from tests.conftest import free_port, need
from tests.e2e.netns import have_root_tools, pick_link_subnet, wait_until

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB = os.path.join(ROOT, "deploy", "examples", "web.yaml")

DNS_CLIENT = """
apiVersion: v1
kind: Pod
metadata:
  name: dnsclient
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: pocketkube/host
    command:
    - sh
    - -c
    - >-
      for i in $(seq 1 30); do getent hosts web.default.svc.cluster.local && break; sleep 1; done;
      for i in $(seq 1 30); do python3 -c "import urllib.request as u; print('http', u.urlopen('http://web/', timeout=3).status)" 2>/dev/null && break; sleep 1; done;
      sleep 3600
"""


def pocketkube(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def kubectl_bin(minor: int) -> str:
    from tests.integration.kubectlutil import kubectl_binary

    return kubectl_binary(minor)


class Kubectl:
    def __init__(self, minor: int, kubeconfig: str, cache: str):
        self.bin = kubectl_bin(minor)
        self.kubeconfig = kubeconfig
        self.cache = cache

    def __call__(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60):
        env = dict(os.environ, HOME=self.cache)
        env.pop("KUBECONFIG", None)
        p = subprocess.run([self.bin, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache}", *args],
                           input=input, capture_output=True, text=True, timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p


def alive(pid: int, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        return False
    return marker in cmd


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout


def cgroup_dirs(root: str) -> list[str]:
    out = []
    for base in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified",
                 "/sys/fs/cgroup"):
        p = os.path.join(base, root)
        if os.path.isdir(p):
            out.append(p)
    return out


def host_routes_free() -> bool:
    """No route or address of the machine overlaps the cluster's pod and service ranges (true on a clean CI machine)."""
    import ipaddress

    from tests.e2e.netns import used_networks

    wanted = [ipaddress.ip_network("10.244.0.0/16"), ipaddress.ip_network("10.96.0.0/12")]
    return not any(w.overlaps(u) for w in wanted for u in used_networks())


def fetch_from_host(url: str) -> str:
    import urllib.request

    try:
        return str(urllib.request.urlopen(url, timeout=3).status)
    except Exception as e:  # noqa: BLE001
        return f"error {e}"


def fetch_in_node(netns: str, url: str) -> str:
    code = ("import urllib.request as u\n"
            f"try:\n    print(u.urlopen({url!r}, timeout=3).status)\n"
            "except Exception as e:\n    print('error', e)\n")
    p = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=20)
    return p.stdout.strip() or p.stderr.strip()


@pytest.fixture
def up_env(tmp_path):
    ok, why = have_root_tools("iptables-restore", "iptables-save", "nsenter", "openssl")
    need(ok, why)
    data_dir = str(tmp_path / "pk")
    net = pick_link_subnet()                    # a free /29 in 100.64.0.0/16, never 100.64.0.0/24
    args = ["--data-dir", data_dir, "--node-network", str(net), "--port", str(free_port())]
    if not host_routes_free():
        args.append("--no-host-routes")    # another cluster on this machine has them: fetch from the node instead
    try:
        yield data_dir, args, str(tmp_path)
    finally:
        st = None
        try:
            st = load_state(data_dir)
        except Exception:  # noqa: BLE001
            pass
        r = pocketkube("down", "--data-dir", data_dir, "--purge")
        assert r.returncode == 0, r.stdout + r.stderr
        if st:
            assert f"pk-{st.id}-" not in netns_list()


def test_up_kubectl_web_dns_status_down_up_again(up_env):
    data_dir, args, tmp = up_env
    kubeconfig = os.path.join(data_dir, "kubeconfig")

    # ---- up
    t = time.monotonic()
    r = pocketkube("up", *args)
    took = time.monotonic() - t
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"export KUBECONFIG={kubeconfig}" in r.stdout
    assert "Ready" in r.stdout and "DNS answering" in r.stdout
    print(f"pocketkube up took {took:.1f}s")
    st = load_state(data_dir)
    assert st.netns in netns_list() and st.fabric_ns in netns_list()
    assert st.netns == f"pk-{st.id}-node-1"
    k33 = Kubectl(33, kubeconfig, os.path.join(tmp, "kc33"))
    pod_cidr = k33("get", "node", "node-1", "-o", "jsonpath={.spec.podCIDR}").stdout.strip()
    assert pod_cidr.startswith("10.244."), pod_cidr           # from the controller-manager's node IPAM
    # host routes only when asked for (the README's way: the host shell reaches pods and services);
    # never a rule in the machine's namespace
    host_routes = "--no-host-routes" not in args
    routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True, timeout=10).stdout
    assert (f"10.96.0.0/12 via {st.node_ip}" in routes) == host_routes, routes
    assert (f"{pod_cidr} via {st.node_ip}" in routes) == host_routes, routes
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=20).stdout
    assert f"pocketkube pk-{st.id}" not in saved
    # a second up says it is running
    r2 = pocketkube("up", *args)
    assert r2.returncode == 0 and "already running" in r2.stdout, r2.stdout + r2.stderr

    # ---- stock kubectl, two versions
    k27 = Kubectl(27, kubeconfig, os.path.join(tmp, "kc27"))
    for k in (k33, k27):
        out = k("get", "nodes").stdout
        assert "node-1" in out and " Ready " in out, out

    # ---- the sample web manifest, reached through its cluster IP from the node namespace
    k33("apply", "-f", WEB)
    k27("apply", "-f", "-", input=DNS_CLIENT)

    def phase(name: str) -> str:
        return k33("get", "pod", name, "-o", "jsonpath={.status.phase}", check=False).stdout

    wait_until(lambda: phase("web") == "Running", timeout=90, interval=0.5, what="web Running")
    vip = k33("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    assert vip.startswith("10.")
    wait_until(lambda: fetch_in_node(st.netns, f"http://{vip}/") == "200", timeout=60, interval=0.5,
               what=f"HTTP 200 from http://{vip}/ in the node namespace")
    if host_routes:                       # the README's promise: from the host shell, through the host routes
        wait_until(lambda: fetch_from_host(f"http://{vip}/") == "200", timeout=30, interval=0.5,
                   what=f"HTTP 200 from http://{vip}/ from the host")

    # ---- DNS from a pod: the service name resolves to the cluster IP and serves
    def client_logs() -> str:
        return k33("logs", "dnsclient", check=False).stdout

    wait_until(lambda: "http 200" in client_logs(), timeout=90, interval=1, what="dnsclient: http 200 by name")
    text = client_logs()
    assert vip in text and "web.default.svc.cluster.local" in text, text

    # ---- status
    r = pocketkube("status", "--data-dir", data_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("apiserver", "controller-manager", "scheduler", "node-1/kubelet", "node-1/proxy", "node-1/netd",
                 "dns", "node-1/runtime", "supervisor"):
        assert any(line.split()[:3] == [name, line.split()[1], "running"] for line in r.stdout.splitlines()
                   if line.split()), (name, r.stdout)
    assert f"node node-1 ({st.node_ip}): Ready, podCIDR {pod_cidr}, network up" in r.stdout, r.stdout
    assert "pods: 2" in r.stdout and "https://127.0.0.1" in r.stdout

    # ---- no supervisor and the API server kill -9'd: `up` starts just what is missing
    marker = data_dir + "/"
    run = os.path.join(data_dir, "run")

    def pid_of(key: str) -> int:
        with open(os.path.join(run, f"{key}.pid")) as fh:
            return int(fh.read().split()[0])
    others = {k: pid_of(k) for k in ("controller-manager", "scheduler", "node-1/kubelet", "node-1/proxy",
                                      "node-1/netd", "dns")}
    sup = pid_of("supervisor")
    os.kill(sup, 15)
    wait_until(lambda: not alive(sup, marker), timeout=10, what="the supervisor stopped")
    api = pid_of("apiserver")
    os.kill(api, 9)
    wait_until(lambda: not alive(api, marker), timeout=10, what="the API server gone")
    r = pocketkube("status", "--data-dir", data_dir)
    assert r.returncode == 1 and "not running" in r.stdout, r.stdout
    r = pocketkube("up", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "partly running; starting what is missing (apiserver, supervisor)" in r.stdout, r.stdout
    assert alive(pid_of("apiserver"), marker) and alive(pid_of("supervisor"), marker)
    assert {k: pid_of(k) for k in others} == others and all(alive(p, marker) for p in others.values())
    wait_until(lambda: phase("web") == "Running", timeout=30, interval=0.5, what="web still Running")

    # ---- down leaves nothing behind
    pids = {}
    for d, _dirs, files in os.walk(os.path.join(data_dir, "run")):
        for f in files:
            if f.endswith(".pid"):
                with open(os.path.join(d, f)) as fh:
                    pids[os.path.join(d, f)] = int(fh.read().split()[0])
    assert len(pids) == 8, pids                 # 7 components + the supervisor
    kubelet_root = os.path.join(data_dir, "nodes", "node-1", "kubelet")
    with open(os.path.join(kubelet_root, "runtime", "runtime.pid")) as fh:
        pids["runtime"] = int(fh.read().split()[0])
    from kubelet.runtime.client import RuntimeClient

    sandboxes = RuntimeClient(os.path.join(kubelet_root, "runtime", "runtime.sock")).call("list_sandboxes")["items"]
    pause_pids = [sb["pid"] for sb in sandboxes if sb.get("pid")]
    assert len(pause_pids) >= 2
    assert all(alive(p, marker) for p in pids.values()), pids
    assert cgroup_dirs(st.cgroup_root)
    from nodeutil.mounts import mounts
    run_dir = os.path.realpath(os.path.join(kubelet_root, "run"))
    assert [t for m, t in mounts() if m == run_dir] == ["tmpfs"]      # the kubelet's run directory

    r = pocketkube("down", "--data-dir", data_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"pk-{st.id}-" not in netns_list()
    assert subprocess.run(["ip", "link", "show", "dev", st.host_if], capture_output=True, timeout=10).returncode != 0
    assert not [n for n, p in pids.items() if alive(p, marker)]
    assert not [p for p in pause_pids if os.path.exists(f"/proc/{p}")
                and "Z" not in open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[:1]]
    assert cgroup_dirs(st.cgroup_root) == []
    assert [m for m, _t in mounts() if m == run_dir] == []             # unmounted by down
    routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True, timeout=10).stdout
    assert f"via {st.node_ip}" not in routes                         # host routes gone with the link
    assert os.path.exists(os.path.join(data_dir, "data"))            # stored objects kept

    r = pocketkube("down", "--data-dir", data_dir)
    assert r.returncode == 0 and "nothing to do" in r.stdout, r.stdout + r.stderr

    # ---- up again: the web pod is still in the API and runs again
    r = pocketkube("up", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "web" in k33("get", "pods", "-o", "name").stdout
    wait_until(lambda: phase("web") == "Running", timeout=90, interval=0.5, what="web Running again")
    wait_until(lambda: fetch_in_node(st.netns, f"http://{vip}/") == "200", timeout=60, interval=0.5,
               what="HTTP 200 again after up")

    # ---- down --purge removes the data directory too
    r = pocketkube("down", "--data-dir", data_dir, "--purge")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not os.path.exists(data_dir)
    assert st.netns not in netns_list()


def test_up_refuses_a_busy_port_and_changes_nothing(tmp_path):
    import socket

    ok, why = have_root_tools("iptables-restore", "nsenter", "openssl")
    need(ok, why)
    data_dir = str(tmp_path / "pk")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = pocketkube("up", "--data-dir", data_dir, "--node-network", str(pick_link_subnet()), "--port", str(port),
                       "--no-host-routes")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"port {port}" in r.stdout and "nothing was changed" in r.stdout
    assert not os.path.exists(os.path.join(data_dir, "state.json"))
    from deploy.state import Settings

    assert Settings(data_dir=data_dir).netns not in netns_list()


def test_dry_run_egress_only_prints(tmp_path):
    """--egress is only ever computed in tests: the dry run prints the host rules and applies nothing."""
    ok, why = have_root_tools("iptables-restore", "nsenter", "openssl")
    need(ok, why)
    data_dir = str(tmp_path / "pk")
    before = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=20).stdout
    r = pocketkube("up", "--data-dir", data_dir, "--node-network", str(pick_link_subnet()), "--port",
                   str(free_port()), "--no-host-routes", "--egress", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MASQUERADE" in r.stdout and "ip_forward=1" in r.stdout
    from deploy.state import Settings

    s = Settings(data_dir=data_dir)
    assert s.netns not in netns_list() and not os.path.exists(os.path.join(data_dir, "state.json"))
    assert before.count(f"pocketkube pk-{s.id}") == 0
    after = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=20).stdout
    assert f"pocketkube pk-{s.id}" not in after
