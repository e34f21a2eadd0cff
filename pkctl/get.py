"""``pkctl get``: server-side Tables, object formats, and ``-w``.

For table output pkctl sends the Table ``Accept`` header, exactly as kubectl
does, and prints the cells the server computed; a server that answers a
plain list instead still works (NAME and AGE, as kubectl degrades). Object
formats (``-o yaml|json|name|jsonpath|custom-columns``) ask for plain
objects. Lists are paged with ``limit=500`` and ``continue``.

``-w`` lists first, prints that table, then watches from the list's
resourceVersion with Table events and prints each changed row under the
first table; it ends when the server closes the stream (``--request-timeout``
bounds it) and on Ctrl-C.
"""
from __future__ import annotations

from datetime import datetime, timezone

from api.meta import parse_time
from api.tables import human_duration
from client.errors import NotFound, error_from_status

from . import transport
from .errors import CLIError, format_api_error
from .printers import OutputSpec, RowPrinter, TableOptions, parse_output, print_objects, render_table, to_json, to_yaml
from .resources import Target, kind_prefix, object_name, resolve_targets

PAGE = 500

NO_TYPE = ('You must specify the type of resource to get. Use "pkctl api-resources" for a complete list '
           'of supported resources.')


# ------------------------------------------------------------------ fetching
def _plain_to_table(objs: list[dict]) -> dict:
    """What kubectl shows when a server answers a List instead of a Table: NAME and AGE."""
    now = datetime.now(timezone.utc)
    rows = []
    for o in objs:
        md = o.get("metadata") or {}
        age = "<unknown>"
        t = parse_time(md.get("creationTimestamp"))
        if t is not None:
            age = human_duration((now - t).total_seconds())
        rows.append({"cells": [md.get("name", ""), age], "object": {"metadata": md}})
    return {"kind": "Table", "columnDefinitions": [{"name": "Name", "format": "name", "priority": 0},
                                                   {"name": "Age", "priority": 0}], "rows": rows}


def _as_table(doc: dict) -> dict:
    if doc.get("kind") == "Table":
        return doc
    if isinstance(doc.get("items"), list):
        return _plain_to_table(doc["items"])
    return _plain_to_table([doc])


def fetch_table(client, rt, namespace: str | None, *, label_selector=None, field_selector=None) -> tuple[dict, str]:
    """Every row of a collection as one Table, following ``continue``; returns (table, resourceVersion)."""
    params = {"labelSelector": label_selector or None, "fieldSelector": field_selector or None, "limit": PAGE}
    table: dict | None = None
    while True:
        page = client.request("GET", rt.collection_path(namespace), params=params,
                              headers={"Accept": transport.TABLE_ACCEPT})
        rv = (page.get("metadata") or {}).get("resourceVersion", "")
        cont = (page.get("metadata") or {}).get("continue")
        page = _as_table(page)
        if table is None:
            table = page
            table.setdefault("rows", [])
            table["rows"] = list(table.get("rows") or [])
        else:
            table["rows"] += page.get("rows") or []
        if not cont:
            return table, rv
        params["continue"] = cont


def fetch_named_table(client, rt, namespace: str | None, name: str) -> dict:
    doc = client.request("GET", rt.object_path(name, namespace), headers={"Accept": transport.TABLE_ACCEPT})
    return _as_table(doc)


def _merge_tables(tables: list[dict]) -> dict | None:
    if not tables:
        return None
    out = dict(tables[0])
    out["rows"] = [r for t in tables for r in (t.get("rows") or [])]
    return out


def _namespace_for(rt, ctx, all_namespaces: bool) -> str | None:
    if not rt.namespaced:
        return None
    return None if all_namespaces else ctx.namespace


def no_resources(ctx, targets: list[Target], all_namespaces: bool) -> str:
    if all_namespaces or not any(t.rt.namespaced for t in targets):
        return "No resources found"
    return f"No resources found in {ctx.namespace} namespace."


# ------------------------------------------------------------------ command
def run(ctx, args) -> int:
    spec = parse_output(args.output)
    if not args.types:
        raise CLIError(NO_TYPE)
    targets = resolve_targets(args.types, ctx.discovery)
    if args.watch or args.watch_only:
        return watch(ctx, args, spec, targets)
    failures: list[str] = []
    found = (_get_tables if spec.is_table else _get_objects)(ctx, args, spec, targets, failures)
    ctx.out.flush()
    named_only = args.ignore_not_found and any(t.names for t in targets)
    if not found and not failures and not named_only and spec.format not in ("yaml", "json"):
        ctx.warn(no_resources(ctx, targets, args.all_namespaces))
    for f in failures:
        ctx.warn(f)
    return 1 if failures else 0


def _named(ctx, args, names: list[str], fetch, failures: list[str]) -> list:
    """fetch(name) for each name; NotFound is collected (or ignored), the rest raise."""
    out = []
    for name in names:
        try:
            out.append(fetch(name))
        except NotFound as e:
            if not args.ignore_not_found:
                failures.append(format_api_error(e, ctx.server))
    return out


def _get_tables(ctx, args, spec: OutputSpec, targets: list[Target], failures: list[str]) -> int:
    """One table per type (``kind/name`` names when there are several); returns tables printed."""
    show_kind = len(targets) > 1 or args.show_kind
    printed = 0
    for t in targets:
        ns = _namespace_for(t.rt, ctx, args.all_namespaces)
        if t.names:
            table = _merge_tables(_named(ctx, args, t.names,
                                         lambda n: fetch_named_table(ctx.client, t.rt, ns, n), failures))
        else:
            table, _ = fetch_table(ctx.client, t.rt, ns, label_selector=args.selector,
                                   field_selector=args.field_selector)
        if not table or not table.get("rows"):
            continue
        opts = TableOptions(wide=spec.wide, namespace_column=args.all_namespaces and t.rt.namespaced,
                            kind_prefix=kind_prefix(t.rt) if show_kind else "",
                            no_headers=args.no_headers, show_labels=args.show_labels,
                            label_columns=_label_columns(args))
        if printed:
            ctx.out.write("\n")
        ctx.out.write(render_table(table, opts))
        printed += 1
    return printed


def _get_objects(ctx, args, spec: OutputSpec, targets: list[Target], failures: list[str]) -> int:
    """Plain objects: one object when exactly one was named, else a v1 List; returns objects found."""
    objs: list[dict] = []
    types: dict[int, object] = {}
    for t in targets:
        ns = _namespace_for(t.rt, ctx, args.all_namespaces)
        if t.names:
            items = _named(ctx, args, t.names, lambda n: ctx.client.get(t.rt, n, ns), failures)
            for obj in items:
                obj.setdefault("kind", t.rt.kind)
                obj.setdefault("apiVersion", t.rt.api_version)
        else:
            items, _ = ctx.client.list_all(t.rt, ns, label_selector=args.selector,
                                           field_selector=args.field_selector)
        types.update((id(o), t.rt) for o in items)
        objs.extend(items)
    single = len(targets) == 1 and len(targets[0].names) == 1
    if objs or (spec.format in ("yaml", "json") and not single):
        print_objects(objs, spec, ctx.out, single,
                      name_of=lambda o: object_name(types[id(o)], o["metadata"]["name"]))
    return len(objs)


def _label_columns(args) -> list[str]:
    cols: list[str] = []
    for value in args.label_columns or []:
        cols += [c for c in value.split(",") if c]
    return cols


# ------------------------------------------------------------------ watch
def watch(ctx, args, spec: OutputSpec, targets: list[Target]) -> int:
    if len(targets) != 1 or len(targets[0].names) > 1:
        n = sum(max(1, len(t.names)) for t in targets)
        raise CLIError(f"watch is only supported on individual resources and resource collections, "
                       f"but {n} resources were found")
    t = targets[0]
    client = ctx.client
    ns = _namespace_for(t.rt, ctx, args.all_namespaces)
    field_selector = args.field_selector
    if t.names:
        by_name = f"metadata.name={t.names[0]}"
        field_selector = f"{field_selector},{by_name}" if field_selector else by_name
    timeout = int(ctx.request_timeout) if ctx.request_timeout else None

    if not spec.is_table:
        return _watch_objects(ctx, args, spec, t, ns, field_selector, timeout)

    table, rv = fetch_table(client, t.rt, ns, label_selector=args.selector, field_selector=field_selector)
    opts = TableOptions(wide=spec.wide, namespace_column=args.all_namespaces and t.rt.namespaced,
                        no_headers=args.no_headers, show_labels=args.show_labels,
                        label_columns=_label_columns(args))
    printer = RowPrinter(ctx.out, opts)
    printer.columns = table.get("columnDefinitions")
    if not args.watch_only:
        if table.get("rows"):
            printer.print_rows(table)
        else:
            ctx.warn(no_resources(ctx, targets, args.all_namespaces))
    for type_, obj in transport.watch_tables(client, t.rt, ns, resource_version=rv,
                                             label_selector=args.selector, field_selector=field_selector,
                                             timeout_seconds=timeout):
        if type_ == "ERROR":
            raise error_from_status(obj)
        if type_ == "BOOKMARK":
            continue
        printer.print_rows(_as_table(obj))
    return 0


def _watch_objects(ctx, args, spec: OutputSpec, t: Target, ns, field_selector, timeout) -> int:
    client = ctx.client
    items, rv = client.list_all(t.rt, ns, label_selector=args.selector, field_selector=field_selector)

    def emit(obj: dict) -> None:
        obj.setdefault("kind", t.rt.kind)
        obj.setdefault("apiVersion", t.rt.api_version)
        if spec.format == "yaml":
            ctx.out.write("---\n" + to_yaml(obj))
        elif spec.format == "json":
            ctx.out.write(to_json(obj))
        else:
            print_objects([obj], spec, ctx.out, True, name_of=lambda o: object_name(t.rt, o["metadata"]["name"]))
        ctx.out.flush()

    if not args.watch_only:
        for obj in items:
            emit(obj)
    with client.watch(t.rt, ns, resource_version=rv, label_selector=args.selector,
                      field_selector=field_selector, timeout_seconds=timeout, allow_bookmarks=False) as w:
        for type_, obj in w:
            if type_ == "ERROR":
                raise error_from_status(obj)
            if type_ != "BOOKMARK":
                emit(obj)
    return 0
