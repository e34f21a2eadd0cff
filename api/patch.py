"""The three PATCH flavours Kubernetes accepts: JSON merge, JSON and strategic merge.

kubectl chooses the content type, not the user: `kubectl apply` (client-side)
and `kubectl patch` send `application/strategic-merge-patch+json`,
`kubectl patch --type merge|json` send RFC 7386 and RFC 6902 bodies, and
controllers use merge patches for status. The API server applies all three
to the stored object and then validates the result like an update, so the
patch logic itself is pure data manipulation and lives here where it can be
tested exhaustively.

Strategic merge patch is the interesting one. A plain merge patch replaces
lists wholesale, which would make `kubectl apply` of one changed container
image wipe every other container. Kubernetes instead annotates list fields of
its Go types with a *patch strategy* and a *merge key* (containers merge by
`name`, container ports by `containerPort`, ...). We have no Go types, so the
same facts sit in the `SCHEMAS` table below, keyed by kind and field path;
anything not in the table falls back to "maps merge, lists are replaced",
which is also what Kubernetes does for custom resources.

Every function here returns a new object and never mutates its inputs: the
originals are objects out of a shared cache or a decoded request body.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "PatchError",
    "merge_patch",
    "json_patch",
    "strategic_merge_patch",
    "ByKey",
    "SET",
    "ATOMIC",
    "SCHEMAS",
    "schema_for",
]


class PatchError(ValueError):
    """A patch that cannot be applied; the API server answers 400/422 with the message."""


def _copy(value: Any) -> Any:
    """Deep-copy a JSON value (much cheaper than copy.deepcopy for dicts and lists)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# --------------------------------------------------------------------------
# RFC 7386 JSON merge patch
# --------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge, `null` deletes, all else replaces."""
    if not isinstance(patch, dict):
        return _copy(patch)
    if not isinstance(target, dict):
        target = {}
    result = {}
    for key, value in target.items():
        if key not in patch:
            result[key] = _copy(value)
        elif patch[key] is not None:
            result[key] = merge_patch(value, patch[key])
    for key, value in patch.items():
        if key not in target and value is not None:
            result[key] = merge_patch(None, value)
    return result


# --------------------------------------------------------------------------
# RFC 6902 JSON patch
# --------------------------------------------------------------------------

_INDEX_RE = re.compile(r"(0|[1-9][0-9]*)\Z")
_MISSING = object()


def _parse_pointer(pointer: Any, where: str) -> list[str]:
    """Split an RFC 6901 JSON pointer into unescaped reference tokens."""
    if not isinstance(pointer, str):
        raise PatchError(f"{where}: a JSON pointer must be a string, not {type(pointer).__name__}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"{where}: JSON pointer {pointer!r} must start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise PatchError(f"{where}: JSON pointer {pointer!r} has an invalid '~' escape")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _list_index(container: list, token: str, where: str, path: str, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not _INDEX_RE.match(token):
        raise PatchError(f"{where}: {token!r} in path {path!r} is not a valid array index")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"{where}: index {index} in path {path!r} is out of range")
    return index


def _parent(doc: Any, tokens: list[str], where: str, path: str) -> Any:
    """Walk to the container that holds the last token of `path`."""
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"{where}: path {path!r} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(node, token, where, path, allow_end=False)]
        else:
            raise PatchError(f"{where}: path {path!r} does not exist")
    if not isinstance(node, (dict, list)):
        raise PatchError(f"{where}: path {path!r} does not exist")
    return node


def _get(doc: Any, tokens: list[str], where: str, path: str) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens, where, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path {path!r} does not exist")
        return parent[last]
    return parent[_list_index(parent, last, where, path, allow_end=False)]


def _add(doc: Any, tokens: list[str], value: Any, where: str, path: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, where, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent.insert(_list_index(parent, tokens[-1], where, path, allow_end=True), value)
    return doc


def _replace(doc: Any, tokens: list[str], value: Any, where: str, path: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, where, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path {path!r} does not exist")
        parent[last] = value
    else:
        parent[_list_index(parent, last, where, path, allow_end=False)] = value
    return doc


def _remove(doc: Any, tokens: list[str], where: str, path: str) -> Any:
    """Remove the value at `path` and return it."""
    if not tokens:
        raise PatchError(f"{where}: cannot remove the whole document")
    parent = _parent(doc, tokens, where, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path {path!r} does not exist")
        return parent.pop(last)
    return parent.pop(_list_index(parent, last, where, path, allow_end=False))


def _json_equal(a: Any, b: Any) -> bool:
    """Equality with JSON types: unlike Python, `true` is not `1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def json_patch(target: Any, ops: list) -> Any:
    """Apply an RFC 6902 JSON patch; all operations succeed or PatchError is raised."""
    if not isinstance(ops, list):
        raise PatchError(f"a JSON patch must be a list of operations, not {type(ops).__name__}")
    doc = _copy(target)
    for n, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"operation {n}: must be an object")
        name = op.get("op")
        where = f"operation {n} ({name})"
        if name not in ("add", "remove", "replace", "move", "copy", "test"):
            raise PatchError(f"operation {n}: unknown op {name!r}")
        if "path" not in op:
            raise PatchError(f"{where}: missing 'path'")
        path = op["path"]
        tokens = _parse_pointer(path, where)
        value = op.get("value", _MISSING)
        if name in ("add", "replace", "test") and value is _MISSING:
            raise PatchError(f"{where}: missing 'value'")
        source, from_tokens = op.get("from"), []
        if name in ("move", "copy"):
            if "from" not in op:
                raise PatchError(f"{where}: missing 'from'")
            from_tokens = _parse_pointer(source, where)

        if name == "add":
            doc = _add(doc, tokens, _copy(value), where, path)
        elif name == "remove":
            _remove(doc, tokens, where, path)
        elif name == "replace":
            doc = _replace(doc, tokens, _copy(value), where, path)
        elif name == "move":
            if from_tokens == tokens:
                _get(doc, tokens, where, path)
                continue
            if tokens[: len(from_tokens)] == from_tokens:
                raise PatchError(f"{where}: cannot move {source!r} into its own child {path!r}")
            moved = _remove(doc, from_tokens, where, source)
            doc = _add(doc, tokens, moved, where, path)
        elif name == "copy":
            doc = _add(doc, tokens, _copy(_get(doc, from_tokens, where, source)), where, path)
        elif name == "test":
            if not _json_equal(_get(doc, tokens, where, path), value):
                raise PatchError(f"{where}: test failed: value at {path!r} is not {value!r}")
    return doc


# --------------------------------------------------------------------------
# Strategic merge patch: the schema table
# --------------------------------------------------------------------------

# A schema describes one JSON object: field name -> strategy. A strategy is
#   * a nested schema (a dict): the field is an object merged with that schema;
#   * ByKey(key, item): a list of objects merged element by element on `key`,
#     each element merged with the `item` schema;
#   * SET: a list of primitives merged as an ordered union (patchStrategy=merge);
#   * ATOMIC: the value is replaced wholesale.
# Fields not named merge as objects if they are objects and are replaced
# otherwise, so ATOMIC on a list only documents that Kubernetes deliberately
# replaces it (status.containerStatuses, Endpoints subsets).


@dataclass(frozen=True)
class ByKey:
    key: str
    item: Mapping[str, Any] = field(default_factory=dict)


SET = "set"
ATOMIC = "atomic"

OBJECT_META = {"ownerReferences": ByKey("uid"), "finalizers": SET}

CONTAINER = {
    "env": ByKey("name"),
    "ports": ByKey("containerPort"),
    "volumeMounts": ByKey("mountPath"),
    "volumeDevices": ByKey("devicePath"),
}

POD_SPEC = {
    "containers": ByKey("name", CONTAINER),
    "initContainers": ByKey("name", CONTAINER),
    "ephemeralContainers": ByKey("name", CONTAINER),
    "volumes": ByKey("name"),
    "imagePullSecrets": ByKey("name"),
    "hostAliases": ByKey("ip"),
    "topologySpreadConstraints": ByKey("topologyKey"),
    "schedulingGates": ByKey("name"),
    "resourceClaims": ByKey("name"),
}

CONDITIONS = ByKey("type")

POD_STATUS = {
    "conditions": CONDITIONS,
    "podIPs": ByKey("ip"),
    "hostIPs": ByKey("ip"),
    "containerStatuses": ATOMIC,
    "initContainerStatuses": ATOMIC,
    "ephemeralContainerStatuses": ATOMIC,
}

POD_TEMPLATE = {"metadata": OBJECT_META, "spec": POD_SPEC}

WORKLOAD = {"spec": {"template": POD_TEMPLATE}, "status": {"conditions": CONDITIONS}}


def _object(**fields: Any) -> dict:
    """Top-level schema of a kind: every object has ObjectMeta."""
    return {"metadata": OBJECT_META, **fields}


SCHEMAS: dict[str, dict] = {
    "Pod": _object(spec=POD_SPEC, status=POD_STATUS),
    "PodTemplate": _object(template=POD_TEMPLATE),
    "Service": _object(spec={"ports": ByKey("port")}, status={"conditions": CONDITIONS}),
    "Node": _object(
        spec={"podCIDRs": SET},
        status={"conditions": CONDITIONS, "addresses": ByKey("type"), "images": ATOMIC},
    ),
    "Endpoints": _object(subsets=ATOMIC),
    "Namespace": _object(status={"conditions": CONDITIONS}),
    "Ingress": _object(),  # every Ingress list is atomic: the fallback already replaces them
    "Deployment": _object(**WORKLOAD),
    "ReplicaSet": _object(**WORKLOAD),
    "ReplicationController": _object(**WORKLOAD),
    "StatefulSet": _object(**WORKLOAD),
    "DaemonSet": _object(**WORKLOAD),
    "Job": _object(**WORKLOAD),
    "CronJob": _object(spec={"jobTemplate": {"metadata": OBJECT_META, "spec": {"template": POD_TEMPLATE}}}),
}

_FALLBACK = _object()


def schema_for(kind: str) -> dict:
    """The merge schema of `kind`; unknown kinds only know about ObjectMeta."""
    return SCHEMAS.get(kind, _FALLBACK)


# --------------------------------------------------------------------------
# Strategic merge patch: the algorithm
# --------------------------------------------------------------------------

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"
_DELETED = object()  # what a map carrying `$patch: delete` merges to


def strategic_merge_patch(original: dict, patch: dict, kind: str) -> dict:
    """Apply a Kubernetes strategic merge patch to `original` (an object of `kind`).

    Follows apimachinery's strategicpatch.StrategicMergeMapPatch with the
    options the API server uses (nulls for absent keys are dropped, parallel
    `$deleteFromPrimitiveList` lists are honoured). Deliberate differences:
    `$patch: merge` is accepted as an explicit no-op instead of an error,
    `$patch: delete` on a nested map removes the key rather than leaving
    `{}`, and directives never survive into the result, even inside values
    that are added rather than merged.
    """
    if original is None:
        original = {}
    if not isinstance(original, dict):
        raise PatchError("strategic merge patch: the original object must be a JSON object")
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch: the patch must be a JSON object")
    result = _merge_map(_copy(original), patch, schema_for(kind), "")
    return {} if result is _DELETED else result


def _merge_map(original: dict, patch: dict, schema: Mapping, path: str) -> Any:
    """Merge `patch` into `original`, which the caller owns and which is mutated."""
    directive = patch.get(_PATCH)
    if directive == "replace":
        replacement = {k: v for k, v in patch.items() if k != _PATCH}
        return _merge_map({}, replacement, schema, path)
    if directive == "delete":
        return _DELETED
    if directive not in (None, "merge"):
        raise PatchError(f"{path or '<root>'}: unknown $patch directive {directive!r}")

    orders: dict[str, list] = {}
    for key, value in patch.items():
        if key == _RETAIN_KEYS:
            _retain_keys(original, value, path)
        elif key.startswith(_ORDER_PREFIX):
            orders[key[len(_ORDER_PREFIX):]] = _directive_list(key, value, path)
        elif key.startswith(_DELETE_PREFIX):
            name = key[len(_DELETE_PREFIX):]
            doomed = _directive_list(key, value, path)
            if isinstance(original.get(name), list):
                original[name] = [v for v in original[name] if v not in doomed]
        elif key.startswith("$") and key != _PATCH:
            raise PatchError(f"{path or '<root>'}: unknown directive {key!r}")

    for key, value in patch.items():
        if key.startswith("$"):
            continue
        child = f"{path}.{key}" if path else key
        strategy = schema.get(key)
        if value is None:
            original.pop(key, None)
        elif strategy == ATOMIC:
            original[key] = _materialize(value)
        elif isinstance(value, dict):
            current = original.get(key)
            base = current if isinstance(current, dict) else {}
            merged = _merge_map(base, value, strategy if isinstance(strategy, dict) else {}, child)
            if merged is _DELETED:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list):
            current = original.get(key)
            base = current if isinstance(current, list) else []
            original[key] = _merge_list(base, value, strategy, orders.get(key), child)
        else:
            original[key] = value

    for key, order in orders.items():
        if key not in patch and isinstance(original.get(key), list):
            child = f"{path}.{key}" if path else key
            current = original[key]
            original[key] = _reorder(current, order, current, _merge_key(schema.get(key)), child)
    return original


def _directive_list(key: str, value: Any, path: str) -> list:
    if not isinstance(value, list):
        raise PatchError(f"{path or '<root>'}: {key} must be a list")
    return value


def _retain_keys(original: dict, keep: Any, path: str) -> None:
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise PatchError(f"{path or '<root>'}: $retainKeys must be a list of strings")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _merge_key(strategy: Any) -> str | None:
    return strategy.key if isinstance(strategy, ByKey) else None


def _merge_list(original: list, patch: list, strategy: Any, order: list | None, path: str) -> list:
    """Merge a patch list into `original` (owned by the caller) per the field's strategy."""
    replace = False
    items = []
    deletions = []
    key = _merge_key(strategy)
    for element in patch:
        directive = element.get(_PATCH) if isinstance(element, dict) else None
        if directive is None:
            items.append(element)
        elif directive == "replace":
            replace = True  # the other elements become the whole list
        elif directive == "delete":
            if key is None or key not in element:
                raise PatchError(f"{path}: $patch: delete in a list needs the merge key {key!r}")
            deletions.append(element[key])
        elif directive == "merge":
            rest = {k: v for k, v in element.items() if k != _PATCH}
            if rest:
                items.append(rest)
        else:
            raise PatchError(f"{path}: unknown $patch directive {directive!r}")

    merges = strategy == SET or key is not None
    if replace or not merges:
        base: list = []
    else:
        base = [e for e in original if not (key and isinstance(e, dict) and e.get(key) in deletions)]

    if key is not None and all(isinstance(e, dict) for e in items + base):
        item_schema = strategy.item
        for element in items:
            if key not in element:
                raise PatchError(f"{path}: list element {element!r} lacks the merge key {key!r}")
            element_path = f"{path}[{key}={element[key]}]"
            match = next((i for i, e in enumerate(base) if e.get(key) == element[key]), None)
            if match is None:
                base.append(_merge_map({}, element, item_schema, element_path))
            else:
                base[match] = _merge_map(base[match], element, item_schema, element_path)
        merged_list = base
    elif merges:
        if any(isinstance(e, (dict, list)) for e in items + base):
            raise PatchError(f"{path}: cannot merge a list that mixes objects and primitives")
        merged_list = []
        for value in base + [_materialize(e) for e in items]:
            if value not in merged_list:
                merged_list.append(value)
    else:
        merged_list = [_materialize(e) for e in items]

    if order is not None:
        merged_list = _reorder(merged_list, order, original, key, path)
    return merged_list


def _materialize(value: Any) -> Any:
    """A patch value that replaces rather than merges, with its directives resolved."""
    if isinstance(value, dict):
        merged = _merge_map({}, value, {}, "")
        return {} if merged is _DELETED else merged
    if isinstance(value, list):
        return _merge_list([], value, None, None, "")
    return value


def _reorder(merged: list, order: list, server: list, key: str | None, path: str) -> list:
    """Apply `$setElementOrder`, as apimachinery's normalizeElementOrder does.

    Elements named in `order` come in that order; the others ("server-only",
    e.g. added by a controller) keep their place relative to their old
    neighbours in `server`, the list before patching.
    """

    def hashable(value: Any) -> Any:
        return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)

    def ident(element: Any) -> Any:
        keyed = key is not None and isinstance(element, dict)
        return hashable(element.get(key) if keyed else element)

    rank: dict[Any, int] = {}
    for i, entry in enumerate(order):
        if key is not None:
            if not isinstance(entry, dict) or key not in entry:
                raise PatchError(f"{path}: $setElementOrder entry {entry!r} lacks the merge key {key!r}")
            entry = entry[key]
        rank.setdefault(hashable(entry), i)

    server_pos: dict[Any, int] = {}
    for i, element in enumerate(server):
        server_pos.setdefault(ident(element), i)

    ordered = sorted((e for e in merged if ident(e) in rank), key=lambda e: rank[ident(e)])
    server_only = [e for e in merged if ident(e) not in rank]

    result = []
    i = j = 0
    while i < len(server_only) and j < len(ordered):
        left, right = server_pos.get(ident(server_only[i])), server_pos.get(ident(ordered[j]))
        if left is not None and right is not None and left < right:
            result.append(server_only[i])
            i += 1
        else:
            result.append(ordered[j])
            j += 1
    return result + server_only[i:] + ordered[j:]
