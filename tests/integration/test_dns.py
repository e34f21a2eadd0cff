"""Cluster DNS as a real process against a real API server, queried by dnspython and by dig.

The DNS server listens on 127.0.0.1 on a free high port (not 53) and
registers 127.0.0.1 in kube-system/kube-dns. A controller-manager runs too,
to show that the endpoints controller leaves the selector-less kube-dns
Endpoints (and the hand-written Endpoints of the test's headless service)
alone. There is no kubelet yet: pods and Endpoints are written by the test.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import httpx
import pytest
from dnslib import RR, DNSRecord

from api import resources as R
from client.errors import NotFound
from client.rest import Client
from tests.conftest import ApiServer, free_port, need

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_udp_tcp_port() -> int:
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


class DNSProc:
    """One `pocketkube dns` process (run as ``python -m addons.dns.main``) with its log."""

    def __init__(self, server_url: str, log_path: str, *extra: str):
        self.port = free_udp_tcp_port()
        self.health_port = free_port()
        self.log_path = log_path
        self.args = [sys.executable, "-m", "addons.dns.main", "--server", server_url,
                     "--listen", f"127.0.0.1:{self.port}", "--health-port", str(self.health_port),
                     "--log-level", "debug", *extra]
        self.proc: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> "DNSProc":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dns exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                r = httpx.get(f"http://127.0.0.1:{self.health_port}/ready", timeout=1)
                if r.status_code == 200 or not wait_ready:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("dns not ready: " + self.log()[-2000:])

    def health(self, path: str) -> int:
        return httpx.get(f"http://127.0.0.1:{self.health_port}{path}", timeout=2).status_code

    def resolver(self) -> dns.resolver.Resolver:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.port
        r.lifetime = 2.0
        r.cache = None
        return r

    def query(self, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 2.0) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype)
        fn = dns.query.tcp if tcp else dns.query.udp
        return fn(q, "127.0.0.1", port=self.port, timeout=timeout)

    def dig(self, *args: str) -> str:
        need(shutil.which("dig") is not None, "dig not found (apt-get install dnsutils)")
        p = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.port), "+time=2", "+tries=1", *args],
                           capture_output=True, text=True, timeout=20)
        return p.stdout

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


class Proc:
    def __init__(self, args, log_path):
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dns")
    server = ApiServer(str(tmp)).start()
    cm = Proc([sys.executable, "-m", "deploy.cli", "controller-manager", "--server", server.url],
              str(tmp / "controller-manager.log"))
    d = DNSProc(server.url, str(tmp / "dns.log"))
    client = Client(server=server.url)
    try:
        d.start()
        yield server, d, client
    finally:
        client.close()
        d.stop()
        cm.stop()
        server.stop()


def make_service(client, name, ns="default", **spec):
    body = {"metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}}
    return client.create(R.SERVICES, body)


def make_endpoints(client, name, ips, ns="default", hostnames=None):
    addrs = [{"ip": ip, **({"hostname": hostnames[i]} if hostnames and hostnames[i] else {})}
             for i, ip in enumerate(ips)]
    return client.create(R.ENDPOINTS, {"metadata": {"name": name, "namespace": ns},
                                       "subsets": [{"addresses": addrs,
                                                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})


def wait_for(fn, timeout: float, interval: float = 0.01, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")


def a_records(d: DNSProc, name: str) -> list[str] | str:
    m = d.query(name)
    if m.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(m.rcode())
    return sorted(rr.address for rrset in m.answer for rr in rrset)


# ------------------------------------------------------------------ tests
def test_health_and_ready(env):
    _, d, _ = env
    assert d.health("/health") == 200 and d.health("/ready") == 200
    assert "pocketkube_dns_udp_queries_total" in httpx.get(f"http://127.0.0.1:{d.health_port}/metrics").text


def test_kube_dns_service_and_endpoints_are_ensured(env):
    _, d, client = env
    svc = wait_for(lambda: _get(client, R.SERVICES, "kube-dns"), 10, 0.05, "kube-dns service")
    assert svc["spec"]["clusterIP"] == "10.96.0.10" and not svc["spec"].get("selector")
    labels = svc["metadata"]["labels"]
    assert labels["k8s-app"] == "kube-dns" and labels["kubernetes.io/cluster-service"] == "true"
    assert labels["kubernetes.io/name"] == "CoreDNS"
    assert sorted((p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]) == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    ep = wait_for(lambda: _get(client, R.ENDPOINTS, "kube-dns"), 10, 0.05, "kube-dns endpoints")
    assert [a["ip"] for s in ep["subsets"] for a in s["addresses"]] == ["127.0.0.1"]
    assert sorted((p["name"], p["port"], p["protocol"]) for s in ep["subsets"] for p in s["ports"]) == [
        ("dns", d.port, "UDP"), ("dns-tcp", d.port, "TCP")]
    # The endpoints controller (running) leaves selector-less Endpoints alone; and a deleted
    # Endpoints comes back at once (the informer event pokes the registrar).
    client.delete(R.ENDPOINTS, "kube-dns", "kube-system")
    wait_for(lambda: _get(client, R.ENDPOINTS, "kube-dns"), 5, 0.05, "kube-dns endpoints restored")
    # and the service answers for itself
    assert a_records(d, "kube-dns.kube-system.svc.cluster.local") == ["10.96.0.10"]


def _get(client, rt, name, ns="kube-system"):
    try:
        return client.get(rt, name, ns)
    except NotFound:
        return None


def test_service_created_resolves_within_1s_and_deleted_is_nxdomain_within_1s(env):
    _, d, client = env
    name = "fresh.default.svc.cluster.local"
    assert a_records(d, name) == "NXDOMAIN"                 # also puts the NXDOMAIN in the answer cache
    svc = make_service(client, "fresh")
    t0 = time.monotonic()
    wait_for(lambda: a_records(d, name) == [svc["spec"]["clusterIP"]], 1.0, what="fresh resolvable")
    created = time.monotonic() - t0
    r = d.resolver()
    assert [rr.address for rr in r.resolve(name, "A")] == [svc["spec"]["clusterIP"]]
    client.delete(R.SERVICES, "fresh", "default")
    t0 = time.monotonic()
    wait_for(lambda: a_records(d, name) == "NXDOMAIN", 1.0, what="fresh gone")
    deleted = time.monotonic() - t0
    with pytest.raises(dns.resolver.NXDOMAIN):
        r.resolve(name, "A")
    print(f"created -> resolvable {created * 1000:.0f} ms, deleted -> NXDOMAIN {deleted * 1000:.0f} ms")


def test_nxdomain_has_soa_and_nodata(env):
    _, d, _ = env
    m = d.query("nothing-here.default.svc.cluster.local")
    assert m.rcode() == dns.rcode.NXDOMAIN and m.flags & dns.flags.AA
    assert m.authority and m.authority[0].rdtype == dns.rdatatype.SOA and m.authority[0].ttl == 5
    m = d.query("kubernetes.default.svc.cluster.local", "AAAA")
    assert m.rcode() == dns.rcode.NOERROR and not m.answer and m.authority[0].rdtype == dns.rdatatype.SOA


def test_srv_ptr_pod_and_hostname_records(env):
    _, d, client = env
    svc = make_service(client, "recs", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                              {"name": "metrics", "port": 9090, "protocol": "TCP"}])
    make_service(client, "pets", clusterIP="None")
    make_endpoints(client, "pets", ["10.244.7.2", "10.244.7.3"], hostnames=["pet-0", None])
    client.create(R.PODS, {"metadata": {"name": "p1", "namespace": "default"},
                           "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "pocketkube/host"}]}})
    client.patch(R.PODS, "p1", {"status": {"phase": "Running", "podIP": "10.244.7.9"}}, "default",
                 subresource="status")
    r = d.resolver()
    wait_for(lambda: a_records(d, "pet-0.pets.default.svc.cluster.local") == ["10.244.7.2"], 5, what="pets")
    srv = r.resolve("_metrics._tcp.recs.default.svc.cluster.local", "SRV")
    assert [(x.port, x.target.to_text()) for x in srv] == [(9090, "recs.default.svc.cluster.local.")]
    srv = r.resolve("_http._tcp.pets.default.svc.cluster.local", "SRV")
    assert sorted((x.port, x.target.to_text()) for x in srv) == [
        (8080, "10-244-7-3.pets.default.svc.cluster.local."), (8080, "pet-0.pets.default.svc.cluster.local.")]
    assert sorted(a_records(d, "pets.default.svc.cluster.local")) == ["10.244.7.2", "10.244.7.3"]
    ptr = r.resolve(dns.reversename.from_address(svc["spec"]["clusterIP"]), "PTR")
    assert [x.target.to_text() for x in ptr] == ["recs.default.svc.cluster.local."]
    ptr = r.resolve(dns.reversename.from_address("10.244.7.2"), "PTR")
    assert [x.target.to_text() for x in ptr] == ["pet-0.pets.default.svc.cluster.local."]
    wait_for(lambda: a_records(d, "10-244-7-9.default.pod.cluster.local") == ["10.244.7.9"], 5, what="pod record")
    ptr = r.resolve(dns.reversename.from_address("10.244.7.9"), "PTR")
    assert [x.target.to_text() for x in ptr] == ["10-244-7-9.default.pod.cluster.local."]


def test_dig_variants_and_large_headless_answer(env):
    _, d, client = env
    ips = [f"10.244.{8 + i // 200}.{i % 200 + 2}" for i in range(150)]
    make_service(client, "many", clusterIP="None")
    make_endpoints(client, "many", ips)
    name = "many.default.svc.cluster.local"
    wait_for(lambda: "ANSWER: 150" in d.dig("+tcp", name), 5, 0.05, "150 records over TCP")
    # UDP without EDNS: 512 bytes at most, TC set (+ignore keeps dig from retrying over TCP)
    out = d.dig("+notcp", "+noedns", "+ignore", name)
    assert " tc" in out.split("flags:")[1].split(";")[0], out
    assert "MSG SIZE  rcvd: 5" in out or int(out.split("MSG SIZE  rcvd: ")[1].split()[0]) <= 512
    # EDNS 1232: truncated within 1232; EDNS 4096: all 150 over UDP (150 * 16 bytes + header fits)
    out = d.dig("+notcp", "+bufsize=1232", "+ignore", name)
    assert " tc" in out.split("flags:")[1].split(";")[0] and int(out.split("MSG SIZE  rcvd: ")[1].split()[0]) <= 1232
    out = d.dig("+notcp", "+bufsize=4096", "+ignore", name)
    assert "ANSWER: 150" in out and " tc" not in out.split("flags:")[1].split(";")[0], out
    # dig's default: UDP, TC seen, retried over TCP -> complete
    assert len(d.dig("+short", name).split()) == 150
    # TCP via dnspython too
    m = d.query(name, tcp=True)
    assert sum(len(rrset) for rrset in m.answer) == 150 and not m.flags & dns.flags.TC
    assert d.dig("+short", "+tcp", "kubernetes.default.svc.cluster.local").split() == ["10.96.0.1"]
    assert "status: NXDOMAIN" in d.dig("+notcp", "nope.default.svc.cluster.local")


def test_out_of_cluster_name_without_upstream_is_servfail_at_once(env):
    _, d, _ = env
    t0 = time.monotonic()
    m = d.query("example.com", timeout=2)
    elapsed = time.monotonic() - t0
    assert m.rcode() == dns.rcode.SERVFAIL and elapsed < 0.2, elapsed
    t0 = time.monotonic()
    assert "status: SERVFAIL" in d.dig("example.org")
    assert time.monotonic() - t0 < 1.5


def test_kubectl_cluster_info_lists_dns(env, tmp_path):
    from tests.integration.kubectlutil import Kubectl

    server, _, _ = env
    k = Kubectl(31, server.url, str(tmp_path / "kc"))
    out = re.sub(r"\x1b\[[0-9;]*m", "", k.run("cluster-info").stdout)   # drop the colours
    assert "CoreDNS is running at" in out and "kube-dns:dns/proxy" in out, out


# ------------------------------------------------- API server down, upstream
def _stub_upstream():
    """A tiny authoritative stand-in upstream on loopback: answers every A query with 192.0.2.7."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:
                continue
            req = DNSRecord.parse(data)
            rep = req.reply()
            rep.add_answer(*RR.fromZone(f"{req.q.qname} 60 IN A 192.0.2.7"))
            sock.sendto(rep.pack(), addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return sock, stop, t


def test_keeps_answering_with_the_api_server_down_and_forwards_to_an_upstream(tmp_path):
    up, up_stop, up_thread = _stub_upstream()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    d = DNSProc(url, str(tmp_path / "dns.log"), "--upstream", f"127.0.0.1:{up.getsockname()[1]}",
                "--no-register")
    server = ApiServer(str(tmp_path), port=port)
    client = None
    try:
        # Started before the API server: serving, not ready, cluster names SERVFAIL (not a false NXDOMAIN).
        d.start(wait_ready=False)
        assert d.health("/health") == 200 and d.health("/ready") == 503
        assert d.query("kubernetes.default.svc.cluster.local").rcode() == dns.rcode.SERVFAIL
        server.start()
        wait_for(lambda: d.health("/ready") == 200, 15, 0.1, "ready once synced")
        client = Client(server=url)
        # beta first: once alpha (created after it) resolves, the ordered watch has delivered beta too
        b = make_service(client, "beta")["spec"]["clusterIP"]
        a = make_service(client, "alpha")["spec"]["clusterIP"]
        wait_for(lambda: a_records(d, "alpha.default.svc.cluster.local") == [a], 2, what="alpha")
        server.kill()                                     # SIGKILL: the API server is gone
        time.sleep(0.5)
        # beta was never asked before: answered from the informer cache, not the answer cache
        assert a_records(d, "beta.default.svc.cluster.local") == [b]
        assert a_records(d, "alpha.default.svc.cluster.local") == [a]
        assert a_records(d, "gone.default.svc.cluster.local") == "NXDOMAIN"
        assert d.health("/health") == 200 and d.health("/ready") == 200
        # out-of-cluster names go to the upstream, with RA set
        m = d.query("www.example.com")
        assert m.flags & dns.flags.RA and [rr.address for rrset in m.answer for rr in rrset] == ["192.0.2.7"]
        assert d.dig("+short", "www.example.net").split() == ["192.0.2.7"]
    finally:
        if client:
            client.close()
        d.stop()
        server.stop()
        up_stop.set()
        up_thread.join(2)
        up.close()
