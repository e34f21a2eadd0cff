"""``pkctl apply -f`` and ``pkctl create -f`` (``create configmap|secret`` goes to ``generators``).

``create`` POSTs each manifest. ``apply`` is kubectl's client-side apply:
it GETs the object; if it is missing, creates it with the manifest recorded
in the ``kubectl.kubernetes.io/last-applied-configuration`` annotation;
otherwise it sends the three-way patch from ``threeway`` (strategic merge for
built-in kinds, JSON merge for others) and prints ``configured``, or sends
nothing and prints ``unchanged``. ``--server-side`` sends the manifest as an
``application/apply-patch+yaml`` patch and lets the server create or merge.

Each object is handled on its own: one failure is reported (with the file it
came from, as kubectl does) and the others still go through; the exit code
is 1 if any failed.
"""
from __future__ import annotations

import copy
import json

from client.errors import ApiError, Conflict, Invalid, NotFound
from client.rest import PATCH_CONTENT_TYPES

from .errors import CLIError, format_api_error
from .generators import run as run_generator
from .printers import parse_output, print_objects
from .resources import Manifest, object_name, read_manifests
from .threeway import is_strategic, three_way

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CREATE_MANAGER = "pkctl-create"
APPLY_MANAGER = "pkctl-client-side-apply"
SSA_MANAGER = "pkctl"


def resolve_manifest(ctx, m: Manifest):
    """(resource type, namespace, object to send) for one manifest."""
    obj = copy.deepcopy(m.obj)
    md = obj.setdefault("metadata", {})
    rt = ctx.discovery.for_kind(obj["apiVersion"], obj["kind"])
    if rt is None:
        raise CLIError(f'resource mapping not found for name: "{md.get("name", "")}" namespace: '
                       f'"{md.get("namespace", "")}" from "{m.source}": no matches for kind "{obj["kind"]}" '
                       f'in version "{obj["apiVersion"]}"\nensure CRDs are installed first')
    ns = None
    if rt.namespaced:
        own = md.get("namespace")
        if own and ctx.namespace_explicit and own != ctx.namespace:
            raise CLIError(f'the namespace from the provided object "{own}" does not match the namespace '
                           f'"{ctx.namespace}". You must pass \'--namespace={own}\' to perform this operation.')
        ns = own or ctx.namespace
        md["namespace"] = ns
    else:
        md.pop("namespace", None)
    if not md.get("name") and not md.get("generateName"):
        raise CLIError(f'error when processing "{m.source}": resource name may not be empty')
    return rt, ns, obj


def _dry(args) -> dict:
    return {"dryRun": "All"} if args.dry_run == "server" else {}


def _suffix(args) -> str:
    return {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")


def last_applied(obj: dict) -> str:
    """The annotation value: the manifest without the annotation itself, keys sorted like Go's."""
    cfg = copy.deepcopy(obj)
    annotations = cfg.setdefault("metadata", {}).setdefault("annotations", {})
    annotations.pop(LAST_APPLIED, None)
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def with_last_applied(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    value = last_applied(obj)
    out.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = value
    return out


# ------------------------------------------------------------------ verbs
def _create(ctx, rt, ns, obj, manager, args) -> dict:
    if args.dry_run == "client":
        return obj
    return ctx.client.request("POST", rt.collection_path(ns), params={"fieldManager": manager, **_dry(args)},
                              body=obj)


def _patch(ctx, rt, ns, name, patch, patch_type, manager, args, force=None) -> dict:
    content = json.dumps(patch).encode()
    params = {"fieldManager": manager, **_dry(args)}
    if force is not None:
        params["force"] = force
    return ctx.client.request("PATCH", rt.object_path(name, ns), params=params, content=content,
                              content_type=PATCH_CONTENT_TYPES[patch_type])


def apply_one(ctx, m: Manifest, args) -> tuple[str, dict]:
    """Returns (what happened, the object as the server answered)."""
    rt, ns, obj = resolve_manifest(ctx, m)
    name = obj["metadata"].get("name", "")
    if not name:
        raise CLIError(f'from {m.source}: cannot use generate name with apply')
    if args.server_side:
        if args.dry_run == "client":
            return "serverside-applied", obj
        out = _patch(ctx, rt, ns, name, obj, "apply", args.field_manager or SSA_MANAGER, args,
                     force=bool(args.force_conflicts))
        return "serverside-applied", out
    modified = with_last_applied(obj)
    for attempt in range(5):
        try:
            current = ctx.client.get(rt, name, ns)
        except NotFound:
            return "created", _create(ctx, rt, ns, modified, args.field_manager or APPLY_MANAGER, args)
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        original = None
        if LAST_APPLIED in annotations:
            try:
                original = json.loads(annotations[LAST_APPLIED])
            except ValueError:
                original = None
        else:
            ctx.warn(f"Warning: resource {rt.plural}/{name} is missing the {LAST_APPLIED} annotation which is "
                     "required by pkctl apply. pkctl apply should only be used on resources created "
                     "declaratively by either pkctl create --save-config or pkctl apply. The missing annotation "
                     "will be patched automatically.")
        patch = three_way(original, modified, current, rt.kind)
        if not patch:
            return "unchanged", current
        if args.dry_run == "client":
            return "configured", modified
        try:
            out = _patch(ctx, rt, ns, name, patch, "strategic" if is_strategic(rt.kind) else "merge",
                         args.field_manager or APPLY_MANAGER, args)
            return "configured", out
        except Conflict:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def create_one(ctx, m: Manifest, args) -> tuple[str, dict]:
    rt, ns, obj = resolve_manifest(ctx, m)
    return "created", _create(ctx, rt, ns, obj, args.field_manager or CREATE_MANAGER, args)


def _run(ctx, args, verb: str, one) -> int:
    spec = parse_output(args.output)
    if spec.format not in ("", "name", "yaml", "json"):
        raise CLIError(f"--output {spec.format} is not supported by {verb} (use name, yaml or json)")
    if not args.filename:
        raise CLIError("must specify one of -f and -k")
    manifests = read_manifests(args.filename, args.recursive, ctx.stdin, verb)
    failed = 0
    shown: list[dict] = []
    for m in manifests:
        try:
            what, out = one(ctx, m, args)
        except CLIError as e:
            ctx.warn(f"error: {e.message}")
            failed += 1
            continue
        except ApiError as e:
            action = "creating" if verb == "create" else "applying"
            context = "" if isinstance(e, Invalid) else f'error when {action} "{m.source}": '
            ctx.warn(format_api_error(e, ctx.server, context))
            failed += 1
            continue
        obj = out if isinstance(out, dict) and out.get("metadata") else m.obj
        obj.setdefault("kind", m.obj.get("kind"))
        obj.setdefault("apiVersion", m.obj.get("apiVersion"))
        rt = ctx.discovery.for_kind(m.obj["apiVersion"], m.obj["kind"])
        label = object_name(rt, obj["metadata"].get("name", ""))
        if spec.format == "name":
            ctx.print(label)
        elif spec.format in ("yaml", "json"):
            shown.append(obj)
        else:
            ctx.print(f"{label} {what}{_suffix(args)}")
    if shown:
        print_objects(shown, spec, ctx.out, single=len(shown) == 1)
    return 1 if failed else 0


def run_apply(ctx, args) -> int:
    return _run(ctx, args, "apply", apply_one)


def run_create(ctx, args) -> int:
    if getattr(args, "what", None):
        if args.filename:
            raise CLIError("give either -f or a kind to create (pkctl create configmap|secret NAME), not both")
        return run_generator(ctx, args)
    return _run(ctx, args, "create", create_one)
