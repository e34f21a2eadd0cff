"""Kubernetes label and field selectors: parsing, validation and matching.

Selectors reach pocketkube from three directions: as query strings on list
and watch requests (`?labelSelector=app in (web,api)&fieldSelector=
spec.nodeName=`), as metav1.LabelSelector objects inside specs (a
ReplicaSet's `spec.selector`), and as plain maps (a Service's
`spec.selector`). The API server filters lists and watches with them,
controllers use them to find the pods they own, and the CLI passes them
through. All of these must agree with Kubernetes exactly - kubectl users type
the same strings they would against a real cluster, and a subtle difference
(say, whether `env!=prod` matches a pod without an `env` label; it does)
changes which pods a controller adopts. So the grammar, the validation and
the matching rules live here once, following apimachinery's `labels` and
`fields` packages, and every caller shares them.

The module is pure and depends only on the standard library.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

__all__ = [
    "SelectorError",
    "Requirement",
    "LabelSelector",
    "label_selector_from_dict",
    "selector_from_set",
    "FieldSelector",
    "validate_label_key",
    "validate_label_value",
]


class SelectorError(ValueError):
    """A selector string or object that Kubernetes would reject."""


# --------------------------------------------------------------------------
# Label keys and values
# --------------------------------------------------------------------------

_NAME_MAX = 63
_PREFIX_MAX = 253
_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_NAME_CHARSET_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)


def validate_label_key(key: str) -> None:
    """Raise SelectorError unless `key` is a qualified name (`[prefix/]name`)."""
    if not isinstance(key, str):
        raise SelectorError(f"invalid label key {key!r}: must be a string")
    prefix, slash, name = key.rpartition("/")
    if slash:
        if "/" in prefix:
            raise SelectorError(
                f"invalid label key {key!r}: a qualified name must consist of "
                "an optional DNS subdomain prefix and a name, separated by one '/'"
            )
        if not prefix:
            raise SelectorError(f"invalid label key {key!r}: prefix part must be non-empty")
        if len(prefix) > _PREFIX_MAX:
            raise SelectorError(
                f"invalid label key {key!r}: prefix part must be no more than {_PREFIX_MAX} characters"
            )
        if not _DNS1123_SUBDOMAIN_RE.match(prefix):
            raise SelectorError(
                f"invalid label key {key!r}: prefix part must be a lowercase RFC 1123 subdomain"
            )
    if not name:
        raise SelectorError(f"invalid label key {key!r}: name part must be non-empty")
    if len(name) > _NAME_MAX:
        raise SelectorError(
            f"invalid label key {key!r}: name part must be no more than {_NAME_MAX} characters"
        )
    if not _NAME_RE.match(name):
        raise SelectorError(f"invalid label key {key!r}: name part {_NAME_CHARSET_MSG}")


def validate_label_value(value: str) -> None:
    """Raise SelectorError unless `value` is a valid (possibly empty) label value."""
    if not isinstance(value, str):
        raise SelectorError(f"invalid label value {value!r}: must be a string")
    if len(value) > _NAME_MAX:
        raise SelectorError(
            f"invalid label value {value!r}: must be no more than {_NAME_MAX} characters"
        )
    if value and not _NAME_RE.match(value):
        raise SelectorError(f"invalid label value {value!r}: a valid label value {_NAME_CHARSET_MSG}")


# --------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------

# Operators as stored on a Requirement (`==` is folded into `=`).
EQUALS, NOT_EQUALS, IN, NOT_IN = "=", "!=", "in", "notin"
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"

_INT_RE = re.compile(r"[-+]?[0-9]+\Z")


@dataclass(frozen=True)
class Requirement:
    """One ANDed term of a label selector: `key op values`."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == EXISTS:
            return present
        if self.op == DOES_NOT_EXIST:
            return not present
        if self.op in (EQUALS, IN):
            return present and labels[self.key] in self.values
        if self.op in (NOT_EQUALS, NOT_IN):
            # As in Kubernetes: a missing key satisfies != and notin.
            return not present or labels[self.key] not in self.values
        # gt / lt: the label must exist and parse as an integer.
        if not present or not _INT_RE.match(labels[self.key]):
            return False
        have, want = int(labels[self.key]), int(self.values[0])
        return have > want if self.op == GREATER_THAN else have < want

    def __str__(self) -> str:
        if self.op == EXISTS:
            return self.key
        if self.op == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.op in (IN, NOT_IN):
            return f"{self.key} {self.op} ({','.join(sorted(self.values))})"
        symbol = {EQUALS: "=", NOT_EQUALS: "!=", GREATER_THAN: ">", LESS_THAN: "<"}[self.op]
        return f"{self.key}{symbol}{self.values[0]}"


def _requirement(key: str, op: str, values: Iterable[str] = ()) -> Requirement:
    """Build a validated Requirement, as apimachinery's NewRequirement does."""
    validate_label_key(key)
    vals = tuple(values)
    if op in (IN, NOT_IN):
        if not vals:
            raise SelectorError(
                f"unable to parse requirement: for 'in', 'notin' operators, values set can't be empty (key {key!r})"
            )
        vals = tuple(sorted(set(vals)))
    elif op in (EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            raise SelectorError(f"unable to parse requirement: exact-match compatibility requires one single value (key {key!r})")
    elif op in (EXISTS, DOES_NOT_EXIST):
        if vals:
            raise SelectorError(
                f"unable to parse requirement: values set must be empty for exists and does not exist (key {key!r})"
            )
    elif op in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1 or not _INT_RE.match(vals[0]):
            raise SelectorError(
                f"unable to parse requirement: for 'gt', 'lt' operators, exactly one integer value is required (key {key!r})"
            )
        return Requirement(key, op, vals)
    else:
        raise SelectorError(f"unable to parse requirement: operator {op!r} is not recognized")
    for v in vals:
        try:
            validate_label_value(v)
        except SelectorError as exc:
            raise SelectorError(f"unable to parse requirement: {exc}") from None
    return Requirement(key, op, vals)


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements; optionally the selector that matches nothing.

    Requirements are kept sorted by key (as apimachinery does), so two
    selectors that differ only in term order compare and print the same.
    """

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    @classmethod
    def everything(cls) -> "LabelSelector":
        return cls()

    @classmethod
    def nothing(cls) -> "LabelSelector":
        """The selector a missing metav1.LabelSelector stands for.

        It has no string form: `str()` gives "" (as in Kubernetes), so it must
        not be round-tripped through a query string.
        """
        return cls(matches_nothing=True)

    @classmethod
    def parse(cls, s: str | None) -> "LabelSelector":
        """Parse kube label-selector syntax; "" and None select everything."""
        if s is None:
            return cls()
        if not isinstance(s, str):
            raise SelectorError(f"unable to parse requirement: selector must be a string, not {type(s).__name__}")
        return cls._of(_LabelParser(s).parse())

    @classmethod
    def _of(cls, requirements: Iterable[Requirement]) -> "LabelSelector":
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))

    @property
    def empty(self) -> bool:
        """True for the selector that matches every object."""
        return not self.requirements and not self.matches_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.matches_nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# Lexer tokens. Identifiers are runs of anything that is neither whitespace
# nor one of the special characters below; `in`/`notin` are identifiers that
# the parser reads as keywords only where an operator is expected.
_IDENT, _EOS = "identifier", "end of string"
_TOKEN_RE = re.compile(r"\s*(?:(==|!=|[=!(),<>])|([^\s=!(),<>]+))")


class _LabelParser:
    """Recursive-descent parser for label selector strings."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._lex(text)
        self.pos = 0

    @staticmethod
    def _lex(text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        i = 0
        while True:
            m = _TOKEN_RE.match(text, i)
            if m is None:
                break  # only whitespace remains
            symbol, ident = m.groups()
            tokens.append((symbol, symbol) if symbol else (_IDENT, ident))
            i = m.end()
        tokens.append((_EOS, ""))
        return tokens

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.pos]
        if tok[0] != _EOS:
            self.pos += 1
        return tok

    def fail(self, found: str, expected: str) -> SelectorError:
        shown = found or _EOS
        return SelectorError(
            f"unable to parse requirement: found '{shown}', expected: {expected} (in selector {self.text!r})"
        )

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        if self.peek()[0] == _EOS:
            return requirements
        while True:
            requirements.append(self.requirement())
            kind, lit = self.take()
            if kind == _EOS:
                return requirements
            if kind != ",":
                raise self.fail(lit, "',' or 'end of string'")

    def requirement(self) -> Requirement:
        kind, lit = self.take()
        negated = kind == "!"
        if negated:
            kind, lit = self.take()
        if kind != _IDENT:
            raise self.fail(lit, "identifier")
        key = lit
        try:
            validate_label_key(key)
        except SelectorError as exc:
            raise SelectorError(f"unable to parse requirement: {exc}") from None
        nxt = self.peek()[0]
        if negated:
            if nxt not in (",", _EOS):
                raise self.fail(self.peek()[1], "',' or 'end of string' after '!key'")
            return _requirement(key, DOES_NOT_EXIST)
        if nxt in (",", _EOS):
            return _requirement(key, EXISTS)
        kind, lit = self.take()
        if kind in ("=", "=="):
            return _requirement(key, EQUALS, [self.exact_value()])
        if kind == "!=":
            return _requirement(key, NOT_EQUALS, [self.exact_value()])
        if kind in ("<", ">"):
            value_kind, value = self.take()
            if value_kind != _IDENT:
                raise self.fail(value, "an integer value")
            return _requirement(key, GREATER_THAN if kind == ">" else LESS_THAN, [value])
        if kind == _IDENT and lit in (IN, NOT_IN):
            return _requirement(key, lit, self.value_set())
        raise self.fail(lit, "'=', '!=', '==', 'in', 'notin', '>' or '<'")

    def exact_value(self) -> str:
        kind, lit = self.peek()
        if kind in (",", _EOS):
            return ""  # `a=` selects the empty value
        if kind != _IDENT:
            raise self.fail(lit, "a value")
        self.take()
        return lit

    def value_set(self) -> list[str]:
        kind, lit = self.take()
        if kind != "(":
            raise self.fail(lit, "'('")
        values: list[str] = []
        expect_value = True
        while True:
            kind, lit = self.take()
            if kind == ")":
                if expect_value:
                    values.append("")  # `()` or a trailing comma: the empty value
                return values
            if kind == _IDENT and expect_value:
                values.append(lit)
                expect_value = False
            elif kind == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            else:
                raise self.fail(lit, "',', ')' or identifier")


def label_selector_from_dict(d: Mapping | None) -> LabelSelector:
    """Convert a metav1.LabelSelector (`matchLabels` + `matchExpressions`).

    A missing selector (`None`) matches nothing and an empty one (`{}`)
    matches everything, as apimachinery's LabelSelectorAsSelector decides;
    this keeps a workload with no selector from adopting every pod.
    """
    if d is None:
        return LabelSelector.nothing()
    if not isinstance(d, Mapping):
        raise SelectorError(f"label selector must be an object, not {type(d).__name__}")
    requirements: list[Requirement] = []
    match_labels = d.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be a map of strings")
    for key, value in match_labels.items():
        requirements.append(_requirement(key, EQUALS, [value]))
    operators = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
    for expr in d.get("matchExpressions") or []:
        if not isinstance(expr, Mapping):
            raise SelectorError("each matchExpressions entry must be an object")
        op = expr.get("operator")
        if op not in operators:
            raise SelectorError(f"{op!r} is not a valid label selector operator")
        values = expr.get("values") or []
        if not isinstance(values, list):
            raise SelectorError(f"matchExpressions values for key {expr.get('key')!r} must be a list")
        requirements.append(_requirement(expr.get("key"), operators[op], values))
    return LabelSelector._of(requirements)


def selector_from_set(d: Mapping[str, str] | None) -> LabelSelector:
    """Equality on every key of a plain map (a Service's `spec.selector`).

    An empty or missing map matches everything; callers decide separately
    what "no selector" means for them (a Service without one gets no
    Endpoints controller management). Like apimachinery's SelectorFromSet,
    the map is trusted: it was validated when its object was stored.
    """
    return LabelSelector._of(Requirement(k, EQUALS, (v,)) for k, v in (d or {}).items())


# --------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------

_FIELD_OPS = ("!=", "==", "=")  # tried in this order at each position
_ESCAPABLE = "\\,=!"


def _unescape(s: str, whole: str) -> str:
    out: list[str] = []
    chars = iter(s)
    for c in chars:
        if c == "\\":
            nxt = next(chars, None)
            if nxt is None or nxt not in _ESCAPABLE:
                seq = "\\" + (nxt or "")
                raise SelectorError(f"invalid field selector {whole!r}: invalid escape sequence: {seq}")
            out.append(nxt)
        elif c in ",=":
            raise SelectorError(f"invalid field selector {whole!r}: unescaped character: {c!r}")
        else:
            out.append(c)
    return "".join(out)


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_unescaped(s: str) -> list[str]:
    """Split on commas that are not preceded by a backslash escape."""
    parts, start, i = [], 0, 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == ",":
            parts.append(s[start:i])
            start = i + 1
        i += 1
    parts.append(s[start:])
    return parts


def _split_term(term: str) -> tuple[str, str, str] | None:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in _FIELD_OPS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
        i += 1
    return None


@dataclass(frozen=True)
class FieldSelector:
    """An AND of `field=value` / `field!=value` terms.

    Which fields a resource supports (`metadata.name`, `spec.nodeName`,
    `status.phase`, ...) is the caller's business: it supplies `get_field`.
    Surrounding whitespace of field names and values is ignored (Kubernetes
    keeps it, but no field value starts or ends with a space).
    """

    _terms: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, s: str | None) -> "FieldSelector":
        if not s:
            return cls()
        if not isinstance(s, str):
            raise SelectorError(f"invalid field selector: must be a string, not {type(s).__name__}")
        terms = []
        for part in _split_unescaped(s):
            if not part.strip():
                continue
            split = _split_term(part)
            if split is None:
                raise SelectorError(f"invalid field selector {s!r}: can't understand {part!r}")
            lhs, op, rhs = split
            field = _unescape(lhs.strip(), s)
            if not field:
                raise SelectorError(f"invalid field selector {s!r}: missing field name in {part!r}")
            terms.append((field, "!=" if op == "!=" else "=", _unescape(rhs.strip(), s)))
        return cls(tuple(sorted(terms)))

    @property
    def terms(self) -> list[tuple[str, str, str]]:
        """(field, op, value) triples, op being "=" or "!="."""
        return list(self._terms)

    @property
    def empty(self) -> bool:
        return not self._terms

    def fields(self) -> set[str]:
        return {field for field, _, _ in self._terms}

    def exact_match(self, field: str) -> str | None:
        """The value an `=` term requires of `field`, if any (for indexed lookups)."""
        for f, op, value in self._terms:
            if f == field and op == "=":
                return value
        return None

    def matches(self, get_field: Callable[[str], str | None]) -> bool:
        for field, op, want in self._terms:
            have = get_field(field)
            if have is None:
                have = ""
            if (have == want) != (op == "="):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{_escape(v)}" for f, op, v in self._terms)
