"""``pkctl run`` and ``pkctl expose``: build an object from flags and create it.

``run NAME --image=IMG`` makes one Pod labelled ``run=NAME`` (or
``--labels``), with one container named NAME; words after ``--`` become the
container's ``args`` or, with ``--command``, its ``command``.

``expose TYPE NAME`` makes a Service that selects what the exposed object
selects: a pod's own labels, a service's selector, a deployment's or replica
set's ``spec.selector.matchLabels``. Ports come from ``--port`` /
``--target-port``, else from the exposed object (container ports, or the
service's ports), as kubectl does.

Both accept ``--dry-run=client|server`` and ``-o yaml|json|name``.
"""
from __future__ import annotations

import argparse

from .errors import CLIError
from .flags import parse_key_values
from .printers import parse_output, print_objects
from .resources import object_name

RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _kv(text: str, what: str) -> dict[str, str]:
    try:
        return parse_key_values(text, what)
    except argparse.ArgumentTypeError as e:
        raise CLIError(str(e)) from None


def build_pod(args) -> dict:
    name = args.name
    if not args.image:
        raise CLIError('required flag(s) "image" not set')
    if args.restart not in RESTART_POLICIES:
        raise CLIError(f"invalid restart policy: {args.restart} (use one of {', '.join(RESTART_POLICIES)})")
    labels = _kv(args.labels, "label") if args.labels else {"run": name}
    container: dict = {"name": name, "image": args.image, "resources": {}}
    words = list(args.after_dashdash or []) + list(args.args_words or [])
    if args.use_command and not words:
        raise CLIError("--command requires the command after --: pkctl run NAME --image=IMG --command -- CMD")
    if words:
        container["command" if args.use_command else "args"] = words
    if args.port is not None:
        container["ports"] = [{"containerPort": args.port}]
    if args.env:
        env = []
        for item in args.env:
            if "=" not in item:
                raise CLIError(f"invalid env: {item!r} (expected KEY=VALUE)")
            k, v = item.split("=", 1)
            env.append({"name": k, "value": v})
        container["env"] = env
    if args.image_pull_policy:
        container["imagePullPolicy"] = args.image_pull_policy
    metadata: dict = {"name": name, "labels": labels}
    annotations: dict[str, str] = {}
    for item in args.annotations or []:
        annotations.update(_kv(item, "annotation"))
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [container], "restartPolicy": args.restart, "dnsPolicy": "ClusterFirst"},
            "status": {}}


def create_built(ctx, rt, ns, obj, manager, args, verb: str) -> int:
    """POST an object built from flags (or only print it for --dry-run=client) and report it like kubectl."""
    spec = parse_output(args.output)
    if spec.format not in ("", "name", "yaml", "json"):
        raise CLIError("-o must be one of name, yaml, json here")
    if args.dry_run == "client":
        out = obj
    else:
        params = {"fieldManager": manager}
        if args.dry_run == "server":
            params["dryRun"] = "All"
        out = ctx.client.request("POST", rt.collection_path(ns), params=params, body=obj)
    out.setdefault("kind", rt.kind)
    out.setdefault("apiVersion", rt.api_version)
    label = object_name(rt, out["metadata"]["name"])
    if spec.format in ("yaml", "json"):
        print_objects([out], spec, ctx.out, single=True)
    elif spec.format == "name":
        ctx.print(label)
    else:
        suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
        ctx.print(f"{label} {verb}{suffix}")
    return 0


def run_run(ctx, args) -> int:
    pod = build_pod(args)
    if args.dry_run == "client" and parse_output(args.output).format in ("yaml", "json"):
        print_objects([pod], parse_output(args.output), ctx.out, single=True)
        return 0
    pods = ctx.discovery.resolve("pods")
    pod["metadata"]["namespace"] = ctx.namespace
    return create_built(ctx, pods, ctx.namespace, pod, "pkctl-run", args, "created")


# ------------------------------------------------------------------ expose
def _selector_of(kind: str, obj: dict, name: str) -> dict:
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    if kind == "Pod":
        if not md.get("labels"):
            raise CLIError("couldn't retrieve selectors via --selector flag or introspection: "
                           "the pod has no labels and cannot be exposed")
        return dict(md["labels"])
    if kind == "Service":
        if not spec.get("selector"):
            raise CLIError(f'couldn\'t find selectors via --selector flag or introspection: service "{name}" '
                           "has no selector")
        return dict(spec["selector"])
    if kind == "ReplicationController":
        return dict(spec.get("selector") or {})
    sel = spec.get("selector") or {}
    if sel.get("matchExpressions"):
        raise CLIError("couldn't convert expressions in the selector to map-based selector format; "
                       "pass --selector")
    if not sel.get("matchLabels"):
        raise CLIError(f"couldn't retrieve selectors via --selector flag or introspection: {kind} has no selector")
    return dict(sel["matchLabels"])


def _ports_of(kind: str, obj: dict) -> list[dict]:
    spec = obj.get("spec") or {}
    if kind == "Service":
        out = []
        for p in spec.get("ports") or []:
            q = {"port": p["port"], "protocol": p.get("protocol", "TCP"),
                 "targetPort": p.get("targetPort", p["port"])}
            if p.get("name"):
                q["name"] = p["name"]
            out.append(q)
        return out
    pod_spec = spec if kind == "Pod" else ((spec.get("template") or {}).get("spec") or {})
    ports = [p for c in pod_spec.get("containers") or [] for p in c.get("ports") or []]
    out = []
    for i, p in enumerate(ports):
        q = {"port": p["containerPort"], "protocol": p.get("protocol", "TCP"), "targetPort": p["containerPort"]}
        if len(ports) > 1:
            q["name"] = p.get("name") or f"port-{i + 1}"
        out.append(q)
    return out


def _port_value(text: str):
    return int(text) if str(text).isdigit() else text


def build_service(args, kind: str, obj: dict) -> dict:
    md = obj.get("metadata") or {}
    name = args.name or md.get("name", "")
    selector = _kv(args.selector, "selector") if args.selector else _selector_of(kind, obj, md.get("name", ""))
    if args.port is not None:
        ports = []
        for i, part in enumerate(str(args.port).split(",")):
            if not part.strip().isdigit():
                raise CLIError(f"invalid --port {args.port!r}: expected a number")
            p: dict = {"port": int(part), "protocol": args.protocol or "TCP"}
            if args.target_port is not None:
                p["targetPort"] = _port_value(args.target_port)
            else:
                p["targetPort"] = int(part)
            if "," in str(args.port):
                p["name"] = f"port-{i + 1}"
            ports.append(p)
    else:
        ports = _ports_of(kind, obj)
        if args.protocol:
            for p in ports:
                p["protocol"] = args.protocol
        if args.target_port is not None:
            for p in ports:
                p["targetPort"] = _port_value(args.target_port)
    if not ports and args.type != "ExternalName":
        raise CLIError("couldn't find port via --port flag or introspection")
    labels = _kv(args.labels, "label") if args.labels else dict(md.get("labels") or {})
    spec: dict = {"ports": ports, "selector": selector}
    if args.type:
        spec["type"] = args.type
    if args.cluster_ip:
        spec["clusterIP"] = "None" if args.cluster_ip.lower() == "none" else args.cluster_ip
    metadata: dict = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


EXPOSABLE = ("Pod", "Service", "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet")


def run_expose(ctx, args) -> int:
    target = list(args.target)
    if len(target) == 1 and "/" in target[0]:
        kind_arg, _, name = target[0].partition("/")
    elif len(target) == 2 and "/" not in target[0]:
        kind_arg, name = target
    else:
        raise CLIError("expose takes one object: pkctl expose TYPE NAME or pkctl expose TYPE/NAME")
    rt = ctx.discovery.resolve(kind_arg)
    if rt.kind not in EXPOSABLE:
        raise CLIError(f"cannot expose a {rt.kind}")
    ns = ctx.namespace if rt.namespaced else None
    obj = ctx.client.get(rt, name, ns)
    svc = build_service(args, rt.kind, obj)
    svc["metadata"]["namespace"] = ctx.namespace
    services = ctx.discovery.resolve("services")
    return create_built(ctx, services, ctx.namespace, svc, "pkctl-expose", args, "exposed")
