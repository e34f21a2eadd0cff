"""Discovery, version and OpenAPI answers, negotiated the way kubectl needs them.

kubectl learns every resource (plural, kind, scope, verbs, short names,
categories) from discovery before any other request; a wrong answer here
makes it fail in quiet, confusing ways (see docs/reference/KUBECTL_SURPRISES.md).
We serve both forms:

* aggregated discovery (apidiscovery.k8s.io v2 and v2beta1), chosen from the
  client's Accept header and labelled with exactly the media type it asked
  for (kubectl 1.27-1.29 only understand v2beta1);
* legacy discovery (/api, /apis, /api/v1, /apis/G/V) for everyone else.

`/openapi/v2` answers an empty protobuf document (valid, empty) so kubectl's
default validation passes and defers to the server's own (fieldValidation);
`/openapi/v3` answers 404, which every kubectl version tolerates.
"""
from __future__ import annotations

import platform

from api import resources as R
from api.protobuf.schema import KUBECTL_VERSION

# What /version reports unless --kube-version says otherwise: the kubectl whose protobuf schema the server
# decodes (api/protobuf), so the dispatching kubectl on PATH runs that binary and every body it sends decodes.
DEFAULT_KUBE_VERSION = f"v{KUBECTL_VERSION}.0"

AGG_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGG_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def negotiate_aggregated(accept: str | None) -> str | None:
    """The aggregated-discovery media type to answer with, or None for legacy."""
    if not accept:
        return None
    for part in accept.split(","):
        params = {}
        for item in part.split(";")[1:]:
            if "=" in item:
                k, v = item.split("=", 1)
                params[k.strip()] = v.strip()
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") == "v2":
                return AGG_V2
            if params.get("v") == "v2beta1":
                return AGG_V2BETA1
    return None


def version_info(kube_version: str) -> dict:
    v = kube_version.lstrip("v")
    parts = v.split(".")
    major = parts[0] if parts else "1"
    minor = parts[1] if len(parts) > 1 else "0"
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "major": major,
        "minor": minor,
        "gitVersion": "v" + v,
        "gitCommit": "pocketkube",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": f"linux/{arch}",
    }


def _resources_in(group: str, version: str) -> list[R.ResourceType]:
    return [r for r in R.ALL if r.group == group and r.version == version]


def _subresource_verbs(rt: R.ResourceType, sub: str) -> list[str]:
    if sub == "status":
        return ["get", "patch", "update"]
    if sub == "binding":
        return ["create"]
    if sub == "log":
        return ["get"]
    return ["create", "get"]


def _agg_resource(rt: R.ResourceType) -> dict:
    d = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        d["shortNames"] = list(rt.short_names)
    if rt.categories:
        d["categories"] = list(rt.categories)
    subs = []
    for s in rt.subresources:
        kind = {"status": rt.kind, "binding": "Binding", "log": "Pod"}.get(s, "Status" if s in ("exec", "portforward") else rt.kind)
        subs.append({"subresource": s, "responseKind": {"group": rt.group if s == "status" else "", "version": rt.version if s == "status" else "v1", "kind": kind},
                     "verbs": _subresource_verbs(rt, s)})
    if subs:
        d["subresources"] = subs
    return d


def aggregated(legacy: bool, media_type: str) -> dict:
    gv = "v2" if media_type == AGG_V2 else "v2beta1"
    items = []
    for group, version in R.GROUP_VERSIONS:
        if (group == "") != legacy:
            continue
        items.append({
            "metadata": {"name": group, "creationTimestamp": None},
            "versions": [{
                "version": version,
                "resources": [_agg_resource(r) for r in _resources_in(group, version)],
                "freshness": "Current",
            }],
        })
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{gv}",
            "metadata": {}, "items": items}


def legacy_api(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def legacy_groups() -> dict:
    groups = []
    for group, version in R.GROUP_VERSIONS:
        if not group:
            continue
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def legacy_group(group: str) -> dict | None:
    for g, version in R.GROUP_VERSIONS:
        if g == group and g:
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv], "preferredVersion": gv}
    return None


def resource_list(group: str, version: str) -> dict | None:
    if (group, version) not in R.GROUP_VERSIONS:
        return None
    out = []
    for r in _resources_in(group, version):
        d = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
             "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            d["shortNames"] = list(r.short_names)
        if r.categories:
            d["categories"] = list(r.categories)
        out.append(d)
        for s in r.subresources:
            out.append({"name": f"{r.plural}/{s}", "singularName": "", "namespaced": r.namespaced,
                        "kind": r.kind if s == "status" else ("Binding" if s == "binding" else "Status"),
                        "verbs": _subresource_verbs(r, s)})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": out}
