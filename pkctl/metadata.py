"""``pkctl label`` and ``pkctl annotate``: change one metadata map with a merge patch.

Arguments are ``TYPE NAME... key=value key-`` (or ``TYPE/NAME``), with
``-l``/``--all`` selecting objects instead of names. Changing a key that
already has a different value needs ``--overwrite``, as in kubectl, so a
typo cannot silently replace a label a controller relies on. The change is a
JSON merge patch of just that map (``null`` removes a key), optionally
guarded by ``--resource-version``; an object that ends up unchanged is
reported as ``not labeled``/``not annotated`` and not written.
"""
from __future__ import annotations

import json

from client.errors import ApiError, NotFound
from client.rest import PATCH_CONTENT_TYPES

from .errors import CLIError, format_api_error
from .printers import parse_output, print_objects
from .resources import object_name, resolve_targets

VERBS = {"label": ("labels", "labeled", "label"), "annotate": ("annotations", "annotated", "annotation")}


def split_items(items: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """(resource args, key=value changes, keys to remove)."""
    resources: list[str] = []
    changes: dict[str, str] = {}
    removals: list[str] = []
    for item in items:
        if "=" in item:
            k, v = item.split("=", 1)
            if not k:
                raise CLIError(f"invalid argument {item!r}: empty key")
            changes[k] = v
        elif item.endswith("-") and len(item) > 1 and resources:
            removals.append(item[:-1])
        else:
            if changes or removals:
                raise CLIError(f"resource arguments must come before the changes: {item!r}")
            resources.append(item)
    for k in removals:
        if k in changes:
            raise CLIError(f"can not both modify and remove the key {k!r} in the same command")
    return resources, changes, removals


def apply_changes(current: dict, changes: dict[str, str], removals: list[str], overwrite: bool,
                  what: str) -> dict:
    """The new map; raises CLIError when --overwrite is needed."""
    out = dict(current)
    for k, v in changes.items():
        if k in out and out[k] != v and not overwrite:
            raise CLIError(f"'{k}' already has a value ({out[k]}), and --overwrite is false")
        out[k] = v
    for k in removals:
        out.pop(k, None)
    return out


def run(ctx, args) -> int:
    field, done, noun = VERBS[args.command]
    spec = parse_output(args.output)
    resources, changes, removals = split_items(args.items)
    if not resources:
        raise CLIError('one or more resources must be specified as <resource> <name> or <resource>/<name>')
    if not changes and not removals and not args.list:
        raise CLIError(f"at least one {noun} update is required")
    targets = resolve_targets(resources, ctx.discovery)
    client = ctx.client
    by_selector = bool(args.all or args.selector)
    objects: list[tuple[object, dict]] = []
    failed = False
    for t in targets:
        ns = (None if args.all_namespaces else ctx.namespace) if t.rt.namespaced else None
        if t.names:
            if by_selector:
                raise CLIError("name cannot be provided when a selector is specified")
            for n in t.names:
                try:
                    objects.append((t.rt, client.get(t.rt, n, ns if t.rt.namespaced else None)))
                except NotFound as e:
                    ctx.warn(format_api_error(e, ctx.server))
                    failed = True
        elif by_selector:
            items, _ = client.list_all(t.rt, ns, label_selector=args.selector or None)
            objects += [(t.rt, o) for o in items]
        else:
            raise CLIError("resource(s) were provided, but no name was specified")
    shown: list[dict] = []
    for rt, obj in objects:
        md = obj.get("metadata") or {}
        current = md.get(field) or {}
        label = object_name(rt, md.get("name", ""))
        if args.list:
            for k in sorted(current):
                ctx.print(f"{k}={current[k]}")
            continue
        try:
            new = apply_changes(current, changes, removals, args.overwrite, noun)
        except CLIError as e:
            ctx.warn(f"error: {e.message}")
            failed = True
            continue
        if new == current:
            ctx.print(f"{label} not {done}")
            continue
        patch_map = {k: v for k, v in new.items() if current.get(k) != v}
        patch_map.update({k: None for k in current if k not in new})
        patch: dict = {"metadata": {field: patch_map}}
        if args.resource_version:
            patch["metadata"]["resourceVersion"] = args.resource_version
        params = {"fieldManager": f"pkctl-{args.command}"}
        if args.dry_run == "server":
            params["dryRun"] = "All"
        try:
            if args.dry_run == "client":
                out = {**obj, "metadata": {**md, field: new}}
            else:
                ns = md.get("namespace") if rt.namespaced else None
                out = client.request("PATCH", rt.object_path(md["name"], ns), params=params,
                                     content=json.dumps(patch).encode(), content_type=PATCH_CONTENT_TYPES["merge"])
        except ApiError as e:
            ctx.warn(format_api_error(e, ctx.server))
            failed = True
            continue
        out.setdefault("kind", rt.kind)
        out.setdefault("apiVersion", rt.api_version)
        if spec.format in ("yaml", "json"):
            shown.append(out)
        elif spec.format == "name":
            ctx.print(label)
        else:
            suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
            ctx.print(f"{label} {done}{suffix}")
    if shown:
        print_objects(shown, spec, ctx.out, single=len(shown) == 1)
    if not objects and not failed:
        ctx.warn("No resources found")
    return 1 if failed else 0
