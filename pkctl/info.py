"""``pkctl version``, ``pkctl cluster-info`` and ``pkctl api-resources``: what is this cluster?

* version: the client's own version (the installed ``pocketkube`` package)
  and the server's ``/version`` ``gitVersion``.
* cluster-info: the control plane URL, then every service in ``kube-system``
  labelled ``kubernetes.io/cluster-service=true`` (named by its
  ``kubernetes.io/name`` label), each with its API-server proxy URL, exactly
  the lines kubectl prints.
* api-resources: the legacy discovery documents as a table (NAME SHORTNAMES
  APIVERSION NAMESPACED KIND), sorted by group and then name as kubectl
  sorts them; subresources are left out.
"""
from __future__ import annotations

from importlib import metadata

from client.errors import ApiError

from .errors import CLIError
from .printers import to_json, to_yaml
from .tabwriter import get_format


def client_version() -> str:
    try:
        return "v" + metadata.version("pocketkube")
    except metadata.PackageNotFoundError:
        return "v0.0.0-unknown"


def run_version(ctx, args) -> int:
    fmt = (args.output or "").lower()
    if fmt not in ("", "json", "yaml"):
        raise CLIError("--output must be 'yaml' or 'json'")
    info: dict = {"clientVersion": {"gitVersion": client_version(), "platform": "pkctl (pocketkube)"}}
    failure = None
    if not args.client:
        try:
            info["serverVersion"] = ctx.client.request("GET", "/version")
        except ApiError as e:
            failure = e
    if fmt == "json":
        ctx.out.write(to_json(info))
    elif fmt == "yaml":
        ctx.out.write(to_yaml(info))
    else:
        ctx.print(f"Client Version: {info['clientVersion']['gitVersion']}")
        if "serverVersion" in info:
            ctx.print(f"Server Version: {info['serverVersion'].get('gitVersion', '<unknown>')}")
    if failure is not None:
        raise failure
    return 0


def run_cluster_info(ctx, args) -> int:
    client = ctx.client
    services_rt = ctx.discovery.resolve("services")
    ctx.print(f"Kubernetes control plane is running at {client.server}")
    items, _ = client.list_all(services_rt, "kube-system", label_selector="kubernetes.io/cluster-service=true")
    for svc in items:
        md = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress:
            ip = ingress[0].get("ip") or ingress[0].get("hostname") or ""
            link = " ".join(f"http://{ip}:{p.get('port')}" for p in spec.get("ports") or [])
        else:
            name = md.get("name", "")
            ports = spec.get("ports") or []
            if ports:
                port = ports[0]
                scheme = "https" if port.get("name") == "https" or port.get("port") == 443 else ""
                port_name = port.get("name") or ""
                if scheme:
                    name = f"{scheme}:{name}:{port_name}"
                elif port_name:
                    name = f"{name}:{port_name}"
            link = f"{client.server}{services_rt.path_prefix()}/namespaces/{md.get('namespace', 'kube-system')}/services/{name}/proxy"
        title = (md.get("labels") or {}).get("kubernetes.io/name") or md.get("name", "")
        ctx.print(f"{title} is running at {link}")
    ctx.print("")
    ctx.print("To further debug and diagnose cluster problems, use 'pkctl describe' and "
              "'pkctl get events -A'.")
    return 0


def run_api_resources(ctx, args) -> int:
    fmt = (args.output or "").lower()
    if fmt not in ("", "wide", "name"):
        raise CLIError("--output must be 'wide' or 'name'")
    rows = [d.rt for d in ctx.discovery.all() if d.preferred]
    if args.namespaced is not None:
        rows = [r for r in rows if r.namespaced == args.namespaced]
    if args.api_group is not None:
        rows = [r for r in rows if r.group == args.api_group]
    if args.sort_by == "name":
        rows.sort(key=lambda r: (r.plural, r.group))
    elif args.sort_by == "kind":
        rows.sort(key=lambda r: (r.kind, r.group))
    else:
        rows.sort(key=lambda r: (r.group, r.plural))
    if fmt == "name":
        for r in rows:
            ctx.print(f"{r.plural}.{r.group}" if r.group else r.plural)
        return 0
    lines = []
    header = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    if fmt == "wide":
        header += ["VERBS", "CATEGORIES"]
    if not args.no_headers:
        lines.append(header)
    for r in rows:
        line = [r.plural, ",".join(r.short_names), r.api_version, "true" if r.namespaced else "false", r.kind]
        if fmt == "wide":
            line += ["[" + " ".join(r.verbs) + "]", ",".join(r.categories)]
        lines.append(line)
    ctx.out.write(get_format("".join("\t".join(l) + "\n" for l in lines)))
    return 0
