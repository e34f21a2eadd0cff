"""`pocketkube up`: one command from a fresh (root, Linux) machine to a working cluster of N nodes.

Order, each step shown as a progress line:

1. settings: flags, else the ones the previous `up` of this data directory
   saved in DIR/state.json, else the defaults (``deploy.state``);
2. already running? -> say so and print the export line (exit 0); partly
   running (a component was killed and nothing restarted it) -> start only
   what is missing, touching nothing that runs;
3. prerequisites (``deploy.prereq``): every problem with its exact fix,
   before anything is changed;
4. state.json (so `down` can undo a half-finished `up`), credentials
   (tokens.csv, kubelet-token, kubeconfigs: one per node's kubelet, one per
   node-side component; generated once, kept);
5. the network (``deploy.netsetup``): the fabric, then each node;
6. the API server (SQLite in DIR/data, binds 127.0.0.1 and the host end of
   the fabric link only), then together: controller-manager (node IPAM:
   ``--allocate-node-cidrs``), scheduler, and on every node its kubelet
   (nsenter into the node namespace), proxy and network agent (ip netns
   exec), and DNS in the first node's namespace;
7. host routes (unless ``--no-host-routes``): the service CIDR via the first
   node, each node's podCIDR via that node once the controller-manager has
   assigned it; the egress rules (only with ``--egress``);
8. wait until every node is Ready with its network agent up
   (NetworkUnavailable=False) and DNS answers
   kubernetes.default.svc.cluster.local on the first node's address;
9. the supervisor (``deploy.supervise``), which restarts whatever exits.

Any failure of a fresh start rolls back with the same code as `pocketkube
down` (the data directory stays), after printing the tail of the log that
explains it; a failure while resuming leaves the running parts alone.
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

from deploy import netsetup, pki, prereq, procs, supervise
from deploy.state import (BACKENDS, DEFAULT_BACKEND, DEFAULT_DATA_DIR, DNS_HEALTH_PORT, DNS_IP, KUBELET_PORT,
                          Layout, Settings, StateError, load_state, node_key, process_keys, resolve_settings,
                          save_state)
from deploy.system import FakeSystem, RealSystem, System

EXAMPLES = os.path.join(procs.PROJECT_ROOT, "deploy", "examples")
NODE_SIDE_USERS = {"proxy": "system:kube-proxy", "netd": "system:netd", "dns": "system:kube-dns"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube up", description=(
        "Start a whole pocketkube cluster on this machine (as root): API server, controller-manager, scheduler, "
        "DNS, and N nodes (kubelet + proxy + network agent each), every node in its own network namespace on a "
        "shared fabric."))
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"where everything lives (default {DEFAULT_DATA_DIR})")
    p.add_argument("--nodes", type=int, default=None, help="how many nodes (default 1)")
    p.add_argument("--backend", default=None, choices=sorted(BACKENDS),
                   help=f"pod network between nodes (default {DEFAULT_BACKEND}: every node is on one L2 fabric, "
                        "so plain routes do it at full MTU; vxlan: an overlay, MTU 1450)")
    p.add_argument("--node-network", default=None,
                   help="IPv4 network of the fabric (default 100.64.0.0/24: host end .1, nodes from .2)")
    p.add_argument("--port", type=int, default=None, help="API server port (default 6443)")
    p.add_argument("--pod-cidr", default=None,
                   help="pin the first node's pod CIDR (default: assigned by the controller-manager from "
                        "--cluster-cidr, one /24 per node)")
    p.add_argument("--cluster-cidr", default=None, help="the cluster's pod CIDR (default 10.244.0.0/16)")
    p.add_argument("--service-cidr", default=None, help="service IP range (default 10.96.0.0/12)")
    p.add_argument("--node-name", default=None, help="the node's name with --nodes 1 (default node-1)")
    p.add_argument("--no-host-routes", action="store_true",
                   help="do not route the pod and service CIDRs from this machine's namespace to the nodes "
                        "(reach them from inside a node namespace instead)")
    p.add_argument("--egress", action="store_true",
                   help="let pods reach the world outside the cluster: a default route in each node namespace, IP "
                        "forwarding and a MASQUERADE rule in this machine's namespace (removed by down), and DNS "
                        "forwards other names to this machine's resolvers")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for Ready nodes and DNS (default 120)")
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
                         backend=getattr(args, "backend", None))
    want = getattr(args, "nodes", None)
    name = args.node_name
    if want is not None and want >= 1 and want != len(s.nodes):
        s.nodes = [{"name": Settings.default_node_name(i), "index": i} for i in range(1, want + 1)]
    if name is not None:
        s.nodes[0]["name"] = name
    s.node_name = s.nodes[0]["name"]
    # These two are never carried over: each `up` says whether it wants them.
    s.host_routes = not args.no_host_routes
    s.egress = bool(args.egress)
    return s


def node_commands(s: Settings, node: str, python: str = sys.executable) -> dict[str, list[str]]:
    """The kubelet, proxy and network agent of one node (each mentions DIR, see ``System.alive``)."""
    lay = s.layout
    cli = [python, "-m", "deploy.cli"]
    ip = s.ip_of(node)
    in_node = ["ip", "netns", "exec", s.node_netns(node)]
    kubelet = ["nsenter", f"--net=/run/netns/{s.node_netns(node)}", "--", *cli, "kubelet", "--node-name", node,
               "--kubeconfig", lay.node_kubeconfig(node), "--node-ip", ip, "--port", str(KUBELET_PORT),
               "--root-dir", lay.kubelet_root(node), "--cgroup-root", s.cgroup_root_of(node),
               "--apiserver-token-file", lay.kubelet_token, "--cluster-dns", DNS_IP,
               "--register-network-unavailable", "--cni-mtu", str(s.mtu)]
    if s.pod_cidr and node == s.first_node:
        kubelet += ["--pod-cidr", s.pod_cidr]
    return {
        node_key(node, "kubelet"): kubelet,
        node_key(node, "proxy"): [*in_node, *cli, "proxy", "--node-name", node,
                                  "--kubeconfig", lay.component_kubeconfig("proxy"), "--cluster-cidr", s.cluster_cidr],
        node_key(node, "netd"): [*in_node, *cli, "netd", "--node-name", node,
                                 "--kubeconfig", lay.component_kubeconfig("netd"), "--backend", s.backend,
                                 "--iface", s.node_if, "--public-ip", ip, "--cluster-cidr", s.cluster_cidr],
    }


def component_commands(s: Settings, python: str = sys.executable, upstreams: list[str] | None = None) -> dict[str, list[str]]:
    """The command line of every process `up` starts, by process key (``deploy.state.process_keys``)."""
    lay = s.layout
    cli = [python, "-m", "deploy.cli"]
    cp_kc = ["--kubeconfig", lay.control_plane_kubeconfig]
    dns = ["ip", "netns", "exec", s.netns, *cli, "dns", "--kubeconfig", lay.component_kubeconfig("dns"),
           "--listen", f"{s.node_ip}:53", "--health-port", str(DNS_HEALTH_PORT), "--node-name", s.first_node,
           "--cluster-ip", DNS_IP]
    for u in upstreams or []:
        dns += ["--upstream", u]
    cmds = {
        "apiserver": [*cli, "apiserver", "--bind-address", f"127.0.0.1,{s.host_ip}", "--port", str(s.port),
                      "--data-dir", lay.db_dir, "--token-auth-file", lay.tokens,
                      "--kubelet-token-file", lay.kubelet_token, "--service-cluster-ip-range", s.service_cidr,
                      "--tls-cert-file", pki.paths(s)["crt"], "--tls-private-key-file", pki.paths(s)["key"]],
        "controller-manager": [*cli, "controller-manager", *cp_kc, "--allocate-node-cidrs",
                               "--cluster-cidr", s.cluster_cidr, "--service-cluster-ip-range", s.service_cidr],
        "scheduler": [*cli, "scheduler", *cp_kc],
    }
    for node in s.node_names:
        cmds.update(node_commands(s, node, python))
    cmds["dns"] = dns
    assert list(cmds) == process_keys(s.node_names)
    return cmds


def plan(s: Settings, upstreams: list[str] | None = None) -> list[str]:
    """Every command `up` would run, for --dry-run (and tests of the egress plan)."""
    ps = FakeSystem()               # nothing exists yet: every check fails, so every step shows its change
    netsetup.setup_network(ps, s)
    lines = [shlex.join(c) for c in ps.commands if " link show " not in " ".join(c) and "-C" not in c]
    lines.insert(0, f"openssl: a CA and the API server's certificate in {s.layout.path('pki')} (once); tokens in "
                    f"{s.layout.tokens}; kubeconfigs {s.layout.kubeconfig}, {s.layout.control_plane_kubeconfig}, "
                    + ", ".join(s.layout.component_kubeconfig(c) for c in NODE_SIDE_USERS) + ", "
                    + ", ".join(s.layout.node_kubeconfig(n) for n in s.node_names))
    cmds = component_commands(s, upstreams=upstreams)
    lines += [f"start {n}: {shlex.join(argv)}" for n, argv in cmds.items()]
    lines.append(f"start supervisor: {shlex.join(supervise.supervisor_command(s.layout))}")
    if s.host_routes:
        lines.append(f"ip route add {s.service_cidr} via {s.node_ip} dev {s.host_if}")
        lines += [f"ip route add <{n}'s podCIDR> via {s.ip_of(n)} dev {s.host_if}" for n in s.node_names]
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
def read_tokens(path: str) -> dict[str, list[str]]:
    """user -> its tokens.csv row (token, user, uid, groups)."""
    import csv

    rows = {}
    try:
        with open(path, newline="") as f:
            for row in csv.reader(f):
                if len(row) >= 3:
                    rows[row[1]] = row
    except OSError:
        pass
    return rows


def wanted_users(s: Settings) -> dict[str, tuple[str, str]]:
    want = {"admin": ("admin-uid", "system:masters"),
            "system:kube-control-plane": ("control-plane", "system:masters")}
    for comp, user in NODE_SIDE_USERS.items():
        want[user] = (comp, "system:masters")
    for n in s.node_names:
        want[f"system:node:{n}"] = (f"node-{n}", "system:nodes")
    return want


def write_tokens(path: str, rows: dict[str, list[str]]) -> None:
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for row in rows.values():
            groups = row[3] if len(row) > 3 else ""
            f.write(f'{row[0]},{row[1]},{row[2]},"{groups}"\n')
    os.replace(path + ".tmp", path)


def ensure_credentials(sys_: System, s: Settings) -> bool:
    """CA + serving certificate, tokens and kubeconfigs (generated once, then reused).

    Returns True when tokens.csv gained a user (a running API server reads it only at start)."""
    from client.kubeconfig import write_kubeconfig

    ca = pki.ensure_pki(sys_, s)["ca_crt"]
    lay = s.layout
    rows = read_tokens(lay.tokens)
    want = wanted_users(s)
    added = False
    for u, (uid, group) in want.items():
        if u not in rows:
            rows[u] = [secrets.token_hex(24), u, uid, group]
            added = True
    if added or not os.path.exists(lay.tokens):
        write_tokens(lay.tokens, rows)
    if not os.path.exists(lay.kubelet_token):
        fd = os.open(lay.kubelet_token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(24) + "\n")
    local = f"https://127.0.0.1:{s.port}"
    nodes_url = f"https://{s.host_ip}:{s.port}"
    write_kubeconfig(lay.kubeconfig, local, rows["admin"][0], ca_file=ca)
    write_kubeconfig(lay.control_plane_kubeconfig, local, rows["system:kube-control-plane"][0], ca_file=ca)
    for comp, user in NODE_SIDE_USERS.items():
        write_kubeconfig(lay.component_kubeconfig(comp), nodes_url, rows[user][0], ca_file=ca)
    for n in s.node_names:
        os.makedirs(lay.node_dir(n), exist_ok=True)
        write_kubeconfig(lay.node_kubeconfig(n), nodes_url, rows[f"system:node:{n}"][0], ca_file=ca)
    return added


def forget_node_credentials(s: Settings, node: str) -> None:
    lay = s.layout
    rows = read_tokens(lay.tokens)
    if rows.pop(f"system:node:{node}", None) is not None:
        write_tokens(lay.tokens, rows)


# ---------------------------------------------------------------- launcher
class Launcher:
    def __init__(self, sys_: System, s: Settings, timeout: float = 120.0, running: dict[str, int] | None = None):
        self.sys = sys_
        self.s = s
        self.lay: Layout = s.layout
        self.timeout = timeout
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.procs: dict[str, object] = {}
        self.running = dict(running or {})         # resuming: what already runs is left alone
        self.client = None

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

    def remaining(self) -> float:
        return max(5.0, self.timeout - (time.monotonic() - self.t0))

    def start_missing(self, cmds: dict[str, list[str]]) -> list[str]:
        started = []
        for key, argv in cmds.items():
            if key in self.running:
                continue
            self.start(key, argv)
            started.append(key)
        return started

    def run(self) -> None:
        s, lay = self.s, self.lay
        for d in (lay.data_dir, lay.path("logs"), lay.path("run"), lay.db_dir):
            os.makedirs(d, exist_ok=True)
        os.chmod(lay.data_dir, 0o700)
        ensure_credentials(self.sys, s)
        step(f"credentials: CA + API server certificate in {lay.path('pki')}, tokens in {lay.tokens}", self.t0)
        netsetup.setup_network(self.sys, s)
        step(f"fabric: namespace {s.fabric_ns} (bridge), link {s.host_if} {s.host_ip}; "
             + ", ".join(f"{n} {s.ip_of(n)} in {s.node_netns(n)}" for n in s.node_names), self.t0)
        upstreams = netsetup.upstream_nameservers(read_resolv_confs()) if s.egress else []
        cmds = component_commands(s, upstreams=upstreams)
        supervise.write_commands(lay, cmds)
        if "apiserver" not in self.running:
            self.start("apiserver", cmds["apiserver"])
        self.wait("the API server", self.api_ready, 30)
        step(f"API server ready on https://127.0.0.1:{s.port} and https://{s.host_ip}:{s.port} "
             f"(data in {lay.db_dir})", self.t0)
        started = self.start_missing({k: v for k, v in cmds.items() if k != "apiserver"})
        if started:
            step(f"started {', '.join(started)}", self.t0)
        if s.host_routes:
            netsetup.ensure_host_route(self.sys, s, s.service_cidr, s.node_ip, self.record_route)
        if s.egress:
            netsetup.ensure_egress(self.sys, s, self.record_egress)
            step(f"egress: pods reach the outside through this machine (MASQUERADE of {s.node_network})"
                 + (f"; DNS upstream {', '.join(upstreams)}" if upstreams else "; no upstream resolver found"), self.t0)
        for node in s.node_names:
            self.wait_node(node)
        self.wait("DNS to answer kubernetes.default.svc.cluster.local", self.dns_answers, self.remaining())
        step(f"DNS answering on {s.node_ip}:53 (service kube-system/kube-dns {DNS_IP})", self.t0)
        self.ensure_supervisor()

    def wait_node(self, node: str) -> None:
        s = self.s
        since = None if self.running else self.wall0 - 1.0
        self.wait(f"node {node} to be Ready", lambda: node_is_ready(self.get_node(node), since=since), self.remaining())
        self.wait(f"node {node}'s podCIDR (the controller-manager's node IPAM)",
                  lambda: bool(pod_cidr_of(self.get_node(node))), self.remaining())
        cidr = pod_cidr_of(self.get_node(node))
        self.wait(f"node {node}'s network agent (condition NetworkUnavailable=False; see "
                  f"{self.lay.log(node_key(node, 'netd'))})",
                  lambda: network_available(self.get_node(node)), self.remaining())
        if s.host_routes:
            netsetup.ensure_host_route(self.sys, s, cidr, s.ip_of(node), self.record_route)
        step(f"node {node} Ready (podCIDR {cidr}, {s.backend})", self.t0)

    def ensure_supervisor(self) -> None:
        if "supervisor" in self.running:
            return
        p = procs.spawn(supervise.supervisor_command(self.lay), self.lay.log("supervisor.out"))
        procs.write_pid(self.lay.pidfile("supervisor"), p.pid)
        step(f"supervisor pid {p.pid}: restarts any process that exits (log {self.lay.log('supervisor')})", self.t0)

    def record_route(self, entry: str) -> None:
        cidr = entry.split()[0]
        keep = [e for e in self.s.host_routes_added if e.split()[0] != cidr]
        if keep + [entry] != self.s.host_routes_added:
            self.s.host_routes_added = keep + [entry]
            save_state(self.s)

    def record_egress(self, applied: dict) -> None:
        self.s.egress_applied = applied
        save_state(self.s)

    # -------------------------------------------------------------- probes
    def _client(self):
        if self.client is None:
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

    def get_node(self, name: str) -> dict:
        from api import resources as R

        try:
            return self._client().get(R.NODES, name)
        except Exception:  # noqa: BLE001 - not registered yet, API busy: keep waiting
            return {}

    def dns_answers(self) -> bool:
        return dns_answers(self.s.node_ip)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _conditions(node: dict) -> dict[str, dict]:
    return {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}


def node_is_ready(node: dict, since: float | None = None) -> bool:
    """Ready=True, and (with ``since``) heartbeated by this run's kubelet, not left over from the last run."""
    import datetime as dt

    c = _conditions(node).get("Ready")
    if not c or c.get("status") != "True":
        return False
    if since is None:
        return True
    try:
        beat = dt.datetime.fromisoformat(str(c.get("lastHeartbeatTime")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return beat >= since


def pod_cidr_of(node: dict) -> str | None:
    return (node.get("spec") or {}).get("podCIDR") or None


def network_available(node: dict) -> bool:
    c = _conditions(node).get("NetworkUnavailable")
    return c is not None and c.get("status") == "False"


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


def expected_processes(s: Settings) -> list[str]:
    return process_keys(s.node_names) + [node_key(n, "runtime") for n in s.node_names] + ["supervisor"]


def up(sys_: System, args: argparse.Namespace) -> int:
    try:
        saved = load_state(args.data_dir)
    except StateError as e:
        out(f"pocketkube up: {e}")
        return 1
    s = settings_from_args(args, saved)
    lay = s.layout
    dflag = data_dir_flag(s)
    running: dict[str, int] = {}
    if sys_.geteuid() == 0 and saved is not None:
        running = prereq.running_components(sys_, saved)
        if running:
            missing = [k for k in expected_processes(saved) if k not in running]
            if not missing:
                out(f"pocketkube is already running from {lay.data_dir} (pids: "
                    + ", ".join(f"{n} {p}" for n, p in running.items()) + ")")
                out(f"\n  export KUBECONFIG={lay.kubeconfig}\n")
                out(f"`pocketkube status{dflag}` shows it; `pocketkube down{dflag}` stops it.")
                return 0
            # resume with the running cluster's own settings (its shape cannot change under running processes)
            host_routes, egress = s.host_routes, s.egress
            s = saved
            s.host_routes, s.egress = host_routes, egress
            lay = s.layout
    if running:
        problems = [prereq.Problem(e, "fix the flag") for e in s.validate()]
        problems += prereq.check_root(sys_) + prereq.check_tools(sys_, s.egress)
    else:
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
    n = len(s.nodes)
    if running:
        missing = [k for k in expected_processes(s) if k not in running and not k.endswith("/runtime")]
        out(f"pocketkube up: a cluster from {lay.data_dir} is partly running; starting what is missing "
            f"({', '.join(missing)}), leaving the {len(running)} running process(es) alone")
    else:
        out(f"pocketkube up: starting a {'one-node' if n == 1 else f'{n}-node'} cluster ({s.backend}) "
            f"from {lay.data_dir}")
        if saved is not None and os.path.isdir(lay.db_dir):
            out("  (reusing the settings and stored objects of the previous run)")
        s.host_routes_added, s.egress_applied = [], {}
    save_state(s)
    launcher = Launcher(sys_, s, timeout=args.timeout, running=running)
    try:
        launcher.run()
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - roll back whatever happened
        msg = str(e) if isinstance(e, (UpError,)) else f"{type(e).__name__}: {e}"
        out(f"pocketkube up: failed: {msg}")
        launcher.close()
        if running:
            out(f"  the processes that were running are left alone; logs are in {lay.path('logs')}")
            return 1
        out("  rolling back (the data directory is kept) ...")
        from deploy.down import down as do_down

        do_down(sys_, lay.data_dir, purge=False, quiet=True)
        out(f"  rolled back; logs are in {lay.path('logs')}")
        return 1
    finally:
        launcher.close()
    took = time.monotonic() - launcher.t0
    ready = f"node {s.first_node} Ready" if n == 1 else f"{n} nodes Ready ({', '.join(s.node_names)})"
    out(f"\npocketkube is up in {took:.1f}s: {ready}, DNS answering.\n")
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
        f"`pocketkube status{dflag}`, `pocketkube node add{dflag}`, `pocketkube down{dflag}`.")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.data_dir = os.path.abspath(args.data_dir)
    sys.exit(up(RealSystem(), args))


if __name__ == "__main__":
    main()
