"""The pure half of the proxy: Services + Endpoints -> the node's desired iptables chains.

Nothing here does I/O, so the whole ruleset is unit-tested as golden text.
The layout and names are kube-proxy's iptables mode (DESIGN.md, "Network
layout"), so what a learner sees with ``iptables-save`` matches a real
cluster::

    nat PREROUTING, OUTPUT -> KUBE-SERVICES
        KUBE-SERVICES   -d <clusterIP> -p <proto> --dport <port> -> KUBE-SVC-<hash>   (one per service port
                        ... last: -m addrtype --dst-type LOCAL -> KUBE-NODEPORTS       with endpoints)
        KUBE-NODEPORTS  -p <proto> --dport <nodePort> -> KUBE-EXT-<hash>
        KUBE-EXT-<hash> -> KUBE-MARK-MASQ, then -> KUBE-SVC-<hash>   (external traffic is always SNATed)
        KUBE-SVC-<hash> ! -s <clusterCIDR> ... -> KUBE-MARK-MASQ      (off-cluster clients are SNATed)
                        [ClientIP affinity: -m recent --rcheck --seconds T --reap -> KUBE-SEP-x, per endpoint]
                        -m statistic --mode random --probability 1/n -> KUBE-SEP-<hash>   (n = endpoints left)
        KUBE-SEP-<hash> -s <podIP> -> KUBE-MARK-MASQ                  (hairpin: a pod reaching itself)
                        [-m recent --set] -> DNAT --to-destination <podIP>:<port>
        KUBE-MARK-MASQ  -> MARK 0x4000
    nat POSTROUTING -> KUBE-POSTROUTING: marked packets are MASQUERADEd
    filter INPUT/FORWARD/OUTPUT (NEW) -> KUBE-SERVICES / KUBE-EXTERNAL-SERVICES:
                        REJECT for service ports without endpoints ("connection refused" at once)
    filter FORWARD -> KUBE-FORWARD: accept marked and established service traffic

Hashed names follow kube-proxy exactly: ``KUBE-SVC-`` + the first 16
characters of base32(sha256(servicePortName + protocol)), and ``KUBE-SEP-``
over servicePortName + protocol + "ip:port", so they are deterministic,
unique per service port / endpoint, and 25 characters long (iptables allows
28). Ownership is by name: the proxy only ever touches the fixed chains
below and chains with the hashed prefixes.

A ``Ruleset`` is an ordered ``table -> chain -> rules`` map (each rule a
complete ``-A CHAIN ...`` line, as ``iptables-restore`` reads it). Per
service the rules are built once per (Service, Endpoints) resourceVersion
pair by ``RulesetBuilder``, so a sync after one endpoint changed costs one
service's worth of work, and unchanged chains are the very same tuples, which
makes the diff in ``proxy.proxier`` cheap.
"""
from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from typing import Iterable

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_FORWARD = "KUBE-FORWARD"
SVC_PREFIX = "KUBE-SVC-"
SEP_PREFIX = "KUBE-SEP-"
EXT_PREFIX = "KUBE-EXT-"

TABLES = ("filter", "nat")
FIXED_CHAINS = {
    "filter": (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD),
    "nat": (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_MARK_MASQ, KUBE_POSTROUTING),
}
HASHED_PREFIXES = (SVC_PREFIX, SEP_PREFIX, EXT_PREFIX)
BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}
MAX_CHAIN_LEN = 28  # iptables' limit (XT_EXTENSION_MAXNAMELEN - 1)

# Jumps from the built-in chains into ours: (table, built-in chain, rule spec).
# They are inserted at the top of the built-in chain once, never flushed.
JUMPS: tuple[tuple[str, str, str], ...] = (
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),
)


def owned_chain(name: str, table: str) -> bool:
    """True for chains this proxy created (fixed names, or its hashed prefixes in nat)."""
    if name in FIXED_CHAINS.get(table, ()):
        return True
    return table == "nat" and name.startswith(HASHED_PREFIXES)


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]  # 10 bits -> 2 characters


def _hash16(s: str) -> str:
    """The first 16 characters of base32(sha256(s)), as kube-proxy names chains.

    base32 encodes 5-byte groups independently, so those are the encoding of
    the digest's first 10 bytes; done with a 10-bit table because this runs
    once per endpoint and ``base64.b32encode`` is pure Python.
    """
    n = int.from_bytes(hashlib.sha256(s.encode()).digest()[:10], "big")
    p = _B32_PAIRS
    return (p[n >> 70] + p[(n >> 60) & 1023] + p[(n >> 50) & 1023] + p[(n >> 40) & 1023]
            + p[(n >> 30) & 1023] + p[(n >> 20) & 1023] + p[(n >> 10) & 1023] + p[n & 1023])


def svc_chain(port_name: str, protocol: str) -> str:
    return SVC_PREFIX + _hash16(port_name + protocol.lower())


def ext_chain(port_name: str, protocol: str) -> str:
    return EXT_PREFIX + _hash16(port_name + protocol.lower())


def sep_chain(port_name: str, protocol: str, endpoint: str) -> str:
    return SEP_PREFIX + _hash16(port_name + protocol.lower() + endpoint)


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Config:
    """Per-node settings of the proxy."""

    cluster_cidr: str | None = "10.244.0.0/16"  # traffic from outside it is masqueraded
    masquerade_bit: int = 14
    masquerade_all: bool = False

    @property
    def mark(self) -> str:
        v = 1 << self.masquerade_bit
        return f"{v:#x}/{v:#x}"


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one service, with the endpoints the proxy would send it to."""

    namespace: str
    name: str
    port_name: str
    protocol: str           # TCP | UDP | SCTP
    port: int
    cluster_ip: str | None  # None for headless / no IP
    node_port: int | None
    affinity_timeout: int   # 0 = no ClientIP affinity
    endpoints: tuple[Endpoint, ...] = ()
    external_ips: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Upstream's ServicePortName string: ``ns/name:port`` (``ns/name`` if the port is unnamed)."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base


def _ipv4_key(ip: str | None) -> bytes | None:
    """The packed address (a sort key) of a dotted-quad IPv4 string, None if it is not one."""
    if not isinstance(ip, str) or ip.count(".") != 3:
        return None
    try:
        return socket.inet_aton(ip)  # C speed: this runs once per endpoint per change
    except OSError:
        return None


def _valid_ipv4(ip: str | None) -> bool:
    return _ipv4_key(ip) is not None


def service_ports(service: dict, endpoints: dict | None) -> list[ServicePort]:
    """Flatten a Service and its Endpoints into the ports the proxy programs.

    Only ready addresses (``addresses``) receive traffic; an endpoint port is
    matched to the service port by name, as kube-proxy does. Headless and
    ExternalName services have nothing to program.
    """
    md = service.get("metadata") or {}
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    cluster_ip = spec.get("clusterIP")
    if not _valid_ipv4(cluster_ip):
        return []
    timeout = 0
    if spec.get("sessionAffinity") == "ClientIP":
        timeout = int((((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                       .get("timeoutSeconds")) or 10800)
    node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    external_ips = tuple(ip for ip in spec.get("externalIPs") or [] if _valid_ipv4(ip))
    out = []
    for sp in spec.get("ports") or []:
        name = sp.get("name") or ""
        protocol = (sp.get("protocol") or "TCP").upper()
        eps: dict[tuple[bytes, int], Endpoint] = {}
        for subset in (endpoints or {}).get("subsets") or []:
            for ep_port in subset.get("ports") or []:
                if (ep_port.get("name") or "") != name or (ep_port.get("protocol") or "TCP").upper() != protocol:
                    continue
                number = ep_port.get("port")
                if not number:
                    continue
                for addr in subset.get("addresses") or []:
                    packed = _ipv4_key(addr.get("ip"))
                    if packed is not None:
                        eps[(packed, int(number))] = Endpoint(addr["ip"], int(number))
        out.append(ServicePort(
            namespace=md.get("namespace", ""), name=md.get("name", ""), port_name=name, protocol=protocol,
            port=int(sp.get("port") or 0), cluster_ip=cluster_ip,
            node_port=int(sp["nodePort"]) if node_ports and sp.get("nodePort") else None,
            affinity_timeout=timeout,
            endpoints=tuple(eps[k] for k in sorted(eps)),
            external_ips=external_ips,
        ))
    return out


# ----------------------------------------------------------------- output
@dataclass
class ServiceRules:
    """Everything one service contributes: rules in the shared chains, and chains of its own."""

    nat_services: list[str] = field(default_factory=list)
    nat_nodeports: list[str] = field(default_factory=list)
    filter_services: list[str] = field(default_factory=list)
    filter_external: list[str] = field(default_factory=list)
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # nat chains it owns
    ports: tuple[ServicePort, ...] = ()


@dataclass
class Ruleset:
    """``table -> chain -> rules`` in a fixed order, plus the ports it was built from."""

    tables: dict[str, dict[str, tuple[str, ...]]]
    ports: dict[str, ServicePort] = field(default_factory=dict)  # key + protocol -> ServicePort

    def render(self) -> str:
        """The complete ``iptables-restore`` text for these chains (no jumps, no deletions)."""
        out: list[str] = []
        for table in TABLES:
            chains = self.tables.get(table) or {}
            out.append(f"*{table}")
            out.extend(f":{c} - [0:0]" for c in chains)
            for rules in chains.values():
                out.extend(rules)
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def rule_count(self) -> int:
        return sum(len(r) for t in self.tables.values() for r in t.values())

    def chain_count(self) -> int:
        return sum(len(t) for t in self.tables.values())


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"' if " " in text else f"-m comment --comment {text}"


def _proto(protocol: str) -> str:
    p = protocol.lower()
    return f"-p {p} -m {p}"


def build_service(ports: Iterable[ServicePort], cfg: Config) -> ServiceRules:
    """The rules of one service (all its ports); pure and deterministic."""
    r = ServiceRules(ports=tuple(ports))
    for sp in r.ports:
        key = sp.key
        proto = _proto(sp.protocol)
        svc = svc_chain(key, sp.protocol)
        vip = f"-d {sp.cluster_ip}/32"
        if not sp.endpoints:
            r.filter_services.append(
                f"-A {KUBE_SERVICES} {vip} {_comment(key + ' has no endpoints')} {proto} "
                f"--dport {sp.port} -j REJECT --reject-with icmp-port-unreachable")
            for ip in sp.external_ips:
                r.filter_external.append(
                    f"-A {KUBE_EXTERNAL_SERVICES} -d {ip}/32 {_comment(key + ' has no endpoints')} {proto} "
                    f"--dport {sp.port} -j REJECT --reject-with icmp-port-unreachable")
            if sp.node_port:
                r.filter_external.append(
                    f"-A {KUBE_EXTERNAL_SERVICES} {_comment(key + ' has no endpoints')} -m addrtype "
                    f"--dst-type LOCAL {proto} --dport {sp.node_port} -j REJECT --reject-with icmp-port-unreachable")
            continue
        r.nat_services.append(f"-A {KUBE_SERVICES} {vip} {_comment(key + ' cluster IP')} {proto} "
                              f"--dport {sp.port} -j {svc}")
        rules: list[str] = []
        if cfg.masquerade_all:
            rules.append(f"-A {svc} {vip} {_comment(key + ' cluster IP')} {proto} --dport {sp.port} "
                         f"-j {KUBE_MARK_MASQ}")
        elif cfg.cluster_cidr:
            rules.append(f"-A {svc} ! -s {cfg.cluster_cidr} {vip} {_comment(key + ' cluster IP')} {proto} "
                         f"--dport {sp.port} -j {KUBE_MARK_MASQ}")
        if sp.node_port or sp.external_ips:
            ext = ext_chain(key, sp.protocol)
            if sp.node_port:
                r.nat_nodeports.append(f"-A {KUBE_NODEPORTS} {_comment(key)} {proto} --dport {sp.node_port} -j {ext}")
            for ip in sp.external_ips:
                r.nat_services.append(f"-A {KUBE_SERVICES} -d {ip}/32 {_comment(key + ' external IP')} "
                                      f"{proto} --dport {sp.port} -j {ext}")
            r.chains[ext] = (
                f"-A {ext} {_comment('masquerade traffic for ' + key + ' external destinations')} -j {KUBE_MARK_MASQ}",
                f"-A {ext} -j {svc}",
            )
        seps = [(ep, sep_chain(key, sp.protocol, str(ep))) for ep in sp.endpoints]
        if sp.affinity_timeout:
            for ep, sep in seps:
                rules.append(f"-A {svc} {_comment(f'{key} -> {ep}')} -m recent --name {sep} --rcheck "
                             f"--seconds {sp.affinity_timeout} --reap -j {sep}")
        n = len(seps)
        for i, (ep, sep) in enumerate(seps):
            left = n - i
            if left > 1:
                rules.append(f"-A {svc} {_comment(f'{key} -> {ep}')} -m statistic --mode random "
                             f"--probability {1.0 / left:0.10f} -j {sep}")
            else:
                rules.append(f"-A {svc} {_comment(f'{key} -> {ep}')} -j {sep}")
        r.chains[svc] = tuple(rules)
        for ep, sep in seps:
            recent = f" -m recent --set --name {sep} --mask 255.255.255.255 --rsource" if sp.affinity_timeout else ""
            r.chains[sep] = (
                f"-A {sep} {_comment(key)} -s {ep.ip}/32 -j {KUBE_MARK_MASQ}",
                f"-A {sep} {_comment(key)}{recent} {proto} -j DNAT --to-destination {ep}",
            )
    return r


def fixed_chains(cfg: Config) -> dict[str, dict[str, tuple[str, ...]]]:
    """The static rules of the fixed chains (their service-dependent parts are appended by ``assemble``)."""
    mark = cfg.mark
    return {
        "filter": {
            KUBE_FORWARD: (
                f"-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP",
                f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark} -j ACCEPT',
                f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
                f"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            ),
        },
        "nat": {
            KUBE_MARK_MASQ: (f"-A {KUBE_MARK_MASQ} -j MARK --set-xmark {mark}",),
            KUBE_POSTROUTING: (
                f"-A {KUBE_POSTROUTING} -m mark ! --mark {mark} -j RETURN",
                # Clear the mark so a packet re-entering the stack is not masqueraded twice.
                f"-A {KUBE_POSTROUTING} -j MARK --set-xmark {mark.split('/')[0]}/0x0",
                f'-A {KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
                f"-j MASQUERADE --random-fully",
            ),
        },
    }


def assemble(per_service: list[ServiceRules], cfg: Config) -> Ruleset:
    """Join per-service rules (already in a deterministic order) into the node's Ruleset."""
    nat_services: list[str] = []
    nat_nodeports: list[str] = []
    filter_services: list[str] = []
    filter_external: list[str] = []
    own: dict[str, tuple[str, ...]] = {}
    ports: dict[str, ServicePort] = {}
    for r in per_service:
        nat_services += r.nat_services
        nat_nodeports += r.nat_nodeports
        filter_services += r.filter_services
        filter_external += r.filter_external
        own.update(r.chains)
        for sp in r.ports:
            ports[sp.key + "/" + sp.protocol] = sp
    nat_services.append(f'-A {KUBE_SERVICES} -m comment --comment "kubernetes service nodeports; NOTE: this must '
                        f'be the last rule in this chain" -m addrtype --dst-type LOCAL -j {KUBE_NODEPORTS}')
    fixed = fixed_chains(cfg)
    filter_chains = {
        KUBE_SERVICES: tuple(filter_services),
        KUBE_EXTERNAL_SERVICES: tuple(filter_external),
        KUBE_FORWARD: fixed["filter"][KUBE_FORWARD],
    }
    nat_chains = {
        KUBE_SERVICES: tuple(nat_services),
        KUBE_NODEPORTS: tuple(nat_nodeports),
        KUBE_MARK_MASQ: fixed["nat"][KUBE_MARK_MASQ],
        KUBE_POSTROUTING: fixed["nat"][KUBE_POSTROUTING],
    }
    nat_chains.update(own)
    return Ruleset({"filter": filter_chains, "nat": nat_chains}, ports)


def _service_key(svc: dict) -> str:
    md = svc.get("metadata") or {}
    return f"{md.get('namespace')}/{md.get('name')}"


def _rv(obj: dict | None) -> str | None:
    if obj is None:
        return None
    return (obj.get("metadata") or {}).get("resourceVersion") or str(id(obj))


class RulesetBuilder:
    """Builds Rulesets, reusing each service's rules while its objects are unchanged."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._cache: dict[str, tuple[str | None, str | None, ServiceRules]] = {}

    def build(self, services: Iterable[dict], endpoints: dict[str, dict]) -> Ruleset:
        """``endpoints`` maps ``namespace/name`` to the Endpoints object of that service."""
        per_service: list[tuple[str, ServiceRules]] = []
        seen: set[str] = set()
        for svc in services:
            key = _service_key(svc)
            seen.add(key)
            ep = endpoints.get(key)
            svc_rv, ep_rv = _rv(svc), _rv(ep)
            cached = self._cache.get(key)
            if cached is not None and cached[0] == svc_rv and cached[1] == ep_rv:
                rules = cached[2]
            else:
                rules = build_service(service_ports(svc, ep), self.cfg)
                self._cache[key] = (svc_rv, ep_rv, rules)
            per_service.append((key, rules))
        for key in [k for k in self._cache if k not in seen]:
            del self._cache[key]
        per_service.sort(key=lambda kr: kr[0])
        return assemble([r for _, r in per_service], self.cfg)


def build_ruleset(services: Iterable[dict], endpoints: dict[str, dict], cfg: Config | None = None) -> Ruleset:
    """One-shot build (no cache)."""
    return RulesetBuilder(cfg or Config()).build(services, endpoints)


__all__ = [
    "Config", "Endpoint", "ServicePort", "ServiceRules", "Ruleset", "RulesetBuilder", "build_ruleset",
    "build_service", "service_ports", "svc_chain", "sep_chain", "ext_chain", "owned_chain", "JUMPS",
    "FIXED_CHAINS", "BUILTIN_CHAINS", "TABLES", "HASHED_PREFIXES", "MAX_CHAIN_LEN",
]
