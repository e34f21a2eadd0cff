"""`pocketkube up`: one command from a fresh (root, Linux) machine to a working one-node cluster.

Order, each step shown as a progress line:

1. settings: flags, else the ones the previous `up` of this data directory
   saved in DIR/state.json, else the defaults (``deploy.state``);
2. already running? -> say so and print the export line (exit 0); partly
   running -> name the fix (`pocketkube down` first);
3. prerequisites (``deploy.prereq``): every problem with its exact fix,
   before anything is changed;
4. state.json (so `down` can undo a half-finished `up`), credentials
   (tokens.csv, kubelet-token, three kubeconfigs; generated once, kept);
5. the node network (``deploy.netsetup``);
6. the API server (SQLite in DIR/data, binds 127.0.0.1 and the host end of
   the node link only), then together: controller-manager, scheduler,
   kubelet (nsenter into the node namespace), proxy and DNS (ip netns exec);
7. host routes to the pod and service CIDRs (unless ``--no-host-routes``),
   the egress rules (only with ``--egress``);
8. wait until the node is Ready and DNS answers
   kubernetes.default.svc.cluster.local on the node's address.

Any failure rolls back with the same code as `pocketkube down` (the data
directory stays), after printing the tail of the log that explains it.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shlex
import ssl
import sys
import time
from typing import Callable

from deploy import netsetup, pki, prereq, procs
from deploy.state import (COMPONENTS, DEFAULT_DATA_DIR, DNS_HEALTH_PORT, DNS_IP, KUBELET_PORT, Layout, Settings,
                          StateError, load_state, resolve_settings, save_state)
from deploy.system import FakeSystem, RealSystem, System

EXAMPLES = os.path.join(procs.PROJECT_ROOT, "deploy", "examples")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube up", description=(
        "Start a whole single-node pocketkube cluster on this machine (as root): API server, controller-manager, "
        "scheduler, DNS, and one node (kubelet + proxy) in its own network namespace."))
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"where everything lives (default {DEFAULT_DATA_DIR})")
    p.add_argument("--node-network", default=None,
                   help="IPv4 network of the host<->node link, /30 or larger (default 100.64.0.0/24: "
                        "host end .1, node .2)")
    p.add_argument("--port", type=int, default=None, help="API server port (default 6443)")
    p.add_argument("--pod-cidr", default=None, help="the node's pod CIDR (default 10.244.1.0/24)")
    p.add_argument("--cluster-cidr", default=None, help="the cluster's pod CIDR (default 10.244.0.0/16)")
    p.add_argument("--service-cidr", default=None, help="service IP range (default 10.96.0.0/12)")
    p.add_argument("--node-name", default=None, help="the node's name (default node-1)")
    p.add_argument("--no-host-routes", action="store_true",
                   help="do not route the pod and service CIDRs from this machine's namespace to the node "
                        "(reach them from inside the node namespace instead)")
    p.add_argument("--egress", action="store_true",
                   help="let pods reach the world outside the cluster: a default route in the node namespace, IP "
                        "forwarding and a MASQUERADE rule in this machine's namespace (removed by down), and DNS "
                        "forwards other names to this machine's resolvers")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a Ready node and DNS (default 120)")
    p.add_argument("--dry-run", action="store_true", help="check prerequisites and print what would be done")
    return p


def out(msg: str = "") -> None:
    print(msg, flush=True)


def step(msg: str, t0: float) -> None:
    out(f"  [{time.monotonic() - t0:5.1f}s] {msg}")


class UpError(Exception):
    pass


# ----------------------------------------------------------------- pure parts
def settings_from_args(args: argparse.Namespace, saved: Settings | None) -> Settings:
    s = resolve_settings(args.data_dir, saved, node_network=args.node_network, port=args.port,
                         pod_cidr=args.pod_cidr, cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                         node_name=args.node_name)
    # These two are never carried over: each `up` says whether it wants them.
    s.host_routes = not args.no_host_routes
    s.egress = bool(args.egress)
    return s


def component_commands(s: Settings, python: str = sys.executable, upstreams: list[str] | None = None) -> dict[str, list[str]]:
    """The command line of every process `up` starts (each mentions DIR, see ``System.alive``)."""
    lay = s.layout
    cli = [python, "-m", "deploy.cli"]
    node_kc = ["--kubeconfig", lay.node_kubeconfig]
    cp_kc = ["--kubeconfig", lay.control_plane_kubeconfig]
    in_node = ["ip", "netns", "exec", s.netns]
    dns = [*in_node, *cli, "dns", *node_kc, "--listen", f"{s.node_ip}:53", "--health-port", str(DNS_HEALTH_PORT),
           "--node-name", s.node_name, "--cluster-ip", DNS_IP]
    for u in upstreams or []:
        dns += ["--upstream", u]
    return {
        "apiserver": [*cli, "apiserver", "--bind-address", f"127.0.0.1,{s.host_ip}", "--port", str(s.port),
                      "--data-dir", lay.db_dir, "--token-auth-file", lay.tokens,
                      "--kubelet-token-file", lay.kubelet_token, "--service-cluster-ip-range", s.service_cidr,
                      "--tls-cert-file", pki.paths(s)["crt"], "--tls-private-key-file", pki.paths(s)["key"]],
        "controller-manager": [*cli, "controller-manager", *cp_kc, "--cluster-cidr", s.cluster_cidr],
        "scheduler": [*cli, "scheduler", *cp_kc],
        "kubelet": ["nsenter", f"--net=/run/netns/{s.netns}", "--", *cli, "kubelet", "--node-name", s.node_name,
                    *node_kc, "--pod-cidr", s.pod_cidr, "--node-ip", s.node_ip, "--port", str(KUBELET_PORT),
                    "--root-dir", lay.kubelet_root, "--cgroup-root", s.cgroup_root,
                    "--apiserver-token-file", lay.kubelet_token, "--cluster-dns", DNS_IP],
        "proxy": [*in_node, *cli, "proxy", "--node-name", s.node_name, *node_kc, "--cluster-cidr", s.cluster_cidr],
        "dns": dns,
    }


def plan(s: Settings, upstreams: list[str] | None = None) -> list[str]:
    """Every command `up` would run, for --dry-run (and tests of the egress plan)."""
    ps = FakeSystem()               # nothing exists yet: every check fails, so every step shows its change
    netsetup.setup_node_network(ps, s)
    lines = [shlex.join(c) for c in ps.commands if " link show " not in " ".join(c) and "-C" not in c]
    lines.insert(0, f"openssl: a CA and the API server's certificate in {s.layout.path('pki')} (once); tokens in "
                    f"{s.layout.tokens}; kubeconfigs {s.layout.kubeconfig}, {s.layout.node_kubeconfig}, "
                    f"{s.layout.control_plane_kubeconfig}")
    cmds = component_commands(s, upstreams=upstreams)
    lines += [f"start {n}: {shlex.join(cmds[n])}" for n in COMPONENTS]
    if s.host_routes:
        lines += [f"ip route add {c} via {s.node_ip} dev {s.host_if}" for c in netsetup.host_route_cidrs(s)]
    if s.egress:
        lines += [shlex.join(c) for c in netsetup.egress_plan(s)]
    return lines


def read_resolv_confs() -> list[str]:
    texts = []
    for path in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        try:
            with open(path) as f:
                texts.append(f.read())
        except OSError:
            pass
    return texts


# ------------------------------------------------------------- credentials
def ensure_credentials(sys_: System, s: Settings) -> str:
    """CA + serving certificate, tokens and kubeconfigs (generated once, then reused). Returns the admin token."""
    from client.kubeconfig import write_kubeconfig

    ca = pki.ensure_pki(sys_, s)["ca_crt"]
    lay = s.layout
    tokens = {}
    if os.path.exists(lay.tokens):
        with open(lay.tokens) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) >= 2:
                    tokens[parts[1]] = parts[0]
    want = {"admin": ("admin-uid", "system:masters"),
            f"system:node:{s.node_name}": (f"node-{s.node_name}", "system:nodes"),
            "system:kube-control-plane": ("control-plane", "system:masters")}
    if any(u not in tokens for u in want):
        for u in want:
            tokens.setdefault(u, secrets.token_hex(24))
        fd = os.open(lay.tokens + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            for u, (uid, group) in want.items():
                f.write(f'{tokens[u]},{u},{uid},"{group}"\n')
        os.replace(lay.tokens + ".tmp", lay.tokens)
    if not os.path.exists(lay.kubelet_token):
        fd = os.open(lay.kubelet_token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(24) + "\n")
    local = f"https://127.0.0.1:{s.port}"
    write_kubeconfig(lay.kubeconfig, local, tokens["admin"], ca_file=ca)
    write_kubeconfig(lay.control_plane_kubeconfig, local, tokens["system:kube-control-plane"], ca_file=ca)
    write_kubeconfig(lay.node_kubeconfig, f"https://{s.host_ip}:{s.port}", tokens[f"system:node:{s.node_name}"],
                     ca_file=ca)
    return tokens["admin"]


# ---------------------------------------------------------------- launcher
class Launcher:
    def __init__(self, sys_: System, s: Settings, timeout: float = 120.0):
        self.sys = sys_
        self.s = s
        self.lay: Layout = s.layout
        self.timeout = timeout
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.procs: dict[str, object] = {}

    def log_tail(self, name: str, n: int = 25) -> str:
        path = self.lay.log(name)
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()[-n:]
        except OSError:
            return f"(no log at {path})"
        return "\n".join(f"      | {line}" for line in lines) + f"\n    (full log: {path})"

    def start(self, name: str, argv: list[str]) -> None:
        p = procs.spawn(argv, self.lay.log(name))
        self.procs[name] = p
        procs.write_pid(self.lay.pidfile(name), p.pid)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise UpError(f"{name} exited with code {p.returncode}:\n{self.log_tail(name)}")

    def wait(self, what: str, fn: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if fn():
                return
            if time.monotonic() > deadline:
                raise UpError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)

    def run(self) -> None:
        s, lay = self.s, self.lay
        for d in (lay.data_dir, lay.path("logs"), lay.path("run"), lay.db_dir, lay.kubelet_root):
            os.makedirs(d, exist_ok=True)
        os.chmod(lay.data_dir, 0o700)
        ensure_credentials(self.sys, s)
        step(f"credentials: CA + API server certificate in {lay.path('pki')}, tokens in {lay.tokens}", self.t0)
        netsetup.setup_node_network(self.sys, s)
        step(f"node network: namespace {s.netns}, link {s.host_if} {s.host_ip} <-> {s.node_if} {s.node_ip}, "
             f"bridge cni0 {s.gateway}", self.t0)
        upstreams = netsetup.upstream_nameservers(read_resolv_confs()) if s.egress else []
        cmds = component_commands(s, upstreams=upstreams)
        self.start("apiserver", cmds["apiserver"])
        self.wait("the API server", self.api_ready, 30)
        step(f"API server ready on 127.0.0.1:{s.port} and {s.host_ip}:{s.port} (data in {lay.db_dir})", self.t0)
        for name in COMPONENTS[1:]:
            self.start(name, cmds[name])
        step("started controller-manager, scheduler, kubelet, proxy, dns", self.t0)
        if s.host_routes:
            netsetup.ensure_host_routes(self.sys, s, self.record_route)
            step(f"host routes: {s.pod_cidr} and {s.service_cidr} via {s.node_ip}", self.t0)
        if s.egress:
            netsetup.ensure_egress(self.sys, s, self.record_egress)
            step(f"egress: pods reach the outside through this machine (MASQUERADE of {s.node_ip})"
                 + (f"; DNS upstream {', '.join(upstreams)}" if upstreams else "; no upstream resolver found"), self.t0)
        remaining = lambda: max(5.0, self.timeout - (time.monotonic() - self.t0))  # noqa: E731
        self.wait(f"node {s.node_name} to be Ready", self.node_ready, remaining())
        step(f"node {s.node_name} Ready", self.t0)
        self.wait("DNS to answer kubernetes.default.svc.cluster.local", self.dns_answers, remaining())
        step(f"DNS answering on {s.node_ip}:53 (service kube-system/kube-dns {DNS_IP})", self.t0)

    def record_route(self, cidr: str) -> None:
        if cidr not in self.s.host_routes_added:
            self.s.host_routes_added.append(cidr)
            save_state(self.s)

    def record_egress(self, applied: dict) -> None:
        self.s.egress_applied = applied
        save_state(self.s)

    # -------------------------------------------------------------- probes
    def _client(self):
        if getattr(self, "client", None) is None:
            from client.kubeconfig import load_config
            from client.rest import Client

            self.client = Client(load_config(self.lay.kubeconfig), timeout=5.0)
        return self.client

    def api_ready(self) -> bool:
        import httpx

        try:
            ctx = ssl.create_default_context(cafile=pki.paths(self.s)["ca_crt"])
            return httpx.get(f"https://127.0.0.1:{self.s.port}/readyz", timeout=1, verify=ctx).status_code == 200
        except (httpx.HTTPError, OSError):
            return False

    def node_ready(self) -> bool:
        from api import resources as R

        try:
            node = self._client().get(R.NODES, self.s.node_name)
        except Exception:  # noqa: BLE001 - not registered yet, API busy: keep waiting
            return False
        return node_is_ready(node, since=self.wall0 - 1.0)

    def dns_answers(self) -> bool:
        return dns_answers(self.s.node_ip)

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()


def node_is_ready(node: dict, since: float | None = None) -> bool:
    """Ready=True, and (with ``since``) heartbeated by this run's kubelet, not left over from the last run."""
    import datetime as dt

    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            if since is None:
                return True
            try:
                beat = dt.datetime.fromisoformat(str(c.get("lastHeartbeatTime")).replace("Z", "+00:00")).timestamp()
            except ValueError:
                return False
            return beat >= since
    return False


def dns_answers(node_ip: str, name: str = "kubernetes.default.svc.cluster.local", timeout: float = 1.0) -> bool:
    """One A query over UDP to the node's DNS; True on an answer (dnslib: a runtime dependency already)."""
    import socket

    from dnslib import QTYPE, RCODE, DNSRecord

    try:
        raw = DNSRecord.question(name, "A").send(node_ip, 53, timeout=timeout)
        r = DNSRecord.parse(raw)
    except (OSError, socket.timeout, Exception):  # noqa: BLE001 - a malformed answer is "not yet" too
        return False
    return r.header.rcode == RCODE.NOERROR and any(rr.rtype == QTYPE.A for rr in r.rr)


# ---------------------------------------------------------------------- main
def data_dir_flag(s: Settings) -> str:
    return "" if s.data_dir == DEFAULT_DATA_DIR else f" --data-dir {s.data_dir}"


def up(sys_: System, args: argparse.Namespace) -> int:
    try:
        saved = load_state(args.data_dir)
    except StateError as e:
        out(f"pocketkube up: {e}")
        return 1
    s = settings_from_args(args, saved)
    lay = s.layout
    dflag = data_dir_flag(s)
    if sys_.geteuid() == 0:
        running = prereq.running_components(sys_, s)
        if running:
            if all(n in running for n in COMPONENTS):
                out(f"pocketkube is already running from {lay.data_dir} (pids: "
                    + ", ".join(f"{n} {p}" for n, p in running.items()) + ")")
                out(f"\n  export KUBECONFIG={lay.kubeconfig}\n")
                out(f"`pocketkube status{dflag}` shows it; `pocketkube down{dflag}` stops it.")
                return 0
            out(f"pocketkube up: cannot start: an old cluster is still partly running from {lay.data_dir} "
                f"({', '.join(f'{n} pid {p}' for n, p in running.items())})")
            out(f"    fix: run pocketkube down --data-dir {lay.data_dir} first")
            return 1
    problems = prereq.data_dir_problem(lay.data_dir) + prereq.check_all(sys_, s)
    if problems:
        out("pocketkube up: cannot start, nothing was changed:")
        for p in problems:
            out(f"  - {p}")
        return 1
    if args.dry_run:
        upstreams = netsetup.upstream_nameservers(read_resolv_confs()) if s.egress else []
        out(f"pocketkube up --dry-run: prerequisites OK; would run, with data in {lay.data_dir}:")
        for line in plan(s, upstreams):
            out(f"  {line}")
        return 0
    out(f"pocketkube up: starting a one-node cluster from {lay.data_dir}")
    if saved is not None and os.path.isdir(lay.db_dir):
        out("  (reusing the settings and stored objects of the previous run)")
    s.host_routes_added, s.egress_applied = [], {}
    save_state(s)
    launcher = Launcher(sys_, s, timeout=args.timeout)
    try:
        launcher.run()
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - roll back whatever happened
        msg = str(e) if isinstance(e, (UpError,)) else f"{type(e).__name__}: {e}"
        out(f"pocketkube up: failed: {msg}")
        out("  rolling back (the data directory is kept) ...")
        launcher.close()
        from deploy.down import down as do_down

        do_down(sys_, lay.data_dir, purge=False, quiet=True)
        out(f"  rolled back; logs are in {lay.path('logs')}")
        return 1
    finally:
        launcher.close()
    took = time.monotonic() - launcher.t0
    out(f"\npocketkube is up in {took:.1f}s: node {s.node_name} Ready, DNS answering.\n")
    out(f"  export KUBECONFIG={lay.kubeconfig}\n")
    out("Try it:")
    out("  pkctl get nodes")
    out(f"  kubectl apply -f {os.path.join(EXAMPLES, 'web.yaml')}")
    out("  pkctl get pods,svc -o wide")
    if s.host_routes:
        out("  curl http://$(pkctl get svc web -o jsonpath='{.spec.clusterIP}')/    "
            "(this shell reaches pods and services through the host routes)")
    else:
        out(f"  nsenter --net=/run/netns/{s.netns} curl http://<cluster IP>/    (no host routes: from the node)")
    out(f"More samples in {EXAMPLES}/. Logs: {lay.path('logs')}/. "
        f"`pocketkube status{dflag}`, `pocketkube down{dflag}`.")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.data_dir = os.path.abspath(args.data_dir)
    sys.exit(up(RealSystem(), args))


if __name__ == "__main__":
    main()
