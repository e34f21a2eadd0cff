"""The answers: Kubernetes DNS names -> records, as CoreDNS's kubernetes plugin serves them.

``Resolver.resolve(qname, qtype)`` is pure: it reads a ``ClusterView``
(informer Stores) and returns an ``Answer`` made of dnslib resource records;
it never touches a socket or the API server. The wire side (EDNS0,
truncation, the encoded-answer cache, forwarding) is ``addons.dns.handler``.

Names under the cluster domain (``cluster.local`` by default), following the
Kubernetes DNS specification (schema 1.1.0)::

    <svc>.<ns>.svc.<domain>                 A     the ClusterIP; for a headless service
                                                  the ready endpoint IPs; CNAME for ExternalName
    <host>.<svc>.<ns>.svc.<domain>          A     endpoint addresses whose hostname is <host>
                                                  (or, without one, whose IP dashed is <host>)
    _<port>._<proto>.<svc>.<ns>.svc.<domain> SRV  one per named port (ClusterIP) or per ready
                                                  endpoint address (headless), A records for
                                                  the targets in the additional section
    <svc>.<ns>.svc.<domain>                 SRV   every named port
    a-b-c-d.<ns>.pod.<domain>               A     a-b-c-d dotted (``pods``: verified = only if a pod
                                                  in <ns> has that IP; insecure = always; disabled)
    d.c.b.a.in-addr.arpa                    PTR   ClusterIP -> service name; endpoint IP ->
                                                  <host>.<svc>.<ns>.svc.<domain>; other pod IP ->
                                                  a-b-c-d.<ns>.pod.<domain>
    dns-version.<domain>                    TXT   "1.1.0"
    <domain>                                SOA

A name under the domain that does not exist is NXDOMAIN with the zone's SOA
in the authority section (whose minimum bounds negative caching); a name
that exists without records of the asked type (AAAA in this IPv4 cluster,
``<ns>.svc.<domain>`` of a namespace with services, a headless service with
no ready address) is NOERROR with no answer and the same SOA (NODATA).
Every in-zone answer is authoritative (AA) with the configured TTL.

Names outside the domain, and reverse names of addresses the cluster does
not know, come back as ``Answer.forward``: the handler sends them upstream
when there is one and answers SERVFAIL at once otherwise. Until the caches
have synced, in-zone names get SERVFAIL (not cached) rather than a false
NXDOMAIN.

Lookups are case-insensitive; answer records carry the name as asked.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A

from addons.dns.view import ClusterView, service_cluster_ips

SCHEMA_VERSION = "1.1.0"
PODS_MODES = ("verified", "insecure", "disabled")
T_A, T_AAAA, T_CNAME, T_PTR, T_SRV, T_SOA, T_TXT, T_NS, T_ANY = (
    QTYPE.A, QTYPE.AAAA, QTYPE.CNAME, QTYPE.PTR, QTYPE.SRV, QTYPE.SOA, QTYPE.TXT, QTYPE.NS, QTYPE.ANY)


@dataclass
class Answer:
    rcode: int = RCODE.NOERROR
    answers: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)
    authoritative: bool = True
    forward: bool = False     # not ours: upstream if there is one, else SERVFAIL
    cacheable: bool = True


def _md(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def _spec(obj: dict | None) -> dict:
    return (obj or {}).get("spec") or {}


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def undash_v4(label: str) -> str | None:
    parts = label.split("-")
    if len(parts) != 4:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(parts)))
    except ValueError:
        return None


def _is_v4(ip: str) -> bool:
    return ":" not in ip


def ready_addresses(ep: dict | None) -> list[tuple[dict, list[dict]]]:
    """``(address, ports of its subset)`` for every ready address of an Endpoints."""
    out = []
    for subset in (ep or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        for a in subset.get("addresses") or []:
            if a.get("ip"):
                out.append((a, ports))
    return out


def endpoint_hostname(addr: dict) -> str:
    return (addr.get("hostname") or dashed(addr["ip"])).lower()


class Resolver:
    """Kubernetes names -> ``Answer`` from a ``ClusterView`` (see the module docstring)."""

    def __init__(self, view: ClusterView, domain: str = "cluster.local", ttl: int = 5, *,
                 pods: str = "verified", synced: Callable[[], bool] = lambda: True, serial: int = 1):
        if pods not in PODS_MODES:
            raise ValueError(f"pods mode must be one of {PODS_MODES}")
        self.view = view
        self.domain = domain.strip(".").lower()
        self.suffix = "." + self.domain
        self.ttl = int(ttl)
        self.pods = pods
        self.synced = synced
        self.origin = self.domain + "."
        self.soa = RR(self.origin, T_SOA, ttl=self.ttl, rdata=SOA(
            f"ns.dns.{self.origin}", f"hostmaster.{self.origin}", (serial, 7200, 1800, 86400, self.ttl)))

    # ----------------------------------------------------------- helpers
    def _fqdn(self, *labels: str) -> str:
        return ".".join(labels) + self.suffix + "."

    def nxdomain(self) -> Answer:
        return Answer(RCODE.NXDOMAIN, authority=[self.soa])

    def nodata(self) -> Answer:
        return Answer(RCODE.NOERROR, authority=[self.soa])

    def _a(self, name: str, ip: str) -> RR:
        if _is_v4(ip):
            return RR(name, T_A, ttl=self.ttl, rdata=A(ip))
        return RR(name, T_AAAA, ttl=self.ttl, rdata=AAAA(ip))

    def _addresses(self, qname: str, qtype: int, ips: list[str]) -> Answer:
        """A (or AAAA) records for ``ips``; NODATA when none of the asked family."""
        want_v6 = qtype == T_AAAA
        if qtype not in (T_A, T_AAAA, T_ANY):
            return self.nodata()
        seen, rrs = set(), []
        for ip in ips:
            if ip in seen or (qtype != T_ANY and _is_v4(ip) == want_v6):
                continue
            seen.add(ip)
            rrs.append(self._a(qname, ip))
        if not rrs:
            return self.nodata()
        return Answer(answers=rrs)

    # -------------------------------------------------------------- entry
    def resolve(self, qname: str, qtype: int) -> Answer:
        name = qname.rstrip(".").lower()
        if name == self.domain or name.endswith(self.suffix):
            if not self.synced():
                return Answer(RCODE.SERVFAIL, cacheable=False)
            labels = name[: -len(self.suffix)].split(".") if name != self.domain else []
            return self._in_zone(qname, qtype, labels)
        if name.endswith(".in-addr.arpa"):
            if not self.synced():
                return Answer(RCODE.SERVFAIL, cacheable=False)
            return self._reverse(qname, qtype, name[: -len(".in-addr.arpa")].split("."))
        return Answer(authoritative=False, forward=True)

    def _in_zone(self, qname: str, qtype: int, labels: list[str]) -> Answer:
        if not labels:
            if qtype in (T_SOA, T_ANY):
                return Answer(answers=[RR(qname, T_SOA, ttl=self.ttl, rdata=self.soa.rdata)])
            return self.nodata()
        kind, rest = labels[-1], labels[:-1]
        if kind == "svc":
            return self._svc(qname, qtype, rest)
        if kind == "pod":
            return self._pod(qname, qtype, rest)
        if labels == ["dns-version"]:
            if qtype in (T_TXT, T_ANY):
                return Answer(answers=[RR(qname, T_TXT, ttl=self.ttl, rdata=TXT(SCHEMA_VERSION))])
            return self.nodata()
        return self.nxdomain()

    # ----------------------------------------------------------- services
    def _svc(self, qname: str, qtype: int, rest: list[str]) -> Answer:
        if not rest:
            return self.nodata()                     # svc.<domain>: an empty non-terminal
        if len(rest) == 1:
            return self.nodata() if self.view.namespace_has_services(rest[0]) else self.nxdomain()
        ns, name = rest[-1], rest[-2]
        svc = self.view.service(ns, name)
        if svc is None:
            return self.nxdomain()
        if len(rest) == 2:
            return self._service(qname, qtype, svc, ns, name)
        if len(rest) == 3:
            first = rest[0]
            if first.startswith("_"):                # _tcp.<svc>.<ns>.svc: the proto level of SRV names
                proto = first[1:].upper()
                ok = any((p.get("protocol") or "TCP").upper() == proto and p.get("name")
                         for p in _spec(svc).get("ports") or [])
                return self.nodata() if ok else self.nxdomain()
            return self._endpoint(qname, qtype, ns, name, first)
        if len(rest) == 4 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv_port(qname, qtype, svc, ns, name, rest[0][1:], rest[1][1:].upper())
        return self.nxdomain()

    def _service(self, qname: str, qtype: int, svc: dict, ns: str, name: str) -> Answer:
        spec = _spec(svc)
        if spec.get("type") == "ExternalName":
            target = (spec.get("externalName") or "").rstrip(".")
            if target and qtype in (T_A, T_AAAA, T_CNAME, T_ANY):
                return Answer(answers=[RR(qname, T_CNAME, ttl=self.ttl, rdata=CNAME(target + "."))])
            return self.nodata()
        if qtype == T_SRV:
            return self._srv_all(qname, svc, ns, name)
        if spec.get("clusterIP") == "None":
            ips = [a["ip"] for a, _ in ready_addresses(self.view.endpoints_of(ns, name))]
            return self._addresses(qname, qtype, ips)
        return self._addresses(qname, qtype, service_cluster_ips(svc))

    def _endpoint(self, qname: str, qtype: int, ns: str, name: str, host: str) -> Answer:
        ips = [a["ip"] for a, _ in ready_addresses(self.view.endpoints_of(ns, name))
               if endpoint_hostname(a) == host]
        if not ips:
            return self.nxdomain()
        return self._addresses(qname, qtype, ips)

    def _srv_records(self, qname: str, svc: dict, ns: str, name: str,
                     match: Callable[[dict], bool]) -> Answer:
        """SRV (+ additional A) for the service ports ``match`` accepts."""
        spec = _spec(svc)
        targets: list[tuple[int, str, list[str]]] = []   # (port, target, ips)
        if spec.get("clusterIP") == "None":
            for addr, ports in ready_addresses(self.view.endpoints_of(ns, name)):
                for p in ports:
                    if p.get("name") and match(p):
                        targets.append((p.get("port") or 0, self._fqdn(endpoint_hostname(addr), name, ns, "svc"),
                                        [addr["ip"]]))
        else:
            ips = service_cluster_ips(svc)
            for p in spec.get("ports") or []:
                if p.get("name") and match(p):
                    targets.append((p.get("port") or 0, self._fqdn(name, ns, "svc"), ips))
        targets = list(dict.fromkeys((p, t, tuple(ips)) for p, t, ips in targets))  # UDP+TCP twins once
        if not targets:
            return self.nodata()
        weight = max(1, 100 // len(targets))
        answers, additional, seen = [], [], set()
        for port, target, ips in targets:
            answers.append(RR(qname, T_SRV, ttl=self.ttl, rdata=SRV(0, weight, port, target)))
            for ip in ips:
                if (target, ip) not in seen:
                    seen.add((target, ip))
                    additional.append(self._a(target, ip))
        return Answer(answers=answers, additional=additional)

    def _srv_all(self, qname: str, svc: dict, ns: str, name: str) -> Answer:
        return self._srv_records(qname, svc, ns, name, lambda p: True)

    def _srv_port(self, qname: str, qtype: int, svc: dict, ns: str, name: str, port: str, proto: str) -> Answer:
        ports = [p for p in _spec(svc).get("ports") or []
                 if (p.get("name") or "").lower() == port and (p.get("protocol") or "TCP").upper() == proto]
        if not ports:
            return self.nxdomain()
        if qtype not in (T_SRV, T_ANY):
            return self.nodata()
        return self._srv_records(qname, svc, ns, name,
                                 lambda p: (p.get("name") or "").lower() == port
                                 and (p.get("protocol") or "TCP").upper() == proto)

    # --------------------------------------------------------------- pods
    def _pod(self, qname: str, qtype: int, rest: list[str]) -> Answer:
        if self.pods == "disabled":
            return self.nxdomain()
        if len(rest) <= 1:
            return self.nodata()
        if len(rest) != 2:
            return self.nxdomain()
        ip = undash_v4(rest[0])
        if ip is None:
            return self.nxdomain()
        if self.pods == "verified" and not any(_md(p).get("namespace") == rest[1]
                                               for p in self.view.pods_with_ip(ip)):
            return self.nxdomain()
        return self._addresses(qname, qtype, [ip])

    # ------------------------------------------------------------ reverse
    def ptr_targets(self, ip: str) -> list[str]:
        """The names an IP maps back to (empty when the cluster does not know it)."""
        out = [self._fqdn(_md(s).get("name"), _md(s).get("namespace"), "svc")
               for s in self.view.services_with_ip(ip)]
        if out:
            return out
        for ep in self.view.endpoints_with_ip(ip):
            md = _md(ep)
            for addr, _ in ready_addresses(ep):
                if addr["ip"] == ip:
                    t = self._fqdn(endpoint_hostname(addr), md.get("name"), md.get("namespace"), "svc")
                    if t not in out:
                        out.append(t)
        if out or self.pods == "disabled":
            return out
        for pod in self.view.pods_with_ip(ip):
            t = self._fqdn(dashed(ip), _md(pod).get("namespace"), "pod")
            if t not in out:
                out.append(t)
        return out

    def _reverse(self, qname: str, qtype: int, octets: list[str]) -> Answer:
        if len(octets) != 4:
            return Answer(authoritative=False, forward=True)
        try:
            ip = str(ipaddress.IPv4Address(".".join(reversed(octets))))
        except ValueError:
            return Answer(authoritative=False, forward=True)
        targets = self.ptr_targets(ip)
        if not targets:
            return Answer(authoritative=False, forward=True)
        if qtype not in (T_PTR, T_ANY):
            return Answer(RCODE.NOERROR)
        return Answer(answers=[RR(qname, T_PTR, ttl=self.ttl, rdata=PTR(t)) for t in targets])


__all__ = ["Resolver", "Answer", "PODS_MODES", "SCHEMA_VERSION", "dashed", "undash_v4", "ready_addresses"]
