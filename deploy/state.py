"""Where a local cluster keeps its files, and the settings `up` chose (DIR/state.json).

Everything `pocketkube up --data-dir DIR` makes is named from DIR, so
`down` and `status` find it again with nothing but DIR:

* the short id is the first 6 hex digits of sha256(absolute DIR), so two
  clusters with different data directories never share a name;
* node namespace ``pk-<id>-node``; veth ``pkh<id>`` (host end) and
  ``pkn<id>`` (node end); cgroups under ``pocketkube/pk-<id>-node``.

Files under DIR::

    state.json          the settings below (written before anything is changed,
                        so `down` can undo a half-finished `up`)
    kubeconfig          admin credentials for pkctl / kubectl (server 127.0.0.1)
    node.kubeconfig     for the kubelet, proxy and DNS in the node namespace
                        (server = host end of the node link)
    control-plane.kubeconfig   for the scheduler and controller-manager
    tokens.csv          --token-auth-file of the API server (mode 0600)
    kubelet-token       the token the API server presents to the kubelet
    data/               the API server's SQLite database (kept by `down`)
    kubelet/            the kubelet's root dir (runtime, pod logs, CNI state)
    logs/<component>.log, run/<component>.pid

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
DEFAULT_POD_CIDR = "10.244.1.0/24"
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_NAME = "node-1"
DNS_IP = "10.96.0.10"
DNS_HEALTH_PORT = 8053
KUBELET_PORT = 10250

# Start order; `down` stops them in reverse (the kubelet's runtime is handled apart).
COMPONENTS = ("apiserver", "controller-manager", "scheduler", "kubelet", "proxy", "dns")


def short_id(data_dir: str) -> str:
    return hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:6]


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

    @property
    def node_kubeconfig(self) -> str:
        return self.path("node.kubeconfig")

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

    @property
    def kubelet_root(self) -> str:
        return self.path("kubelet")

    @property
    def kubelet_run_dir(self) -> str:
        """The kubelet's default ``--run-dir`` (ROOT/run), a tmpfs it mounts."""
        return self.path("kubelet", "run")

    @property
    def runtime_dir(self) -> str:
        return self.path("kubelet", "runtime")

    @property
    def runtime_pid(self) -> str:
        return self.path("kubelet", "runtime", "runtime.pid")

    @property
    def runtime_socket(self) -> str:
        return self.path("kubelet", "runtime", "runtime.sock")

    def log(self, component: str) -> str:
        return self.path("logs", f"{component}.log")

    def pidfile(self, component: str) -> str:
        return self.path("run", f"{component}.pid")


@dataclass
class Settings:
    """What `up` decided; saved as DIR/state.json."""

    data_dir: str
    node_network: str = DEFAULT_NODE_NETWORK
    port: int = DEFAULT_PORT
    pod_cidr: str = DEFAULT_POD_CIDR
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    service_cidr: str = DEFAULT_SERVICE_CIDR
    node_name: str = DEFAULT_NODE_NAME
    host_routes: bool = True
    egress: bool = False
    # filled in by `up` while it works, read by `down`:
    host_routes_added: list[str] = field(default_factory=list)
    egress_applied: dict = field(default_factory=dict)
    version: int = 1

    @property
    def id(self) -> str:
        return short_id(self.data_dir)

    @property
    def netns(self) -> str:
        return f"pk-{self.id}-node"

    @property
    def host_if(self) -> str:
        return f"pkh{self.id}"

    @property
    def node_if(self) -> str:
        return f"pkn{self.id}"

    @property
    def host_ip(self) -> str:
        return node_addresses(self.node_network)[0]

    @property
    def node_ip(self) -> str:
        return node_addresses(self.node_network)[1]

    @property
    def prefixlen(self) -> int:
        return node_addresses(self.node_network)[2]

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.pod_cidr).network_address + 1)

    @property
    def cgroup_root(self) -> str:
        return f"pocketkube/{self.netns}"

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
        for flag, value in (("--pod-cidr", self.pod_cidr), ("--cluster-cidr", self.cluster_cidr),
                            ("--service-cidr", self.service_cidr)):
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
        if not self.node_name or len(self.node_name) > 63 or not all(c.isalnum() or c in "-." for c in self.node_name) \
                or self.node_name != self.node_name.lower():
            errs.append(f"--node-name {self.node_name!r}: lower-case letters, digits, '-' and '.' only")
        return errs

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> "Settings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


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
        base.host_routes_added = list(saved.host_routes_added)
        base.egress_applied = dict(saved.egress_applied)
    for k, v in flags.items():
        if v is not None:
            setattr(base, k, v)
    return base
