"""Where a local cluster keeps its files, and the settings `up` chose (DIR/state.json).

Everything `pocketkube up --data-dir DIR` makes is named from DIR, so
`down` and `status` find it again with nothing but DIR:

* the short id is the first 6 hex digits of sha256(absolute DIR), so two
  clusters with different data directories never share a name;
* the fabric namespace ``pk-<id>-fabric`` (bridge ``br-fabric``), the
  machine's veth ``pkh<id>`` into it; node namespaces ``pk-<id>-<node>``,
  each with its fabric interface ``pkn<id>``; cgroups under
  ``pocketkube/pk-<id>-<node>``.

Nodes are numbered from 1 (``index``); node ``i`` has the node network's
address ``network + 1 + i`` (the host end is ``network + 1``), so with the
default 100.64.0.0/24: host 100.64.0.1, node-1 100.64.0.2, node-2 .3, ...
An index is never reused while its node exists; `node add` takes the
lowest free one.

Files under DIR::

    state.json          the settings below, with the nodes (written before anything
                        is changed, so `down` can undo a half-finished `up`)
    kubeconfig          admin credentials for pkctl / kubectl (server 127.0.0.1)
    control-plane.kubeconfig   for the scheduler and controller-manager
    proxy.kubeconfig, netd.kubeconfig, dns.kubeconfig   the node-side components'
                        own identities (server = host end of the fabric link)
    nodes/<node>/kubeconfig    the node's kubelet (``system:node:<node>``)
    nodes/<node>/kubelet/      its root dir (runtime, pod logs, CNI state)
    tokens.csv          --token-auth-file of the API server (mode 0600)
    kubelet-token       the token the API server presents to the kubelets
    data/               the API server's SQLite database (kept by `down`)
    logs/<key>.log, run/<key>.pid   per process; a key is ``apiserver``,
                        ``scheduler``, ... or ``<node>/kubelet``, ``<node>/proxy``,
                        ``<node>/netd``; ``supervisor`` too
    run/commands.json   every supervised process's command line (``deploy.supervise``)
    run/restarts.json   restart counts, shown by `status`

Settings given as flags win; otherwise the ones saved by the previous `up`
are reused (so `up` after `down` brings back the same cluster), otherwise
the defaults.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields

DEFAULT_DATA_DIR = "/var/lib/pocketkube"
DEFAULT_NODE_NETWORK = "100.64.0.0/24"
DEFAULT_PORT = 6443
DEFAULT_POD_CIDR = None          # from the controller-manager's node IPAM (--pod-cidr pins node-1's)
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_NAME = "node-1"
DEFAULT_BACKEND = "host-gw"
BACKENDS = {"host-gw": 1500, "vxlan": 1450}      # backend -> pod MTU (fabric MTU 1500; VXLAN costs 50 bytes)
FABRIC_MTU = 1500
FABRIC_BRIDGE = "br-fabric"
DNS_IP = "10.96.0.10"
DNS_HEALTH_PORT = 8053
KUBELET_PORT = 10250

# Start order; `down` stops them in reverse (the kubelets' runtimes are handled apart).
CLUSTER_COMPONENTS = ("apiserver", "controller-manager", "scheduler")
NODE_COMPONENTS = ("kubelet", "proxy", "netd")
COMPONENTS = ("apiserver", "controller-manager", "scheduler", "kubelet", "proxy", "netd", "dns")


def node_key(node: str, component: str) -> str:
    """The process key of a per-node component: ``node-1/kubelet`` (also its log and PID file path)."""
    return f"{node}/{component}"


def process_keys(node_names: list[str]) -> list[str]:
    """Every supervised process, in start order: the control plane, each node's kubelet, proxy, netd, then DNS."""
    keys = list(CLUSTER_COMPONENTS)
    for n in node_names:
        keys += [node_key(n, c) for c in NODE_COMPONENTS]
    return keys + ["dns"]


def short_id(data_dir: str) -> str:
    return hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:6]


def node_ip_of(node_network: str, index: int) -> str:
    """Node ``index`` (from 1): the node network's address ``network + 1 + index``."""
    net = ipaddress.ip_network(node_network, strict=True)
    ip = net.network_address + 1 + index
    if ip >= net.broadcast_address or index < 1:
        raise ValueError(f"{node_network} has no address for node {index}")
    return str(ip)


def max_nodes(node_network: str) -> int:
    net = ipaddress.ip_network(node_network, strict=True)
    return max(0, net.num_addresses - 3)


def node_addresses(node_network: str) -> tuple[str, str, int]:
    """(host end, node end, prefix length) of a node network: its first two addresses."""
    net = ipaddress.ip_network(node_network, strict=True)
    if net.version != 4:
        raise ValueError(f"{node_network}: the node network must be IPv4")
    if net.prefixlen > 30:
        raise ValueError(f"{node_network}: the node network needs at least two host addresses (a /30 or larger)")
    hosts = net.hosts()
    return str(next(hosts)), str(next(hosts)), net.prefixlen


@dataclass
class Layout:
    data_dir: str

    def __post_init__(self) -> None:
        self.data_dir = os.path.abspath(self.data_dir)

    @property
    def marker(self) -> str:
        """In the command line of every process of this cluster (all take paths under DIR)."""
        return self.data_dir.rstrip("/") + "/"

    def path(self, *parts: str) -> str:
        return os.path.join(self.data_dir, *parts)

    @property
    def state(self) -> str:
        return self.path("state.json")

    @property
    def kubeconfig(self) -> str:
        return self.path("kubeconfig")

    def node_dir(self, node: str) -> str:
        return self.path("nodes", node)

    def node_kubeconfig(self, node: str) -> str:
        """The node's kubelet credentials (``system:node:<node>``)."""
        return self.path("nodes", node, "kubeconfig")

    def component_kubeconfig(self, component: str) -> str:
        """``proxy``, ``netd``, ``dns``: one identity each, shared by that component on every node."""
        return self.path(f"{component}.kubeconfig")

    @property
    def commands(self) -> str:
        return self.path("run", "commands.json")

    @property
    def restarts(self) -> str:
        return self.path("run", "restarts.json")

    @property
    def control_plane_kubeconfig(self) -> str:
        return self.path("control-plane.kubeconfig")

    @property
    def tokens(self) -> str:
        return self.path("tokens.csv")

    @property
    def kubelet_token(self) -> str:
        return self.path("kubelet-token")

    @property
    def db_dir(self) -> str:
        return self.path("data")

    def kubelet_root(self, node: str) -> str:
        return self.path("nodes", node, "kubelet")

    def kubelet_run_dir(self, node: str) -> str:
        """The kubelet's default ``--run-dir`` (ROOT/run), a tmpfs it mounts."""
        return os.path.join(self.kubelet_root(node), "run")

    def runtime_pid(self, node: str) -> str:
        return os.path.join(self.kubelet_root(node), "runtime", "runtime.pid")

    def runtime_socket(self, node: str) -> str:
        return os.path.join(self.kubelet_root(node), "runtime", "runtime.sock")

    def log(self, key: str) -> str:
        return self.path("logs", f"{key}.log")

    def pidfile(self, key: str) -> str:
        return self.path("run", f"{key}.pid")


@dataclass
class Settings:
    """What `up` decided; saved as DIR/state.json."""

    data_dir: str
    node_network: str = DEFAULT_NODE_NETWORK
    port: int = DEFAULT_PORT
    pod_cidr: str | None = DEFAULT_POD_CIDR
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    service_cidr: str = DEFAULT_SERVICE_CIDR
    node_name: str = DEFAULT_NODE_NAME          # the first node's name
    backend: str = DEFAULT_BACKEND
    host_routes: bool = True
    egress: bool = False
    # [{"name": "node-1", "index": 1}, ...]; empty (a version-1 state) means one node named node_name
    nodes: list[dict] = field(default_factory=list)
    # filled in by `up` while it works, read by `down`: "CIDR via IP" (a bare CIDR: via the first node)
    host_routes_added: list[str] = field(default_factory=list)
    egress_applied: dict = field(default_factory=dict)
    version: int = 2

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [{"name": self.node_name, "index": 1}]

    @property
    def id(self) -> str:
        return short_id(self.data_dir)

    # ------------------------------------------------------------ names
    @property
    def fabric_ns(self) -> str:
        return f"pk-{self.id}-fabric"

    @property
    def legacy_netns(self) -> str:
        """The one node namespace of a version-1 cluster (`down` removes it too)."""
        return f"pk-{self.id}-node"

    def node_netns(self, node: str) -> str:
        return f"pk-{self.id}-{node}"

    def cgroup_root_of(self, node: str) -> str:
        return f"pocketkube/{self.node_netns(node)}"

    @property
    def host_if(self) -> str:
        return f"pkh{self.id}"

    @property
    def node_if(self) -> str:
        """Every node's fabric interface (one per node namespace, so one name does)."""
        return f"pkn{self.id}"

    @staticmethod
    def fabric_port(index: int) -> str:
        """The fabric-namespace end of node ``index``'s veth."""
        return f"node{index}"

    HOST_PORT = "host"          # the fabric-namespace end of the machine's veth

    @property
    def host_ip(self) -> str:
        return node_addresses(self.node_network)[0]

    @property
    def prefixlen(self) -> int:
        return node_addresses(self.node_network)[2]

    @property
    def mtu(self) -> int:
        return BACKENDS.get(self.backend, FABRIC_MTU)

    # ------------------------------------------------------------ nodes
    @property
    def node_names(self) -> list[str]:
        return [n["name"] for n in self.nodes]

    def node(self, name: str) -> dict:
        for n in self.nodes:
            if n["name"] == name:
                return n
        raise KeyError(name)

    def ip_of(self, node: str) -> str:
        return node_ip_of(self.node_network, int(self.node(node)["index"]))

    @property
    def first_node(self) -> str:
        return self.nodes[0]["name"]

    # the first node, under the one-node names the rest of `up` grew up with
    @property
    def netns(self) -> str:
        return self.node_netns(self.first_node)

    @property
    def node_ip(self) -> str:
        return self.ip_of(self.first_node)

    @property
    def cgroup_root(self) -> str:
        return self.cgroup_root_of(self.first_node)

    def next_index(self) -> int:
        used = {int(n["index"]) for n in self.nodes}
        i = 1
        while i in used:
            i += 1
        return i

    @staticmethod
    def default_node_name(index: int) -> str:
        return f"node-{index}"

    @property
    def layout(self) -> Layout:
        return Layout(self.data_dir)

    def validate(self) -> list[str]:
        """Problems with the values themselves (not with the machine), each naming the flag."""
        errs = []
        try:
            node_addresses(self.node_network)
        except ValueError as e:
            errs.append(f"--node-network {e}")
        nets = {}
        cidrs = [("--cluster-cidr", self.cluster_cidr), ("--service-cidr", self.service_cidr)]
        if self.pod_cidr:
            cidrs.insert(0, ("--pod-cidr", self.pod_cidr))
        for flag, value in cidrs:
            try:
                n = ipaddress.ip_network(value, strict=True)
                if n.version != 4:
                    raise ValueError("must be IPv4")
                nets[flag] = n
            except ValueError as e:
                errs.append(f"{flag} {value}: {e}")
        if "--pod-cidr" in nets and "--cluster-cidr" in nets and not nets["--pod-cidr"].subnet_of(nets["--cluster-cidr"]):
            errs.append(f"--pod-cidr {self.pod_cidr} must lie inside --cluster-cidr {self.cluster_cidr}")
        if "--service-cidr" in nets and "--cluster-cidr" in nets and nets["--service-cidr"].overlaps(nets["--cluster-cidr"]):
            errs.append(f"--service-cidr {self.service_cidr} overlaps --cluster-cidr {self.cluster_cidr}")
        if "--service-cidr" in nets and ipaddress.ip_address(DNS_IP) not in nets["--service-cidr"]:
            errs.append(f"--service-cidr {self.service_cidr} must contain the DNS address {DNS_IP}")
        if not errs:
            node_net = ipaddress.ip_network(self.node_network)
            for flag, n in nets.items():
                if n.overlaps(node_net):
                    errs.append(f"--node-network {self.node_network} overlaps {flag} {n}")
        if not 0 < self.port < 65536:
            errs.append(f"--port {self.port}: must be between 1 and 65535")
        for name in self.node_names:
            errs += node_name_problems(name)
        if self.backend not in BACKENDS:
            errs.append(f"--backend {self.backend!r}: one of {', '.join(BACKENDS)}")
        if not errs and len(self.nodes) > max_nodes(self.node_network):
            errs.append(f"--node-network {self.node_network} has room for {max_nodes(self.node_network)} node(s), "
                        f"not {len(self.nodes)}")
        if len(set(self.node_names)) != len(self.nodes):
            errs.append("node names must be unique")
        return errs

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> "Settings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


def node_name_problems(name: str) -> list[str]:
    # a DNS label (it names a namespace, a directory and a cgroup too), short enough for pk-<id>-<name>
    if not name or len(name) > 40 or not all(c.isalnum() or c == "-" for c in name) or name != name.lower() \
            or name.startswith("-") or name.endswith("-") or name in ("fabric", "node"):
        return [f"node name {name!r}: lower-case letters, digits and '-' only, at most 40 characters, "
                "not 'fabric' or 'node'"]
    return []


def load_state(data_dir: str) -> Settings | None:
    path = Layout(data_dir).state
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StateError(f"cannot read {path}: {e} (move it away, or run `pocketkube down --data-dir "
                         f"{os.path.abspath(data_dir)} --purge` to start afresh)") from e
    if not isinstance(doc, dict):
        raise StateError(f"{path} is not a JSON object")
    doc["data_dir"] = os.path.abspath(data_dir)
    return Settings.from_json(doc)


def save_state(settings: Settings) -> None:
    path = settings.layout.state
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        json.dump(settings.to_json(), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class StateError(Exception):
    pass


def resolve_settings(data_dir: str, saved: Settings | None, **flags) -> Settings:
    """Flags given (not None) win over the saved settings, which win over the defaults."""
    base = Settings(data_dir=os.path.abspath(data_dir))
    if saved is not None:
        for f in fields(Settings):
            if f.name in ("data_dir", "host_routes_added", "egress_applied"):
                continue
            setattr(base, f.name, getattr(saved, f.name))
        base.nodes = [dict(n) for n in saved.nodes]
        base.host_routes_added = list(saved.host_routes_added)
        base.egress_applied = dict(saved.egress_applied)
    for k, v in flags.items():
        if v is not None:
            setattr(base, k, v)
    return base
