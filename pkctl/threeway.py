"""The patch client-side ``apply`` sends: a three-way diff, as kubectl computes it.

Three inputs: *original* (what was applied last time, kept in the
``kubectl.kubernetes.io/last-applied-configuration`` annotation), *modified*
(the manifest now) and *current* (the live object). Fields that differ
between modified and current are set; fields that were in original but are
gone from modified are deleted (``null``); fields nobody applied (defaults,
status, what controllers added) are left alone. An empty patch means
"unchanged" and nothing is sent.

For kinds with a strategic-merge schema (the same ``api.patch.SCHEMAS`` the
server merges with, so both sides agree on merge keys) lists of objects are
diffed element by element on their merge key -- one changed container image
becomes one small element patch, a container removed from the manifest a
``$patch: delete`` entry, and ``$setElementOrder`` keeps the manifest's
order -- and primitive sets (``finalizers``) use ``$deleteFromPrimitiveList``.
For other kinds the result is an RFC 7386 merge patch: lists are replaced.
"""
from __future__ import annotations

from typing import Any

from api.patch import SCHEMAS, SET, ByKey, schema_for

_MISSING = object()


def is_strategic(kind: str) -> bool:
    return kind in SCHEMAS


def three_way(original: dict | None, modified: dict, current: dict, kind: str) -> dict:
    strategic = is_strategic(kind)
    return _diff(original or {}, modified, current or {}, schema_for(kind) if strategic else {}, strategic)


def _keyed(items: list, key: str) -> bool:
    return all(isinstance(e, dict) and key in e for e in items)


def _diff(original: dict, modified: dict, current: dict, schema: Any, strategic: bool) -> dict:
    patch: dict[str, Any] = {}
    schema = schema if isinstance(schema, dict) else {}
    for key, m in modified.items():
        c = current.get(key, _MISSING)
        o = original.get(key, _MISSING)
        strategy = schema.get(key) if strategic else None
        if isinstance(m, dict) and isinstance(c, dict):
            sub = _diff(o if isinstance(o, dict) else {}, m, c, strategy, strategic)
            if sub:
                patch[key] = sub
        elif (strategic and isinstance(strategy, ByKey) and isinstance(m, list) and isinstance(c, list)
              and _keyed(m, strategy.key) and _keyed(c, strategy.key)):
            entries, reordered = _keyed_list(o if isinstance(o, list) else [], m, c, strategy)
            if entries:
                patch[key] = entries
            if entries or reordered:
                patch[f"$setElementOrder/{key}"] = [{strategy.key: e[strategy.key]} for e in m]
        elif strategic and strategy == SET and isinstance(m, list) and isinstance(c, list):
            if any(v not in c for v in m):
                patch[key] = m
            removed = [v for v in (o if isinstance(o, list) else []) if v not in m and v in c]
            if removed:
                patch[f"$deleteFromPrimitiveList/{key}"] = removed
        elif c is _MISSING or m != c:
            patch[key] = m
    for key in original:
        if key not in modified and key in current:
            patch[key] = None
    return patch


def _keyed_list(original: list, modified: list, current: list, strategy: ByKey) -> tuple[list, bool]:
    key = strategy.key
    cur = {e[key]: e for e in current}
    orig = {e[key]: e for e in original if isinstance(e, dict) and key in e}
    entries: list = []
    for e in modified:
        k = e[key]
        if k not in cur:
            entries.append(e)
            continue
        sub = _diff(orig.get(k, {}), e, cur[k], strategy.item, True)
        if sub:
            entries.append({key: k, **sub})
    wanted = {e[key] for e in modified}
    for k in orig:
        if k not in wanted and k in cur:
            entries.append({"$patch": "delete", key: k})
    reordered = [e[key] for e in modified] != [e[key] for e in current if e[key] in wanted]
    return entries, reordered
