"""``pkctl delete``: by file, by TYPE NAME, by selector or ``--all``; then wait until gone.

A DELETE only starts graceful deletion: a pod on a node stays (with a
``deletionTimestamp``) until its kubelet has stopped it, and any object
with finalizers stays until the finalizers are removed. Like kubectl, pkctl
prints ``pod "x" deleted`` once the server accepted the request and then
waits for every object to disappear (``--wait=false`` skips this), bounded
by ``--timeout`` (default 60s). While it waits it says why it is waiting
(finalizers, grace period) on stderr, updating one line on a terminal.
An object replaced by a new one of the same name (a new uid) counts as gone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from client.errors import ApiError, NotFound

from .errors import CLIError, format_api_error
from .printers import parse_output
from .resources import kind_prefix, object_name, read_manifests, resolve_targets
from .apply import resolve_manifest

NO_ARGS = ("You must provide one or more resources by argument or filename.\n"
           "Example resource specifications include:\n"
           "   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'")


@dataclass
class Doomed:
    rt: object
    namespace: str | None
    name: str
    uid: str = ""

    @property
    def label(self) -> str:
        return f"{self.rt.plural}/{self.name}"


def _collect(ctx, args) -> tuple[list[Doomed], list[str]]:
    failures: list[str] = []
    doomed: list[Doomed] = []
    if args.filename:
        if args.types:
            raise CLIError("cannot specify both resource arguments and -f")
        for m in read_manifests(args.filename, args.recursive, ctx.stdin, "delete"):
            rt, ns, obj = resolve_manifest(ctx, m)
            doomed.append(Doomed(rt, ns, obj["metadata"]["name"]))
        return doomed, failures
    if not args.types:
        raise CLIError(NO_ARGS)
    targets = resolve_targets(args.types, ctx.discovery)
    by_selector = bool(args.all or args.selector or args.field_selector)
    for t in targets:
        ns = None if not t.rt.namespaced else (None if args.all_namespaces else ctx.namespace)
        if t.names:
            if by_selector:
                raise CLIError("name cannot be provided when a selector is specified")
            doomed += [Doomed(t.rt, ns if t.rt.namespaced else None, n) for n in t.names]
        elif by_selector:
            items, _ = ctx.client.list_all(t.rt, ns, label_selector=args.selector or None,
                                           field_selector=args.field_selector or None)
            for o in items:
                md = o["metadata"]
                doomed.append(Doomed(t.rt, md.get("namespace"), md["name"], md.get("uid", "")))
        else:
            raise CLIError("resource(s) were provided, but no name was specified")
    return doomed, failures


def _grace(args) -> int | None:
    grace = args.grace_period
    if args.now:
        if grace is not None and grace != 1:
            raise CLIError("--now and --grace-period cannot be specified together")
        grace = 1
    if grace == 0 and not args.force:
        grace = 1  # kubectl: protect against accidental immediate deletion
    if args.force and grace is None:
        grace = 0
    return grace


def run(ctx, args) -> int:
    spec = parse_output(args.output)
    if spec.format not in ("", "name"):
        raise CLIError("delete only supports -o name")
    grace = _grace(args)
    if grace == 0:
        ctx.warn("Warning: Immediate deletion does not wait for confirmation that the running resource has "
                 "been terminated. The resource may continue to run on the cluster indefinitely.")
    doomed, failures = _collect(ctx, args)
    if not doomed:
        if not failures:
            ctx.warn("No resources found")
        return 0
    pending: list[Doomed] = []
    failed = False
    for d in doomed:
        try:
            out = ctx.client.delete(d.rt, d.name, d.namespace, grace_period_seconds=grace,
                                    propagation_policy="Background")
        except NotFound as e:
            if not args.ignore_not_found:
                ctx.warn(format_api_error(e, ctx.server))
                failed = True
            continue
        except ApiError as e:
            ctx.warn(format_api_error(e, ctx.server))
            failed = True
            continue
        if out.get("kind") != "Status":
            d.uid = (out.get("metadata") or {}).get("uid", d.uid)
            pending.append(d)
        if spec.format == "name":
            ctx.print(object_name(d.rt, d.name))
        else:
            ctx.print(f'{kind_prefix(d.rt)} "{d.name}" deleted')
    if args.wait and pending:
        if not wait_deleted(ctx, pending, args.timeout):
            failed = True
    return 1 if failed else 0


# ------------------------------------------------------------------ waiting
def _why(obj: dict) -> str:
    md = obj.get("metadata") or {}
    reasons = []
    if md.get("finalizers"):
        reasons.append("finalizers: " + ", ".join(md["finalizers"]))
    if md.get("deletionGracePeriodSeconds"):
        reasons.append(f"terminating, grace period {md['deletionGracePeriodSeconds']}s")
    return f" ({'; '.join(reasons)})" if reasons else ""


def wait_deleted(ctx, pending: list[Doomed], timeout: float) -> bool:
    """Poll until every object is gone; False (and an error line per object) on timeout."""
    tty = hasattr(ctx.err, "isatty") and ctx.err.isatty()
    start = time.monotonic()
    deadline = start + (timeout if timeout and timeout > 0 else 365 * 86400)
    interval = 0.1
    announced: set[str] = set()
    last_line = ""
    while pending:
        still: list[Doomed] = []
        why: dict[str, str] = {}
        for d in pending:
            try:
                obj = ctx.client.get(d.rt, d.name, d.namespace)
            except NotFound:
                continue
            if d.uid and (obj.get("metadata") or {}).get("uid") != d.uid:
                continue  # a new object with the same name: ours is gone
            still.append(d)
            why[d.label] = _why(obj)
        pending = still
        if not pending:
            break
        elapsed = time.monotonic() - start
        if time.monotonic() >= deadline:
            if tty and last_line:
                ctx.err.write("\r" + " " * len(last_line) + "\r")
            for d in pending:
                ctx.warn(f"error: timed out waiting for the condition on {d.label}")
            return False
        first = pending[0]
        line = (f'waiting for {kind_prefix(first.rt)} "{first.name}" to be deleted{why[first.label]}'
                + (f" and {len(pending) - 1} more" if len(pending) > 1 else ""))
        if tty:
            text = f"{line} ... {int(elapsed)}s"
            ctx.err.write("\r" + text + " " * max(0, len(last_line) - len(text)))
            ctx.err.flush()
            last_line = text
        elif elapsed >= 0.5 and first.label not in announced:
            announced.add(first.label)
            ctx.warn(line + " ...")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 1.0)
    if tty and last_line:
        ctx.err.write("\r" + " " * len(last_line) + "\r")
        ctx.err.flush()
    return True
