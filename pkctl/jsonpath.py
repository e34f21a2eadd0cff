"""kubectl's JSONPath template dialect for ``-o jsonpath=...`` and custom columns.

It is not RFC JSONPath: a template mixes literal text with ``{...}`` actions
(``{.metadata.name}``, ``{.items[*].status.podIP}``, ``{range .items[*]}...
{end}``, ``{"\\n"}``), several results of one action are joined by a space,
maps and lists print as JSON, and -- like kubectl's default
``--allow-missing-template-keys=true`` -- a missing key prints nothing
instead of failing. Supported path steps: ``.field`` (dots in keys escaped as
``\\.``), ``['field']``, ``..field`` (recursive descent), ``[n]``, ``[a:b]``,
``[*]`` and filters ``[?(@.path OP value)]`` with ``== != < <= > >=`` or a
bare ``[?(@.path)]`` existence test.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["JSONPathError", "Template", "render", "evaluate"]


class JSONPathError(ValueError):
    pass


# ---------------------------------------------------------------- parsing
@dataclass
class _Text:
    text: str


@dataclass
class _Expr:
    steps: list


@dataclass
class _Range:
    steps: list
    body: list


def _split_actions(template: str) -> list[tuple[str, str]]:
    """[("text", ...), ("action", ...)] honouring quotes inside actions."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(template)
    buf = []
    while i < n:
        c = template[i]
        if c == "{":
            if buf:
                out.append(("text", "".join(buf)))
                buf = []
            j = i + 1
            quote = None
            depth = 0
            while j < n:
                ch = template[j]
                if quote:
                    if ch == "\\":
                        j += 2
                        continue
                    if ch == quote:
                        quote = None
                elif ch in "\"'":
                    quote = ch
                elif ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                elif ch == "}" and depth <= 0:
                    break
                j += 1
            if j >= n:
                raise JSONPathError(f"unclosed action in template {template!r}")
            out.append(("action", template[i + 1:j].strip()))
            i = j + 1
        else:
            buf.append(c)
            i += 1
    if buf:
        out.append(("text", "".join(buf)))
    return out


def _unquote(s: str) -> str:
    body = s[1:-1]
    return bytes(body, "utf-8").decode("unicode_escape") if "\\" in body else body


_NUMBER = re.compile(r"-?\d+(\.\d+)?$")


def _literal(s: str) -> Any:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return _unquote(s)
    if _NUMBER.match(s):
        return float(s) if "." in s else int(s)
    if s in ("true", "false"):
        return s == "true"
    return s


def _parse_path(expr: str) -> list:
    """A path expression -> list of steps."""
    steps: list = []
    s = expr.strip()
    i, n = 0, len(s)
    if s in ("", ".", "@", "$"):
        return steps
    if s[0] in "@$":
        i = 1
    while i < n:
        c = s[i]
        if s.startswith("..", i):
            i += 2
            name, i = _read_name(s, i)
            steps.append(("recurse", name))
        elif c == ".":
            i += 1
            if i < n and s[i] == "[":
                continue
            name, i = _read_name(s, i)
            if name == "*":
                steps.append(("wildcard",))
            elif name:
                steps.append(("field", name))
        elif c == "[":
            depth, j, quote = 0, i, None
            while j < n:
                ch = s[j]
                if quote:
                    if ch == quote:
                        quote = None
                elif ch in "\"'":
                    quote = ch
                elif ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise JSONPathError(f"unterminated [ in {expr!r}")
            steps.append(_parse_bracket(s[i + 1:j], expr))
            i = j + 1
        else:
            name, i = _read_name(s, i)
            if not name:
                raise JSONPathError(f"unrecognized character {c!r} in {expr!r}")
            steps.append(("field", name))
    return steps


def _read_name(s: str, i: int) -> tuple[str, int]:
    out = []
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c in ".[":
            break
        out.append(c)
        i += 1
    return "".join(out), i


_FILTER = re.compile(r"^\?\((.*)\)$", re.S)
_OPS = ("==", "!=", "<=", ">=", "<", ">")


def _parse_bracket(inner: str, expr: str) -> tuple:
    inner = inner.strip()
    if inner == "*":
        return ("wildcard",)
    m = _FILTER.match(inner)
    if m:
        cond = m.group(1).strip()
        for op in _OPS:
            idx = _find_op(cond, op)
            if idx >= 0:
                left, right = cond[:idx].strip(), cond[idx + len(op):].strip()
                rhs = ("path", _parse_path(right)) if right[:1] in "@$" else ("value", _literal(right))
                return ("filter", _parse_path(left), op, rhs)
        return ("filter", _parse_path(cond), None, None)
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
        return ("field", _unquote(inner))
    if ":" in inner:
        parts = inner.split(":")
        try:
            nums = [int(p) if p.strip() else None for p in parts]
        except ValueError:
            raise JSONPathError(f"invalid slice [{inner}] in {expr!r}") from None
        while len(nums) < 3:
            nums.append(None)
        return ("slice", nums[0], nums[1], nums[2])
    if "," in inner:
        keys = [_literal(k) for k in inner.split(",")]
        return ("union", keys)
    try:
        return ("index", int(inner))
    except ValueError:
        return ("field", inner)


def _find_op(cond: str, op: str) -> int:
    quote = None
    for i, ch in enumerate(cond):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif cond.startswith(op, i):
            # `<` must not match the start of `<=`, etc.
            if op in ("<", ">") and cond.startswith(op + "=", i):
                continue
            if op in ("<", ">") and i > 0 and cond[i - 1] in "!=<>":
                continue
            return i
    return -1


def _parse_template(template: str) -> list:
    tokens = _split_actions(template)
    root: list = []
    stack: list[list] = [root]
    for kind, value in tokens:
        if kind == "text":
            stack[-1].append(_Text(value))
        elif value == "end":
            if len(stack) == 1:
                raise JSONPathError("{end} without {range}")
            stack.pop()
        elif value.startswith("range ") or value.startswith("range\t"):
            node = _Range(_parse_path(value[6:]), [])
            stack[-1].append(node)
            stack.append(node.body)
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            stack[-1].append(_Text(_unquote(value)))
        else:
            stack[-1].append(_Expr(_parse_path(value)))
    if len(stack) != 1:
        raise JSONPathError("{range} without {end}")
    return root


# ---------------------------------------------------------------- evaluation
def _children(v: Any) -> list:
    if isinstance(v, dict):
        return [v[k] for k in sorted(v)]
    if isinstance(v, list):
        return list(v)
    return []


def _recurse(v: Any, name: str) -> list:
    out = []
    if isinstance(v, dict):
        if name in v:
            out.append(v[name])
        for k in sorted(v):
            out.extend(_recurse(v[k], name))
    elif isinstance(v, list):
        for e in v:
            out.extend(_recurse(e, name))
    return out


def _compare(a: Any, op: str, b: Any) -> bool:
    if isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(b, str):
        try:
            b = float(b)
        except ValueError:
            return False
    if isinstance(b, (int, float)) and not isinstance(b, bool) and isinstance(a, str):
        try:
            a = float(a)
        except ValueError:
            return False
    try:
        return {"==": a == b, "!=": a != b}[op] if op in ("==", "!=") else {
            "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    except TypeError:
        return False


def _step(values: list, step: tuple, root: Any) -> list:
    kind = step[0]
    out: list = []
    for v in values:
        if kind == "field":
            if isinstance(v, dict) and step[1] in v:
                out.append(v[step[1]])
        elif kind == "wildcard":
            out.extend(_children(v))
        elif kind == "recurse":
            out.extend(_recurse(v, step[1]) if step[1] else _children(v))
        elif kind == "index":
            if isinstance(v, list) and -len(v) <= step[1] < len(v):
                out.append(v[step[1]])
        elif kind == "slice":
            if isinstance(v, list):
                out.extend(v[slice(step[1], step[2], step[3])])
        elif kind == "union":
            for key in step[1]:
                if isinstance(v, list) and isinstance(key, int) and -len(v) <= key < len(v):
                    out.append(v[key])
                elif isinstance(v, dict) and str(key) in v:
                    out.append(v[str(key)])
        elif kind == "filter":
            _, left, op, rhs = step
            for e in _children(v) if isinstance(v, (list, dict)) else []:
                lv = evaluate_steps(left, e, root)
                if op is None:
                    if lv and lv[0] not in (None, False, ""):
                        out.append(e)
                    continue
                if not lv:
                    continue
                if rhs[0] == "path":
                    rv = evaluate_steps(rhs[1], e, root)
                    if not rv:
                        continue
                    right = rv[0]
                else:
                    right = rhs[1]
                if _compare(lv[0], op, right):
                    out.append(e)
    return out


def evaluate_steps(steps: list, current: Any, root: Any) -> list:
    values = [current]
    for step in steps:
        values = _step(values, step, root)
    return values


def evaluate(expr: str, data: Any) -> list:
    """All values a single path expression selects in ``data``."""
    return evaluate_steps(_parse_path(expr.strip().strip("{}")), data, data)


def format_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return str(v)


class Template:
    """A parsed template; ``render(data)`` returns the text."""

    def __init__(self, template: str):
        self.source = template
        self.nodes = _parse_template(template)

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._render(self.nodes, data, data, out)
        return "".join(out)

    def _render(self, nodes: list, current: Any, root: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Expr):
                values = evaluate_steps(node.steps, current, root)
                out.append(" ".join(format_value(v) for v in values))
            else:
                values = evaluate_steps(node.steps, current, root)
                if len(values) == 1 and isinstance(values[0], list):
                    values = values[0]
                for v in values:
                    self._render(node.body, v, root, out)


def render(template: str, data: Any) -> str:
    return Template(template).render(data)
