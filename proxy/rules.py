"""The pure half of the proxy: Services + Endpoints -> the node's desired iptables chains.

Nothing here does I/O, so the whole ruleset is unit-tested as golden text.
The layout and names are kube-proxy's iptables mode (DESIGN.md, "Network
layout"), so what a learner sees with ``iptables-save`` matches a real
cluster::

    nat PREROUTING, OUTPUT -> KUBE-SERVICES
        KUBE-SERVICES   -d <clusterIP> -p <proto> --dport <port> -> KUBE-SVC-<hash>   (one per service port
                        ... last: -m addrtype --dst-type LOCAL -> KUBE-NODEPORTS       with endpoints)
                        -d <externalIP | loadBalancer IP> ... -> KUBE-EXT-<hash>
        KUBE-NODEPORTS  -p <proto> --dport <nodePort> -> KUBE-EXT-<hash>
        KUBE-EXT-<hash> externalTrafficPolicy Cluster: -> KUBE-MARK-MASQ, then -> KUBE-SVC-<hash>
                        Local: pods (-s <clusterCIDR>) and the node (--src-type LOCAL, masqueraded)
                        -> KUBE-SVC-<hash>; everyone else -> KUBE-SVL-<hash>, source kept
        KUBE-SVC-<hash> ! -s <clusterCIDR> ... -> KUBE-MARK-MASQ      (off-cluster clients are SNATed)
                        [ClientIP affinity: -m recent --rcheck --seconds T --reap -> KUBE-SEP-x, per endpoint]
                        -m statistic --mode random --probability 1/n -> KUBE-SEP-<hash>   (n = endpoints left)
        KUBE-SVL-<hash> the same over this node's endpoints only (a Local policy; the endpoint's nodeName)
        KUBE-SEP-<hash> -s <podIP> -> KUBE-MARK-MASQ                  (hairpin: a pod reaching itself)
                        [-m recent --set] -> DNAT --to-destination <podIP>:<port>
        KUBE-MARK-MASQ  -> MARK 0x4000
    nat POSTROUTING -> KUBE-POSTROUTING: marked packets are MASQUERADEd
    filter INPUT/FORWARD/OUTPUT (NEW) -> KUBE-SERVICES / KUBE-EXTERNAL-SERVICES:
                        REJECT for service ports without endpoints ("connection refused" at once),
                        DROP where a Local policy finds none on this node ("has no local endpoints")
    filter FORWARD -> KUBE-FORWARD: accept marked and established service traffic

Hashed names follow kube-proxy exactly: ``KUBE-SVC-`` + the first 16
characters of base32(sha256(servicePortName + protocol)) (``KUBE-SVL-`` and
``KUBE-EXT-`` the same with their prefix), and ``KUBE-SEP-``
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
SVL_PREFIX = "KUBE-SVL-"
SEP_PREFIX = "KUBE-SEP-"
EXT_PREFIX = "KUBE-EXT-"

TABLES = ("filter", "nat")
FIXED_CHAINS = {
    "filter": (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD),
    "nat": (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_MARK_MASQ, KUBE_POSTROUTING),
}
HASHED_PREFIXES = (SVC_PREFIX, SVL_PREFIX, SEP_PREFIX, EXT_PREFIX)
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


def svl_chain(port_name: str, protocol: str) -> str:
    """The service port's chain of this node's endpoints only (a traffic policy of ``Local``)."""
    return SVL_PREFIX + _hash16(port_name + protocol.lower())


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
    node_name: str | None = None  # endpoints whose nodeName is this one are "local"

    @property
    def mark(self) -> str:
        v = 1 << self.masquerade_bit
        return f"{v:#x}/{v:#x}"


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    local: bool = False  # on this proxy's node (the address's nodeName is Config.node_name)

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
    lb_ips: tuple[str, ...] = ()          # status.loadBalancer.ingress[].ip
    external_local: bool = False          # externalTrafficPolicy: Local (externally reachable ports only)
    internal_local: bool = False          # internalTrafficPolicy: Local

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.lb_ips)

    @property
    def local_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.local)

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


def service_ports(service: dict, endpoints: dict | None, node_name: str | None = None) -> list[ServicePort]:
    """Flatten a Service and its Endpoints into the ports the proxy programs.

    Only ready addresses (``addresses``) receive traffic; an endpoint port is
    matched to the service port by name, as kube-proxy does. An address whose
    ``nodeName`` is ``node_name`` is local (what the ``Local`` traffic
    policies keep). Headless and ExternalName services have nothing to
    program.
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
    lb_ips: tuple[str, ...] = ()
    if spec.get("type") == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb_ips = tuple(dict.fromkeys(i["ip"] for i in ingress if isinstance(i, dict) and _valid_ipv4(i.get("ip"))))
    externally = node_ports or bool(external_ips) or bool(lb_ips)
    external_local = externally and spec.get("externalTrafficPolicy") == "Local"
    internal_local = spec.get("internalTrafficPolicy") == "Local"
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
                        local = node_name is not None and addr.get("nodeName") == node_name
                        eps[(packed, int(number))] = Endpoint(addr["ip"], int(number), local)
        out.append(ServicePort(
            namespace=md.get("namespace", ""), name=md.get("name", ""), port_name=name, protocol=protocol,
            port=int(sp.get("port") or 0), cluster_ip=cluster_ip,
            node_port=int(sp["nodePort"]) if node_ports and sp.get("nodePort") else None,
            affinity_timeout=timeout,
            endpoints=tuple(eps[k] for k in sorted(eps)),
            external_ips=external_ips, lb_ips=lb_ips,
            external_local=external_local, internal_local=internal_local,
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


def _reject_or_drop(r: ServiceRules, sp: ServicePort, proto: str, comment: str, target: str, *,
                    internal: bool, external: bool) -> None:
    """Filter rules for traffic that has nowhere to go: REJECT (no endpoints at all, "connection refused" at
    once) or DROP (endpoints, but none on this node for a ``Local`` policy), as kube-proxy."""
    key = sp.key
    verdict = f"-j {target}" + (" --reject-with icmp-port-unreachable" if target == "REJECT" else "")
    if internal:
        r.filter_services.append(f"-A {KUBE_SERVICES} -d {sp.cluster_ip}/32 {_comment(key + comment)} {proto} "
                                 f"--dport {sp.port} {verdict}")
    if not external:
        return
    for ip in sp.external_ips + sp.lb_ips:
        r.filter_external.append(f"-A {KUBE_EXTERNAL_SERVICES} -d {ip}/32 {_comment(key + comment)} {proto} "
                                 f"--dport {sp.port} {verdict}")
    if sp.node_port:
        r.filter_external.append(f"-A {KUBE_EXTERNAL_SERVICES} {_comment(key + comment)} -m addrtype "
                                 f"--dst-type LOCAL {proto} --dport {sp.node_port} {verdict}")


def _spread(chain: str, sp: ServicePort, seps: list[tuple[Endpoint, str]]) -> list[str]:
    """A policy chain's rules: ClientIP affinity checks, then one random pick per endpoint (1/n of those left)."""
    key = sp.key
    rules: list[str] = []
    if sp.affinity_timeout:
        for ep, sep in seps:
            rules.append(f"-A {chain} {_comment(f'{key} -> {ep}')} -m recent --name {sep} --rcheck "
                         f"--seconds {sp.affinity_timeout} --reap -j {sep}")
    n = len(seps)
    for i, (ep, sep) in enumerate(seps):
        left = n - i
        if left > 1:
            rules.append(f"-A {chain} {_comment(f'{key} -> {ep}')} -m statistic --mode random "
                         f"--probability {1.0 / left:0.10f} -j {sep}")
        else:
            rules.append(f"-A {chain} {_comment(f'{key} -> {ep}')} -j {sep}")
    return rules


def build_service(ports: Iterable[ServicePort], cfg: Config) -> ServiceRules:
    """The rules of one service (all its ports); pure and deterministic.

    The traffic policies follow kube-proxy: ``KUBE-SVC-`` spreads over every
    endpoint (policy ``Cluster``), ``KUBE-SVL-`` over this node's only
    (``Local``). Cluster-IP traffic goes to the chain of
    ``internalTrafficPolicy``; external traffic (node ports, external IPs,
    load-balancer IPs) to ``KUBE-EXT-``, which for ``Cluster`` marks it for
    masquerade (the reply must come back through this node, which may have
    sent it to another) and for ``Local`` keeps the client's address, jumps
    to ``KUBE-SVL-`` and, with no local endpoint, lets the filter table DROP
    it ("has no local endpoints"); pods and the node itself reaching an
    external address of a ``Local`` service are still served by every
    endpoint (the node's own traffic masqueraded), as upstream.
    """
    r = ServiceRules(ports=tuple(ports))
    for sp in r.ports:
        key = sp.key
        proto = _proto(sp.protocol)
        vip = f"-d {sp.cluster_ip}/32"
        if not sp.endpoints:
            _reject_or_drop(r, sp, proto, " has no endpoints", "REJECT", internal=True, external=True)
            continue
        externally = sp.externally_accessible
        etp_local = sp.external_local and externally
        local_eps = sp.local_endpoints if sp.internal_local or etp_local else ()
        svc = svc_chain(key, sp.protocol)
        svl = svl_chain(key, sp.protocol)
        uses_cluster = not sp.internal_local or externally
        uses_local = bool(local_eps) and (sp.internal_local or etp_local)
        internal_chain = svl if sp.internal_local else svc
        has_internal = not sp.internal_local or bool(local_eps)
        has_external = not etp_local or bool(local_eps)
        if not has_internal or not has_external:
            _reject_or_drop(r, sp, proto, " has no local endpoints", "DROP", internal=not has_internal,
                            external=externally and not has_external)

        internal_rules: list[str] = []
        if has_internal:
            r.nat_services.append(f"-A {KUBE_SERVICES} {vip} {_comment(key + ' cluster IP')} {proto} "
                                  f"--dport {sp.port} -j {internal_chain}")
            if cfg.masquerade_all:
                internal_rules.append(f"-A {internal_chain} {vip} {_comment(key + ' cluster IP')} {proto} "
                                      f"--dport {sp.port} -j {KUBE_MARK_MASQ}")
            elif cfg.cluster_cidr:
                internal_rules.append(f"-A {internal_chain} ! -s {cfg.cluster_cidr} {vip} "
                                      f"{_comment(key + ' cluster IP')} {proto} --dport {sp.port} -j {KUBE_MARK_MASQ}")
        if externally:
            ext = ext_chain(key, sp.protocol)
            for ip in sp.external_ips:
                r.nat_services.append(f"-A {KUBE_SERVICES} -d {ip}/32 {_comment(key + ' external IP')} "
                                      f"{proto} --dport {sp.port} -j {ext}")
            for ip in sp.lb_ips:
                r.nat_services.append(f"-A {KUBE_SERVICES} -d {ip}/32 {_comment(key + ' loadbalancer IP')} "
                                      f"{proto} --dport {sp.port} -j {ext}")
            if sp.node_port:
                r.nat_nodeports.append(f"-A {KUBE_NODEPORTS} {_comment(key)} {proto} --dport {sp.node_port} -j {ext}")
            if not etp_local:
                ext_rules = [f"-A {ext} {_comment('masquerade traffic for ' + key + ' external destinations')} "
                             f"-j {KUBE_MARK_MASQ}", f"-A {ext} -j {svc}"]
            else:
                ext_rules = []
                if cfg.cluster_cidr:
                    # A pod going "out and back in" through an external address: any endpoint will do.
                    ext_rules.append(f"-A {ext} {_comment('pod traffic for ' + key + ' external destinations')} "
                                     f"-s {cfg.cluster_cidr} -j {svc}")
                # The node itself: its source address is one of its own, so masquerade, and any endpoint.
                ext_rules += [
                    f"-A {ext} {_comment('masquerade LOCAL traffic for ' + key + ' external destinations')} "
                    f"-m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}",
                    f"-A {ext} {_comment('route LOCAL traffic for ' + key + ' external destinations')} "
                    f"-m addrtype --src-type LOCAL -j {svc}",
                ]
                if has_external:
                    ext_rules.append(f"-A {ext} -j {svl}")
            r.chains[ext] = tuple(ext_rules)
        seps = [(ep, sep_chain(key, sp.protocol, str(ep))) for ep in (sp.endpoints if uses_cluster else local_eps)]
        if uses_cluster:
            r.chains[svc] = tuple((internal_rules if internal_chain == svc else []) + _spread(svc, sp, seps))
        if uses_local:
            r.chains[svl] = tuple((internal_rules if internal_chain == svl else [])
                                  + _spread(svl, sp, [(ep, sep) for ep, sep in seps if ep.local]))
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
                rules = build_service(service_ports(svc, ep, self.cfg.node_name), self.cfg)
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
    "build_service", "service_ports", "svc_chain", "svl_chain", "sep_chain", "ext_chain", "owned_chain", "JUMPS",
    "FIXED_CHAINS", "BUILTIN_CHAINS", "TABLES", "HASHED_PREFIXES", "MAX_CHAIN_LEN",
]
