"""Ingress (networking.k8s.io/v1): HTTP routes to Services.

No defaults (pathType stays as given); a spec write keeps the status the
ingress controller reports.
"""
from __future__ import annotations

from datetime import datetime

from api.kinds.base import Strategy
from api.tables import Printer, age_col, col, get, lb_ingress, name_col, since
from api.validation import (
    Errs, PATH_TYPES, invalid, is_dns1035_label, is_ip, is_valid_port, is_valid_port_name,
    is_wildcard_dns1123_subdomain, name_is_dns_subdomain, not_supported, required,
)


COLUMNS = [
    name_col(),
    col("Class", "The name of the IngressClass resource that should be used for additional "
                 "configuration"),
    col("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
    col("Address", "Address is a list containing ingress points for the load-balancer"),
    col("Ports", "Ports of TLS configurations that open"),
    age_col(),
]


def _ingress_hosts(rules: list | None) -> str:
    rules = rules or []
    max_shown = 3
    shown: list[str] = []
    more = False
    for rule in rules:
        if len(shown) == max_shown:
            more = True
        if not more and rule.get("host"):
            shown.append(rule["host"])
    if not shown:
        return "*"
    ret = ",".join(shown)
    if more:
        return f"{ret} + {len(rules) - max_shown} more..."
    return ret


def _ingress_cells(ing: dict, now: datetime) -> list:
    meta = ing.get("metadata") or {}
    spec = ing.get("spec") or {}
    return [
        meta.get("name", ""),
        spec.get("ingressClassName") if spec.get("ingressClassName") is not None else "<none>",
        _ingress_hosts(spec.get("rules")),
        lb_ingress(get(ing, "status", "loadBalancer")),
        "80, 443" if spec.get("tls") else "80",
        since(meta.get("creationTimestamp"), now),
    ]


def _ingress_host(e: Errs, path: str, host: str) -> None:
    is_an_ip_address = not is_ip(host)
    if is_an_ip_address:
        e.append(invalid(path, host, "must be a DNS name, not an IP address"))
    if "*" in host:
        e.msgs(path, host, is_wildcard_dns1123_subdomain(host))
    else:
        e.dns_subdomain(path, host)


def _ingress_backend(e: Errs, backend: dict, path: str) -> None:
    has_resource, has_service = backend.get("resource") is not None, backend.get("service") is not None
    if has_resource and has_service:
        e.append(invalid(path, "", "cannot set both resource and service backends"))
    elif has_resource:
        ref = e.obj(backend, "resource", f"{path}.resource")
        for key in ("kind", "name"):
            if not e.string(ref, key, f"{path}.resource.{key}"):
                e.append(required(f"{path}.resource.{key}"))
    elif has_service:
        sp = f"{path}.service"
        svc = e.obj(backend, "service", sp)
        name = e.string(svc, "name", f"{sp}.name")
        if not name:
            e.append(required(f"{sp}.name"))
        else:
            e.msgs(f"{sp}.name", name, is_dns1035_label(name))
        port = e.obj(svc, "port", f"{sp}.port")
        port_name = e.string(port, "name", f"{sp}.port.name")
        number = e.integer(port, "number", f"{sp}.port.number")
        if port_name and number:
            e.append(invalid(path, "", "cannot set both port name & port number"))
        elif port_name:
            e.msgs(f"{sp}.port.name", port_name, is_valid_port_name(port_name))
        elif number:
            e.msgs(f"{sp}.port.number", number, is_valid_port(number))
        else:
            e.append(required(path, "port name or number is required"))
    else:
        e.append(invalid(path, "", "resource or service backend is required"))


def _validate_ingress(e: Errs, ing: dict) -> None:
    spec = e.obj(ing, "spec", "spec")
    rules = e.objects(spec, "rules", "spec.rules")
    if not rules and spec.get("defaultBackend") is None:
        e.append(invalid("spec", [], "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        _ingress_backend(e, e.obj(spec, "defaultBackend", "spec.defaultBackend"), "spec.defaultBackend")
    for p, rule in rules:
        host = e.string(rule, "host", f"{p}.host")
        if host:
            _ingress_host(e, f"{p}.host", host)
        if rule.get("http") is None:
            continue
        hp = f"{p}.http"
        http = e.obj(rule, "http", hp)
        paths = e.objects(http, "paths", f"{hp}.paths")
        if not paths:
            e.append(required(f"{hp}.paths"))
        for pp, item in paths:
            path_type = e.string(item, "pathType", f"{pp}.pathType")
            path = e.string(item, "path", f"{pp}.path")
            if not path_type:
                e.append(required(f"{pp}.pathType", "pathType must be specified"))
                continue
            if path_type in ("Exact", "Prefix"):
                if not path.startswith("/"):
                    e.append(invalid(f"{pp}.path", path, "must be an absolute path"))
                for seq in ("//", "/./", "/../", "%2f", "%2F"):
                    if seq in path:
                        e.append(invalid(f"{pp}.path", path, f"must not contain '{seq}'"))
                for suffix in ("/..", "/."):
                    if path.endswith(suffix):
                        e.append(invalid(f"{pp}.path", path, f"cannot end with '{suffix}'"))
            elif path_type == "ImplementationSpecific":
                if path and not path.startswith("/"):
                    e.append(invalid(f"{pp}.path", path, "must be an absolute path"))
            else:
                e.append(not_supported(f"{pp}.pathType", path_type, PATH_TYPES))
            _ingress_backend(e, e.obj(item, "backend", f"{pp}.backend"), f"{pp}.backend")
    for p, tls in e.objects(spec, "tls", "spec.tls"):
        for i, host in enumerate(e.strings(tls, "hosts", f"{p}.hosts")):
            if "*" in host:
                e.msgs(f"{p}.hosts[{i}]", host, is_wildcard_dns1123_subdomain(host))
            else:
                e.dns_subdomain(f"{p}.hosts[{i}]", host)
        secret = e.string(tls, "secretName", f"{p}.secretName")
        if secret:
            e.dns_subdomain(f"{p}.secretName", secret)
    class_name = e.string(spec, "ingressClassName", "spec.ingressClassName")
    if class_name:
        e.dns_subdomain("spec.ingressClassName", class_name)


class IngressStrategy(Strategy):
    protobuf = "k8s.io.api.networking.v1.Ingress"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)
    printer = Printer(COLUMNS, _ingress_cells)

    def check(self, e: Errs, obj: dict) -> None:
        _validate_ingress(e, obj)
