"""What `pocketkube up` checks before it changes anything, each problem with its exact fix.

All checks run and every problem is reported at once (a user fixing one
thing should not discover the next on the following run). Nothing here
changes the machine: it reads PATH, the uid, the addresses and routes in
use, the listening sockets, and the PID files of the data directory, all
through the ``System`` seam.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from deploy.state import Settings, node_key, process_keys
from deploy.system import System

APT = "apt-get install -y"
INSTALL = "pocketkube install"
TOOLS = {
    # tool: (package, why)
    "ip": ("iproute2", "network namespaces, veths, routes"),
    "nsenter": ("util-linux", "runs the kubelet in the node's network namespace"),
    "unshare": ("util-linux", "the runtime's pause processes"),
    "iptables": ("iptables", "the service proxy's rules in the node namespace"),
    "iptables-restore": ("iptables", "the service proxy's rules in the node namespace"),
    "iptables-save": ("iptables", "the service proxy's rules in the node namespace"),
    "openssl": ("openssl", "the API server's TLS certificate (kubectl sends its token only over https)"),
    "conntrack": ("conntrack", "the service proxy removes stale UDP flows"),
}
EGRESS_TOOLS = {"sysctl": ("procps", "--egress turns on IP forwarding in the machine's namespace")}


@dataclass
class Problem:
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what}\n    fix: {self.fix}"


def check_root(sys: System) -> list[Problem]:
    if sys.geteuid() != 0:
        return [Problem("pocketkube up must run as root (it makes network namespaces, veths, routes and cgroups)",
                        "run it with sudo: sudo pocketkube up ...")]
    return []


def check_tools(sys: System, egress: bool = False) -> list[Problem]:
    tools = dict(TOOLS, **(EGRESS_TOOLS if egress else {}))
    missing: dict[str, list[str]] = {}
    for tool, (pkg, _why) in tools.items():
        if sys.which(tool) is None:
            missing.setdefault(pkg, []).append(tool)
    out = []
    for pkg, names in missing.items():
        why = tools[names[0]][1]
        out.append(Problem(f"{', '.join(names)} not found ({why})", f"{INSTALL} (or: {APT} {pkg})"))
    return out


def missing_packages(sys: System, egress: bool = True) -> list[str]:
    """The Debian packages `pocketkube install` installs: those of every missing tool, and a C compiler with a
    static libc when there is none (the runtime builds its small spawn helper with it; without one it falls
    back to fork, which works but is slower)."""
    tools = dict(TOOLS, **(EGRESS_TOOLS if egress else {}))
    pkgs: list[str] = []
    for tool, (pkg, _why) in tools.items():
        if sys.which(tool) is None and pkg not in pkgs:
            pkgs.append(pkg)
    if sys.which("cc") is None and sys.which("gcc") is None:
        pkgs += ["gcc", "libc6-dev"]
    elif not any(sys.exists(p) for p in ("/usr/lib/x86_64-linux-gnu/libc.a", "/usr/lib/aarch64-linux-gnu/libc.a",
                                          "/usr/lib/libc.a")):
        pkgs.append("libc6-dev")
    return pkgs


def check_netns_support(sys: System) -> list[Problem]:
    fix = ("use a Linux kernel with network namespaces (CONFIG_NET_NS) and, in a container, run it "
           "with --privileged or --cap-add NET_ADMIN --cap-add SYS_ADMIN")
    if not sys.exists("/proc/self/ns/net"):
        return [Problem("this kernel has no network namespaces (/proc/self/ns/net is missing)", fix)]
    if sys.which("unshare") is not None:
        r = sys.run(["unshare", "--net", "true"], check=False, timeout=10)
        if not r.ok:
            return [Problem(f"cannot make a network namespace here: {r.stderr.strip() or 'unshare --net failed'}",
                            fix)]
    return []


def running_components(sys: System, s: Settings) -> dict[str, int]:
    """Component -> PID for every PID file in DIR/run whose process is still one of ours."""
    from deploy.procs import read_pid

    lay = s.layout
    out = {}
    for name in process_keys(s.node_names) + ["supervisor"]:
        pid = read_pid(lay.pidfile(name))
        if sys.alive(pid, lay.marker):
            out[name] = pid
    for node in s.node_names:
        pid = read_pid(lay.runtime_pid(node))
        if sys.alive(pid, lay.marker):
            out[node_key(node, "runtime")] = pid
    return out


def leftovers(sys: System, s: Settings) -> list[str]:
    """Things a previous `up` of this data directory made that are still there (without processes)."""
    from deploy.netsetup import link_exists

    out = []
    for ns in [s.fabric_ns, s.legacy_netns] + [s.node_netns(n) for n in s.node_names]:
        if sys.exists(f"/run/netns/{ns}"):
            out.append(f"network namespace {ns}")
    if link_exists(sys, s.host_if):
        out.append(f"link {s.host_if}")
    return out


def free_node_network(used: list[ipaddress.IPv4Network], prefix: int = 24,
                      space: str = "100.64.0.0/10") -> str | None:
    for net in ipaddress.ip_network(space).subnets(new_prefix=prefix):
        if not any(net.overlaps(u) for u in used):
            return str(net)
    return None


def _describe(nets: list[ipaddress.IPv4Network]) -> str:
    """Unique networks, without the ones inside another listed one (a /32 address in its /24)."""
    uniq = sorted(set(nets), key=lambda n: (n.prefixlen, n))
    keep = [n for n in uniq if not any(o != n and n.subnet_of(o) for o in uniq)]
    return ", ".join(map(str, sorted(keep)))


def check_networks(sys: System, s: Settings) -> list[Problem]:
    used = sys.used_networks()
    out = []
    node_net = ipaddress.ip_network(s.node_network)
    clash = [u for u in used if u.overlaps(node_net)]
    if clash:
        other = free_node_network(used, node_net.prefixlen) or "100.64.X.0/24"
        out.append(Problem(f"the node network {node_net} overlaps {_describe(clash)} already on this machine",
                           f"pick a free one: pocketkube up --node-network {other}"))
    if s.host_routes:
        for flag, cidr in (("cluster CIDR", s.cluster_cidr), ("service CIDR", s.service_cidr)):
            net = ipaddress.ip_network(cidr)
            clash = [u for u in used if u.overlaps(net)]
            if clash:
                out.append(Problem(f"the {flag} {net} overlaps {_describe(clash)} already routed on this "
                                   "machine, so pocketkube cannot add its host route",
                                   "pocketkube up --no-host-routes (reach pods and services from inside a node "
                                   f"namespace: nsenter --net=/run/netns/{s.netns} ...), or free that range"))
    return out


def check_port(sys: System, s: Settings) -> list[Problem]:
    for addr in ("127.0.0.1", "0.0.0.0"):
        if sys.port_in_use(addr, s.port):
            return [Problem(f"port {s.port} (the API server's) is already in use on {addr}",
                            f"stop what listens there (ss -ltnp 'sport = :{s.port}') or pick another: "
                            f"pocketkube up --port {s.port + 1 if s.port < 65535 else 6444}")]
    return []


def check_all(sys: System, s: Settings) -> list[Problem]:
    """Every problem that keeps `up` from starting, before anything is changed."""
    problems = [Problem(e, "fix the flag") for e in s.validate()]
    problems += check_root(sys)
    problems += check_tools(sys, s.egress)
    if problems and any("root" in p.what for p in problems):
        return problems          # the rest needs root to answer truthfully
    problems += check_netns_support(sys)
    stale = leftovers(sys, s)
    if stale:
        problems.append(Problem(f"an old cluster's pieces are still here ({', '.join(stale)})",
                                f"run pocketkube down --data-dir {s.data_dir} first"))
    else:
        problems += check_networks(sys, s) if not any("--node-network" in p.what for p in problems) else []
    problems += check_port(sys, s)
    return problems


def data_dir_problem(data_dir: str) -> list[Problem]:
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        return [Problem(f"--data-dir {data_dir} exists and is not a directory", "pick another --data-dir")]
    return []
