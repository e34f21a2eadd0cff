"""The objects a command acts on: TYPE/NAME arguments and manifest files.

Arguments follow kubectl's grammar, which every command shares:

* ``pods`` -- every pod; ``pods web db`` -- those two; ``pods,svc`` -- both
  types (``all`` is a category that expands through discovery);
* ``pod/web svc/web`` -- TYPE/NAME pairs, which cannot be mixed with a
  separate TYPE argument.

Manifests (``-f``) are files, directories (their ``.yaml``/``.yml``/``.json``
files, ``-R`` to recurse) or ``-`` for stdin; a file may hold several YAML
documents and ``kind: List`` (or any ``*List`` with ``items``) expands into
its items. Each object keeps the file it came from, for kubectl's
``error when creating "p.yaml": ...`` messages.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import IO, Iterable

import yaml

from api.resources import ResourceType

from .errors import CLIError

MANIFEST_EXTENSIONS = (".yaml", ".yml", ".json")


# ------------------------------------------------------------------ TYPE/NAME
@dataclass
class Target:
    """A resource type and the names asked for (empty: all that match the selectors)."""

    rt: ResourceType
    names: list[str] = field(default_factory=list)


def split_type_args(args: list[str]) -> list[tuple[str, list[str]]]:
    """Pure grammar: ``[(type_token, [names])]`` in argument order."""
    if not args:
        return []
    if any("/" in a for a in args):
        if not all("/" in a for a in args):
            raise CLIError("there is no need to specify a resource type as a separate argument when "
                           "passing arguments in resource/name form (e.g. 'pkctl get resource/<resource_name>' "
                           "instead of 'pkctl get resource resource/<resource_name>'")
        out: list[tuple[str, list[str]]] = []
        for a in args:
            t, _, name = a.partition("/")
            if not t or not name:
                raise CLIError(f"arguments in resource/name form must have a single resource and name: {a!r}")
            if out and out[-1][0] == t:
                out[-1][1].append(name)
            else:
                out.append((t, [name]))
        return out
    types = [t for t in args[0].split(",") if t]
    if not types:
        raise CLIError(f"invalid resource type {args[0]!r}")
    names = list(args[1:])
    return [(t, list(names)) for t in types]


def resolve_targets(args: list[str], discovery) -> list[Target]:
    """TYPE/NAME arguments resolved through discovery (``all`` expanded)."""
    targets: list[Target] = []
    for token, names in split_type_args(args):
        for rt in discovery.expand(token):
            targets.append(Target(rt, list(names)))
    return targets


def kind_prefix(rt: ResourceType) -> str:
    """``pod``, ``service``, ``ingress.networking.k8s.io``: the part before ``/`` in ``-o name``."""
    kind = rt.kind.lower()
    return f"{kind}.{rt.group}" if rt.group else kind


def object_name(rt: ResourceType, name: str) -> str:
    return f"{kind_prefix(rt)}/{name}"


def resource_label(rt: ResourceType) -> str:
    """``pods``, ``ingresses.networking.k8s.io``: how errors and messages name a type."""
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


# ------------------------------------------------------------------ manifests
@dataclass
class Manifest:
    obj: dict
    source: str  # file path, or "STDIN"


def _files(path: str, recursive: bool) -> list[str]:
    if path == "-":
        return ["-"]
    if path.startswith(("http://", "https://")):
        raise CLIError(f"reading manifests from URLs is not supported: {path}")
    if not os.path.exists(path):
        raise CLIError(f'the path "{path}" does not exist')
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(MANIFEST_EXTENSIONS):
                found.append(os.path.join(root, f))
        if not recursive:
            break
    return found


def _parse(text: str, source: str) -> list:
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            try:
                doc = json.loads(text)
                return doc if isinstance(doc, list) else [doc]
            except json.JSONDecodeError:
                pass  # YAML flow style; let the YAML parser say what is wrong
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise CLIError(f"error parsing {source}: {e}") from None


def _expand(doc, source: str) -> Iterable[dict]:
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise CLIError(f'error validating "{source}": error validating data: the document is not an object')
    kind = doc.get("kind") or ""
    if isinstance(doc.get("items"), list) and kind.endswith("List"):
        for item in doc["items"]:
            yield from _expand(item, source)
        return
    missing = [f"{k} not set" for k in ("apiVersion", "kind") if not doc.get(k)]
    if missing:
        what = missing[0] if len(missing) == 1 else "[" + ", ".join(missing) + "]"
        raise CLIError(f'error validating "{source}": error validating data: {what}')
    if not isinstance(doc.get("metadata") or {}, dict):
        raise CLIError(f'error validating "{source}": error validating data: metadata is not an object')
    yield doc


def read_manifests(paths: list[str], recursive: bool = False, stdin: IO[str] | None = None,
                   verb: str = "apply") -> list[Manifest]:
    out: list[Manifest] = []
    for path in paths:
        files = _files(path, recursive)
        if not files and os.path.isdir(path):
            raise CLIError(f'error reading [{path}]: recognized file extensions are '
                           f'[{" ".join(MANIFEST_EXTENSIONS)}]')
        for f in files:
            if f == "-":
                text = (stdin or sys.stdin).read()
                source = "STDIN"
            else:
                try:
                    with open(f, encoding="utf-8") as fh:
                        text = fh.read()
                except (OSError, UnicodeDecodeError) as e:
                    raise CLIError(f"cannot read {f}: {e}") from None
                source = f
            for doc in _parse(text, source):
                out.extend(Manifest(obj, source) for obj in _expand(doc, source))
    if not out:
        raise CLIError(f"no objects passed to {verb}" if paths else "must specify one of -f and -k")
    return out
