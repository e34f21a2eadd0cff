"""Endpoints (core/v1): the addresses behind a Service, written by the endpoints controller.

PUT creates a missing Endpoints object (the controller and the API server's
own default/kubernetes entry rely on it); ports default to TCP.
"""
from __future__ import annotations

from datetime import datetime

from api.defaults import dicts, set_default
from api.kinds.base import Strategy
from api.tables import Printer, age_col, col, join_host_port, name_col, since
from api.validation import (
    Errs, PROTOCOLS, is_ip, is_qualified_name, is_valid_port, name_is_dns_subdomain, required,
)


def _endpoints(ep: dict) -> None:
    for subset in dicts(ep, "subsets"):
        for port in dicts(subset, "ports"):
            set_default(port, "protocol", "TCP")


COLUMNS = [
    name_col(),
    col("Endpoints", "The set of all endpoints is the union of all subsets. Addresses are placed "
                     "into subsets according to the IPs they share. A single address with "
                     "multiple ports, some of which are ready and some of which are not (because "
                     "they come from different containers) will result in the address being "
                     "displayed in different subsets for the different ports. No address will "
                     "appear in both Addresses and NotReadyAddresses in the same subset. Sets of "
                     "addresses and ports that comprise a service."),
    age_col(),
]


def _format_endpoints(ep: dict) -> str:
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    max_shown = 3
    shown: list[str] = []
    more = False
    count = 0
    for ss in subsets:
        addrs = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:  # headless service without ports
            for a in addrs:
                if len(shown) == max_shown:
                    more = True
                if not more:
                    shown.append(a.get("ip", ""))
                count += 1
        else:
            for port in ports:
                for a in addrs:
                    if len(shown) == max_shown:
                        more = True
                    if not more:
                        shown.append(join_host_port(a.get("ip", ""), port.get("port")))
                    count += 1
    ret = ",".join(shown)
    if more:
        return f"{ret} + {count - max_shown} more..."
    return ret


def _endpoints_cells(ep: dict, now: datetime) -> list:
    meta = ep.get("metadata") or {}
    return [meta.get("name", ""), _format_endpoints(ep), since(meta.get("creationTimestamp"), now)]


def _validate_endpoints(e: Errs, ep: dict) -> None:
    for p, subset in e.objects(ep, "subsets", "subsets"):
        addresses = e.objects(subset, "addresses", f"{p}.addresses")
        not_ready = e.objects(subset, "notReadyAddresses", f"{p}.notReadyAddresses")
        if not addresses and not not_ready:
            e.append(required(p, "must specify `addresses` or `notReadyAddresses`"))
        # Unlike Kubernetes, loopback addresses are allowed: the built-in
        # default/kubernetes endpoints point at an API server on 127.0.0.1.
        for ap, addr in addresses + not_ready:
            ip = e.string(addr, "ip", f"{ap}.ip")
            if not ip:
                e.append(required(f"{ap}.ip"))
            else:
                e.msgs(f"{ap}.ip", ip, is_ip(ip))
            hostname = e.string(addr, "hostname", f"{ap}.hostname")
            if hostname:
                e.dns_label(f"{ap}.hostname", hostname)
            node = e.string(addr, "nodeName", f"{ap}.nodeName")
            if node:
                e.dns_subdomain(f"{ap}.nodeName", node)
        ports = e.objects(subset, "ports", f"{p}.ports")
        for pp, port in ports:
            name = e.string(port, "name", f"{pp}.name")
            if len(ports) > 1 and not name:
                e.append(required(f"{pp}.name"))
            elif name:
                e.dns_label(f"{pp}.name", name)
            number = e.integer(port, "port", f"{pp}.port")
            e.msgs(f"{pp}.port", number or 0, is_valid_port(number or 0))
            e.one_of(f"{pp}.protocol", e.string(port, "protocol", f"{pp}.protocol"), PROTOCOLS)
            app_protocol = e.string(port, "appProtocol", f"{pp}.appProtocol")
            if app_protocol:
                e.msgs(f"{pp}.appProtocol", app_protocol, is_qualified_name(app_protocol))


class EndpointsStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.Endpoints"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)
    printer = Printer(COLUMNS, _endpoints_cells)
    allow_create_on_update = True

    def default(self, obj: dict) -> None:
        _endpoints(obj)

    def check(self, e: Errs, obj: dict) -> None:
        _validate_endpoints(e, obj)
