"""Service (core/v1): a stable virtual address (and node ports) in front of pods.

Besides its defaults, validation and update rules (an allocated clusterIP
may not change; fields a type change leaves unused do not fail the change),
a Service is the one kind that allocates on create: a ClusterIP from the
service CIDR and a NodePort per port for NodePort and LoadBalancer
Services. The choice (requested or random, reserved low addresses, the
valid ranges and their error messages) lives here; each address taken is an
allocation key the registry writes in the same transaction as the Service
(``Allocations`` in api/kinds/base.py), so two API servers on one database
can never hand out the same address.
"""
from __future__ import annotations

import ipaddress
import random
import re
from datetime import datetime
from typing import Any

from api.defaults import dicts, ensure_dict, set_default, unset
from api.kinds.base import Allocations, InternalError, Invalid, Strategy
from api.tables import Printer, age_col, col, format_labels, lb_ingress, name_col, since
from api.validation import (
    Cause, Errs, FIELD_IMMUTABLE, PROTOCOLS, duplicate, forbidden, invalid, is_ip, is_ipv4, is_qualified_name,
    is_valid_port, name_is_dns1035_label, not_supported, required,
)


SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
CLIENT_IP_AFFINITY_MAX_SECONDS = 86400
KUBELET_PORT = 10250
NODE_PORT_RANGE = (30000, 32767)
DEFAULT_CLIENT_IP_TIMEOUT = 10800  # 3 hours, Kubernetes' DefaultClientIPServiceAffinitySeconds


COLUMNS = [
    name_col(),
    col("Type", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options "
                "are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
    col("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned "
                      "randomly."),
    col("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will "
                       "also accept traffic for this service.  These IPs are not managed by "
                       "Kubernetes.  The user is responsible for ensuring that traffic arrives at "
                       "a node with this IP.  A common example is external load-balancers that "
                       "are not part of the Kubernetes system."),
    col("Port(s)", "The list of ports that are exposed by this service. More info: "
                   "https://kubernetes.io/docs/concepts/services-networking/service/"
                   "#virtual-ips-and-service-proxies"),
    age_col(),
    col("Selector", "Route service traffic to pods with label keys and values matching this "
                    "selector. If empty or not present, the service is assumed to have an "
                    "external process managing its endpoints, which Kubernetes will not modify. "
                    "Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if "
                    "type is ExternalName. More info: "
                    "https://kubernetes.io/docs/concepts/services-networking/service/", priority=1),
]


def _service_external_ip(svc_type: str, spec: dict, status: dict) -> str:
    external_ips = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if svc_type == "LoadBalancer":
        lb = lb_ingress(status.get("loadBalancer"))
        if external_ips:
            return ",".join((lb.split(",") if lb else []) + list(external_ips))
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_cells(svc: dict, now: datetime) -> list:
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    status = svc.get("status") or {}
    svc_type = spec.get("type") or "ClusterIP"  # the apiserver defaults it
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    pieces = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return [
        meta.get("name", ""),
        svc_type,
        cluster_ips[0] if cluster_ips else "<none>",
        _service_external_ip(svc_type, spec, status),
        ",".join(pieces) or "<none>",
        since(meta.get("creationTimestamp"), now),
        format_labels(spec.get("selector")),
    ]


def _service(svc: dict) -> None:
    spec = ensure_dict(svc, "spec")
    if spec is None:
        return
    set_default(spec, "type", "ClusterIP")
    svc_type = spec["type"]
    set_default(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = ensure_dict(spec, "sessionAffinityConfig")
        client = ensure_dict(config, "clientIP") if config is not None else None
        if client is not None:
            set_default(client, "timeoutSeconds", DEFAULT_CLIENT_IP_TIMEOUT)
    for port in dicts(spec, "ports"):
        set_default(port, "protocol", "TCP")
        number = port.get("port")
        if unset(port, "targetPort", zero=("", 0)) and isinstance(number, int) and not isinstance(number, bool):
            port["targetPort"] = number
    externally_accessible = svc_type in ("NodePort", "LoadBalancer") or (
        svc_type == "ClusterIP" and bool(spec.get("externalIPs")))
    if externally_accessible:
        set_default(spec, "externalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer":
        set_default(spec, "allocateLoadBalancerNodePorts", True)
    if svc_type != "ExternalName":
        # clusterIPs alone names the wanted address; clusterIP is what the allocator reads.
        ips = spec.get("clusterIPs")
        if unset(spec, "clusterIP") and isinstance(ips, list) and ips and isinstance(ips[0], str):
            spec["clusterIP"] = ips[0]
        set_default(spec, "internalTrafficPolicy", "Cluster")
        # The cluster is single-stack IPv4.
        set_default(spec, "ipFamilies", ["IPv4"], zero=([],))
        set_default(spec, "ipFamilyPolicy", "SingleStack")


def _validate_service(e: Errs, svc: dict) -> None:
    spec = e.obj(svc, "spec", "spec")
    svc_type = e.string(spec, "type", "spec.type")
    cluster_ip = e.string(spec, "clusterIP", "spec.clusterIP")
    cluster_ips = e.strings(spec, "clusterIPs", "spec.clusterIPs")
    headless = cluster_ip == "None" or (not cluster_ip and cluster_ips[:1] == ["None"])
    ports = e.objects(spec, "ports", "spec.ports")

    e.one_of("spec.type", svc_type, SERVICE_TYPES)
    if spec.get("ports") in (None, []) and not headless and svc_type != "ExternalName":
        e.append(required("spec.ports"))

    # cluster IPs: "", "None" or an IPv4 address; clusterIPs[0] follows clusterIP.
    if svc_type == "ExternalName":
        if cluster_ip:
            e.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        elif cluster_ips:
            e.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        cname = e.string(spec, "externalName", "spec.externalName").removesuffix(".")
        if not cname:
            e.append(required("spec.externalName"))
        else:
            e.dns_subdomain("spec.externalName", cname)
    else:
        addresses = [("spec.clusterIP", cluster_ip)] + [(f"spec.clusterIPs[{i}]", v) for i, v in enumerate(cluster_ips)]
        for path, ip in addresses:
            if not ip or ip == "None":
                continue
            msgs = is_ip(ip)
            if msgs:
                e.msgs(path, ip, msgs)
            elif not is_ipv4(ip):
                e.append(invalid(path, ip, "expected an IPv4 value as indicated by `ipFamilies[0]`"))
        if cluster_ip and cluster_ips and cluster_ips[0] != cluster_ip:
            e.append(invalid("spec.clusterIPs", cluster_ips, "first value must match `clusterIP`"))
        if len(cluster_ips) > 1:
            e.append(invalid("spec.clusterIPs", cluster_ips, "may only hold up to 1 values"))
        if headless and svc_type in ("NodePort", "LoadBalancer"):
            e.append(invalid("spec.clusterIP", "None", f"may not be set to 'None' for {svc_type} services"))

    names: set[str] = set()
    seen_ports: set[tuple] = set()
    seen_node_ports: set[tuple] = set()
    for p, port in ports:
        name = e.string(port, "name", f"{p}.name")
        if len(ports) > 1 and not name:
            e.append(required(f"{p}.name"))
        elif name:
            e.dns_label(f"{p}.name", name)
            if name in names:
                e.append(duplicate(f"{p}.name", name))
            names.add(name)
        number = e.integer(port, "port", f"{p}.port")
        e.msgs(f"{p}.port", number or 0, is_valid_port(number or 0))
        protocol = e.string(port, "protocol", f"{p}.protocol")
        e.one_of(f"{p}.protocol", protocol, PROTOCOLS)
        e.port_num_or_name(port, "targetPort", f"{p}.targetPort")
        app_protocol = e.string(port, "appProtocol", f"{p}.appProtocol")
        if app_protocol:
            e.msgs(f"{p}.appProtocol", app_protocol, is_qualified_name(app_protocol))
        if svc_type == "LoadBalancer" and number == KUBELET_PORT:
            e.append(invalid(p, number, f"may not expose port {KUBELET_PORT} externally since it is used by kubelet"))
        key = (protocol, number)
        if key in seen_ports:
            e.append(duplicate(p, {"port": number, "protocol": protocol}))
        seen_ports.add(key)

        node_port = e.integer(port, "nodePort", f"{p}.nodePort")
        if node_port:
            if svc_type in ("ClusterIP", "ExternalName"):
                e.append(forbidden(f"{p}.nodePort", f"may not be used when `type` is '{svc_type}'"))
            elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
                lo, hi = NODE_PORT_RANGE
                e.append(invalid(f"{p}.nodePort", node_port,
                                 f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"))
            elif (protocol, node_port) in seen_node_ports:
                e.append(duplicate(f"{p}.nodePort", node_port))
            seen_node_ports.add((protocol, node_port))

    e.labels(spec, "selector", "spec.selector")

    affinity = e.string(spec, "sessionAffinity", "spec.sessionAffinity")
    e.one_of("spec.sessionAffinity", affinity, SESSION_AFFINITIES)
    cp = "spec.sessionAffinityConfig"
    if affinity == "ClientIP":
        why = "when session affinity type is ClientIP"
        cfg = e.obj(spec, "sessionAffinityConfig", cp)
        client = e.obj(cfg, "clientIP", f"{cp}.clientIP")
        timeout = e.integer(client, "timeoutSeconds", f"{cp}.clientIP.timeoutSeconds")
        if spec.get("sessionAffinityConfig") is None:
            e.append(required(cp, why))
        elif isinstance(spec["sessionAffinityConfig"], dict) and cfg.get("clientIP") is None:
            e.append(required(f"{cp}.clientIP", why))
        elif isinstance(cfg.get("clientIP"), dict) and client.get("timeoutSeconds") is None:
            e.append(required(f"{cp}.clientIP.timeoutSeconds", why))
        elif timeout is not None and not 0 < timeout <= CLIENT_IP_AFFINITY_MAX_SECONDS:
            e.append(invalid(f"{cp}.clientIP.timeoutSeconds", timeout,
                             f"must be greater than 0 and less than {CLIENT_IP_AFFINITY_MAX_SECONDS}"))
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        e.append(forbidden(cp, "must not be set when session affinity is None"))

    for i, ip in enumerate(e.strings(spec, "externalIPs", "spec.externalIPs")):
        e.msgs(f"spec.externalIPs[{i}]", ip, is_ip(ip))

    external = svc_type in ("NodePort", "LoadBalancer") or (svc_type == "ClusterIP" and bool(spec.get("externalIPs")))
    etp = e.string(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy")
    if external:
        e.one_of("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES)
    elif etp:
        e.append(invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"))
    itp = e.string(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy")
    if svc_type != "ExternalName":
        e.one_of("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES)
    elif itp and itp not in TRAFFIC_POLICIES:
        e.append(not_supported("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES))

    # This cluster is single-stack IPv4.
    for i, fam in enumerate(e.strings(spec, "ipFamilies", "spec.ipFamilies")):
        if fam not in ("IPv4", "IPv6"):
            e.append(not_supported(f"spec.ipFamilies[{i}]", fam, ("IPv4", "IPv6")))
        elif fam == "IPv6":
            e.append(invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster"))
    policy = e.string(spec, "ipFamilyPolicy", "spec.ipFamilyPolicy")
    if policy and policy not in IP_FAMILY_POLICIES:
        e.append(not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    elif policy == "RequireDualStack":
        e.append(invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"))



def _at(obj: Any, path: str) -> Any:
    """The value at a cause's field path ("spec.ports[0].nodePort"), or None."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            obj = obj[i] if isinstance(obj, list) and i < len(obj) else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


_TYPE_DEPENDENT_FIELDS = re.compile(
    r"spec\.(clusterIPs?|externalTrafficPolicy|sessionAffinityConfig|ipFamilies|ipFamilyPolicy|"
    r"internalTrafficPolicy|ports\[\d+\]\.nodePort)(\[\d+\])?$")


def _service_update(new: dict, old: dict, causes: list[Cause]) -> list[Cause]:
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    new_type, old_type = new_spec.get("type"), old_spec.get("type")
    if new_type != old_type:
        # Kubernetes drops fields the new type does not use when they were left
        # unchanged (the registry releases the clusterIP and node ports); don't
        # fail the type change over them.
        causes = [c for c in causes if not (
            _TYPE_DEPENDENT_FIELDS.match(c["field"]) and c["reason"] in ("FieldValueForbidden", "FieldValueInvalid")
            and _at(new, c["field"]) == _at(old, c["field"]))]
    if "ExternalName" in (new_type, old_type):
        return causes
    # An empty clusterIP on update means "keep the allocated one" (the registry copies it).
    old_ip, new_ip = old_spec.get("clusterIP"), new_spec.get("clusterIP")
    if old_ip and new_ip and new_ip != old_ip:
        causes.append(invalid("spec.clusterIP", new_ip, FIELD_IMMUTABLE))
    old_ips, new_ips = old_spec.get("clusterIPs"), new_spec.get("clusterIPs")
    if isinstance(old_ips, list) and isinstance(new_ips, list) and new_ips:
        for i, ip in enumerate(old_ips):
            if i < len(new_ips) and new_ips[i] != ip:
                causes.append(invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set"))
    return causes


RESERVED_SERVICE_IPS = 16  # never handed out dynamically (kubernetes .1, DNS .10, ...)
_IPS, _PORTS = "serviceips/", "servicenodeports/"


def _field_invalid(field: str, value: Any, why: str) -> Invalid:
    return Invalid([invalid(field, value, why)])


class ServiceAllocator:
    """The ranges this server hands Services addresses from, and the choice of an address in them.

    The addresses taken are allocation keys held through an ``Allocations``
    seam (the registry's transaction), never in this object.
    """

    def __init__(self, cidr: str, node_ports: tuple[int, int] = NODE_PORT_RANGE):
        self.net = ipaddress.ip_network(cidr, strict=True)
        if self.net.version != 4:
            raise ValueError("only IPv4 service ranges are supported")
        self.node_ports = node_ports

    @property
    def first_ip(self) -> str:
        return str(self.net.network_address + 1)

    def allocate_ip(self, alloc: Allocations, owner: str, requested: str | None) -> str:
        if requested:
            try:
                ip = ipaddress.ip_address(requested)
            except ValueError:
                raise _field_invalid("spec.clusterIPs[0]", requested, "must be a valid IP address")
            if ip not in self.net or ip == self.net.network_address or ip == self.net.broadcast_address:
                raise _field_invalid(
                    "spec.clusterIPs[0]", requested,
                    f"provided IP is not in the valid range. The range of valid IPs is {self.net}")
            if not alloc.reserve(_IPS + str(ip), owner):
                raise _field_invalid("spec.clusterIPs[0]", requested, "provided IP is already allocated")
            return str(ip)
        size = self.net.num_addresses
        lo, hi = RESERVED_SERVICE_IPS, size - 2
        if hi < lo:
            raise InternalError("service IP range too small")
        for _ in range(32):
            ip = str(self.net.network_address + random.randint(lo, hi))
            if not alloc.is_taken(_IPS + ip):
                alloc.reserve(_IPS + ip, owner)
                return ip
        used = alloc.taken(_IPS)
        for off in range(lo, hi + 1):
            ip = str(self.net.network_address + off)
            if ip not in used:
                alloc.reserve(_IPS + ip, owner)
                return ip
        raise _field_invalid("spec.clusterIPs[0]", "", "range is full: no free service IPs")

    def allocate_port(self, alloc: Allocations, owner: str, requested: int | None, field: str) -> int:
        lo, hi = self.node_ports
        if requested:
            if not lo <= requested <= hi:
                raise _field_invalid(field, requested, f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}")
            if not alloc.reserve(_PORTS + str(requested), owner):
                raise _field_invalid(field, requested, "provided port is already allocated")
            return requested
        for _ in range(32):
            p = random.randint(lo, hi)
            if not alloc.is_taken(_PORTS + str(p)):
                alloc.reserve(_PORTS + str(p), owner)
                return p
        used = {int(p) for p in alloc.taken(_PORTS)}
        for p in range(lo, hi + 1):
            if p not in used:
                alloc.reserve(_PORTS + str(p), owner)
                return p
        raise _field_invalid(field, 0, "range is full: no free node ports")

    @staticmethod
    def release_ip(alloc: Allocations, ip: str | None) -> None:
        if ip and ip != "None":
            alloc.release(_IPS + ip)

    @staticmethod
    def release_port(alloc: Allocations, port: Any) -> None:
        if port:
            alloc.release(_PORTS + str(int(port)))


def _wants_node_ports(svc: dict) -> bool:
    return (svc.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer")


def _wants_cluster_ip(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"


class ServiceStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.Service"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns1035_label)
    fields = ("spec.clusterIP", "spec.type")
    printer = Printer(COLUMNS, _service_cells)

    def prepare_for_create(self, obj: dict) -> None:
        obj.setdefault("status", {"loadBalancer": {}})

    def default(self, obj: dict) -> None:
        _service(obj)

    def check(self, e: Errs, obj: dict) -> None:
        _validate_service(e, obj)

    def check_update(self, new: dict, old: dict, causes: list[Cause]) -> list[Cause]:
        return _service_update(new, old, causes)

    def allocate(self, alloc: Allocations, obj: dict, old: dict | None) -> None:
        """A ClusterIP (kept from old on update) and node ports (kept per port and protocol)."""
        ranges: ServiceAllocator = alloc.ranges
        owner = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        if _wants_cluster_ip(obj):
            old_ip = old_spec.get("clusterIP")
            if old and old_ip and old_ip != "None":
                spec["clusterIP"] = old_ip
            else:
                spec["clusterIP"] = ranges.allocate_ip(alloc, owner, spec.get("clusterIP") or None)
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        else:
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            if old_spec.get("clusterIP") and old_spec.get("clusterIP") != "None":
                ranges.release_ip(alloc, old_spec["clusterIP"])
        old_ports = {}
        for p in old_spec.get("ports") or []:
            if p.get("nodePort"):
                old_ports[(p.get("port"), p.get("protocol", "TCP"))] = p["nodePort"]
        kept = set()
        if _wants_node_ports(obj):
            for i, p in enumerate(spec.get("ports") or []):
                prev = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                want = p.get("nodePort")
                if prev and (not want or want == prev):
                    p["nodePort"] = prev
                    kept.add(prev)
                else:
                    p["nodePort"] = ranges.allocate_port(alloc, owner, want, f"spec.ports[{i}].nodePort")
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
        for prev in old_ports.values():
            if prev not in kept:
                ranges.release_port(alloc, prev)

    def release(self, alloc: Allocations, obj: dict) -> None:
        spec = obj.get("spec") or {}
        ServiceAllocator.release_ip(alloc, spec.get("clusterIP"))
        for p in spec.get("ports") or []:
            ServiceAllocator.release_port(alloc, p.get("nodePort"))
