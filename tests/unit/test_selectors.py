"""Label and field selectors: kube syntax, validation, matching semantics, canonical form."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    label_selector_from_dict,
    selector_from_set,
)

# --------------------------------------------------------------------------
# Label selector strings
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("", ""),
        (None, ""),
        ("   ", ""),
        ("a=b", "a=b"),
        ("a==b", "a=b"),
        ("a!=b", "a!=b"),
        ("a=", "a="),
        ("a!=", "a!="),
        ("a in (y,x)", "a in (x,y)"),
        ("a in(x , y)", "a in (x,y)"),
        ("a notin (x)", "a notin (x)"),
        ("a in ()", "a in ()"),  # as in Kubernetes: the set holding the empty value
        ("a in (x,)", "a in (,x)"),
        ("a", "a"),
        ("!a", "!a"),
        ("  ! a  ", "!a"),
        ("b=1, a", "a,b=1"),  # sorted by key
        ("x>3", "x>3"),
        ("x < -2", "x<-2"),
        ("example.com/app = web", "example.com/app=web"),
        ("in=notin", "in=notin"),  # keywords are fine as keys and values
        ("a.b_c-D=E.f_g-1", "a.b_c-D=E.f_g-1"),
        ("app=web,tier notin (db,cache),!canary,env", "app=web,!canary,env,tier notin (cache,db)"),
    ],
)
def test_parse_and_canonical_string(text, canonical):
    sel = LabelSelector.parse(text)
    assert str(sel) == canonical
    assert LabelSelector.parse(str(sel)) == sel  # the canonical form round-trips


@pytest.mark.parametrize(
    "text, labels, expected",
    [
        ("", None, True),
        ("", {"a": "b"}, True),
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a=b", None, False),
        ("a==b", {"a": "b"}, True),
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {"a": "b"}, False),
        ("a!=b", {}, True),  # a missing key satisfies !=
        ("a=", {"a": ""}, True),
        ("a=", {}, False),
        ("a in (x,y)", {"a": "y"}, True),
        ("a in (x,y)", {"a": "z"}, False),
        ("a in (x,y)", {}, False),
        ("a notin (x,y)", {"a": "z"}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("a notin (x,y)", {}, True),  # a missing key satisfies notin
        ("a", {"a": ""}, True),
        ("a", {"b": "x"}, False),
        ("!a", {"b": "x"}, True),
        ("!a", {"a": "x"}, False),
        ("!a", None, True),
        ("x>3", {"x": "4"}, True),
        ("x>3", {"x": "3"}, False),
        ("x>3", {"x": "four"}, False),
        ("x>3", {}, False),
        ("x<3", {"x": "-1"}, True),
        ("a=b,c", {"a": "b", "c": "1"}, True),
        ("a=b,c", {"a": "b"}, False),
        ("app=web,tier notin (db),!canary", {"app": "web", "tier": "fe"}, True),
        ("app=web,tier notin (db),!canary", {"app": "web", "canary": "1"}, False),
    ],
)
def test_label_matching(text, labels, expected):
    assert LabelSelector.parse(text).matches(labels) is expected


@pytest.mark.parametrize(
    "text",
    [
        "a b",  # two identifiers
        "a=b c",
        "a=b,",  # trailing comma: a requirement is expected
        ",",
        "a,,b",
        "!",
        "!a=b",
        "!a b",
        "=b",
        "a in x",
        "a in (x",
        "a in (x y)",
        "a notin",
        "a=(",
        "a=b=c",
        "a>b",  # gt needs an integer
        "a>",
        "-a=b",  # bad key name
        "a-=b",
        "a/b/c=d",
        "/a=b",  # empty prefix
        "Example.com/a=b",  # prefix must be lowercase
        "a=" + "v" * 64,  # value too long
        "a=-v",  # bad value
        "k" * 64,  # key name too long
        "a in (x,-y)",
    ],
)
def test_label_parse_errors(text):
    with pytest.raises(SelectorError, match="unable to parse requirement"):
        LabelSelector.parse(text)


def test_selector_error_is_value_error_with_readable_message():
    with pytest.raises(ValueError) as info:
        LabelSelector.parse("a b")
    assert "found 'b'" in str(info.value)


def test_long_valid_key_and_value():
    key = "a" * 253 + "/" + "n" * 63
    sel = LabelSelector.parse(f"{key}={'v' * 63}")
    assert sel.matches({key: "v" * 63})


def test_empty_property():
    assert LabelSelector.parse("").empty
    assert LabelSelector.parse(None).empty
    assert not LabelSelector.parse("a").empty
    assert not LabelSelector.nothing().empty


# --------------------------------------------------------------------------
# metav1.LabelSelector and Service selector maps
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector, labels, expected",
    [
        ({}, {"a": "b"}, True),
        ({}, None, True),
        ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        ({"matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}]}, {"t": "b"}, True),
        ({"matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}]}, {"t": "c"}, False),
        ({"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["a"]}]}, {"t": "a"}, False),
        ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"t": ""}, True),
        ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "t", "operator": "DoesNotExist", "values": []}]}, {"t": "1"}, False),
        (
            {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "t", "operator": "Exists"}]},
            {"app": "web"},
            False,
        ),
    ],
)
def test_label_selector_from_dict(selector, labels, expected):
    assert label_selector_from_dict(selector).matches(labels) is expected


def test_label_selector_from_dict_none_matches_nothing_and_empty_everything():
    nothing = label_selector_from_dict(None)
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert not nothing.empty
    assert label_selector_from_dict({}).empty
    assert label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}).empty


def test_label_selector_from_dict_string_form():
    sel = label_selector_from_dict(
        {"matchLabels": {"b": "1"}, "matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["y", "x"]}]}
    )
    assert str(sel) == "a notin (x,y),b=1"


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": [{"key": "t", "operator": "Equals", "values": ["a"]}]},
        {"matchExpressions": [{"key": "t", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "t", "operator": "NotIn"}]},
        {"matchExpressions": [{"key": "t", "operator": "Exists", "values": ["a"]}]},
        {"matchExpressions": [{"key": "-t", "operator": "Exists"}]},
        {"matchExpressions": ["t"]},
        {"matchLabels": {"a": "-bad"}},
        {"matchLabels": {"bad key": "v"}},
        {"matchLabels": ["a"]},
        "app=web",
    ],
)
def test_label_selector_from_dict_errors(selector):
    with pytest.raises(SelectorError):
        label_selector_from_dict(selector)


def test_selector_from_set():
    sel = selector_from_set({"app": "web", "tier": "fe"})
    assert sel.matches({"app": "web", "tier": "fe", "x": "1"})
    assert not sel.matches({"app": "web"})
    assert str(sel) == "app=web,tier=fe"
    assert selector_from_set({}).empty and selector_from_set(None).empty
    assert selector_from_set(None).matches({"a": "b"})


# --------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------


def _getter(obj):
    return lambda field: obj.get(field)


@pytest.mark.parametrize(
    "text, terms",
    [
        ("", []),
        (None, []),
        ("spec.nodeName=node1", [("spec.nodeName", "=", "node1")]),
        ("spec.nodeName==node1", [("spec.nodeName", "=", "node1")]),
        ("spec.nodeName=", [("spec.nodeName", "=", "")]),
        ("status.phase!=Running", [("status.phase", "!=", "Running")]),
        ("status.phase!=", [("status.phase", "!=", "")]),
        (
            "metadata.name=a,metadata.namespace!=kube-system",
            [("metadata.name", "=", "a"), ("metadata.namespace", "!=", "kube-system")],
        ),
        ("a=b,,c=d,", [("a", "=", "b"), ("c", "=", "d")]),  # empty terms are skipped
        (r"a=x\,y", [("a", "=", "x,y")]),
        (r"a=x\=y", [("a", "=", "x=y")]),
        (r"a=x\\y", [("a", "=", "x\\y")]),
        (r"a=\!x", [("a", "=", "!x")]),
        (r"a!=\=", [("a", "!=", "=")]),
        ("a=b!c", [("a", "=", "b!c")]),
        (" a = b ", [("a", "=", "b")]),
    ],
)
def test_field_parse(text, terms):
    sel = FieldSelector.parse(text)
    assert sel.terms == terms
    assert FieldSelector.parse(str(sel)) == sel


@pytest.mark.parametrize(
    "text",
    [
        "spec.nodeName",  # no operator
        "a=b,c",
        "=b",  # no field
        r"a=x\y",  # unknown escape
        "a=x\\",  # dangling backslash
        "a=b=c",  # unescaped '=' in a value
    ],
)
def test_field_parse_errors(text):
    with pytest.raises(SelectorError, match="invalid field selector"):
        FieldSelector.parse(text)


@pytest.mark.parametrize(
    "text, obj, expected",
    [
        ("", {}, True),
        ("spec.nodeName=n1", {"spec.nodeName": "n1"}, True),
        ("spec.nodeName=n1", {"spec.nodeName": "n2"}, False),
        ("spec.nodeName=", {}, True),  # None counts as ""
        ("spec.nodeName=", {"spec.nodeName": "n1"}, False),
        ("spec.nodeName!=", {"spec.nodeName": "n1"}, True),
        ("spec.nodeName!=", {"spec.nodeName": None}, False),
        ("status.phase!=Running", {"status.phase": "Pending"}, True),
        ("status.phase!=Running", {"status.phase": "Running"}, False),
        ("a=1,b!=2", {"a": "1", "b": "3"}, True),
        ("a=1,b!=2", {"a": "1", "b": "2"}, False),
        (r"a=x\,y", {"a": "x,y"}, True),
    ],
)
def test_field_matching(text, obj, expected):
    assert FieldSelector.parse(text).matches(_getter(obj)) is expected


def test_field_helpers():
    sel = FieldSelector.parse("spec.nodeName=n1,status.phase!=Failed,metadata.name=x")
    assert sel.fields() == {"spec.nodeName", "status.phase", "metadata.name"}
    assert sel.exact_match("spec.nodeName") == "n1"
    assert sel.exact_match("status.phase") is None  # != is not an exact match
    assert sel.exact_match("metadata.namespace") is None
    assert FieldSelector.parse("spec.nodeName=").exact_match("spec.nodeName") == ""
    assert FieldSelector.parse("").empty and not sel.empty


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

_name = st.from_regex(r"[a-z0-9]([-a-z0-9_.]{0,10}[a-z0-9])?", fullmatch=True)
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}.io/{n}", st.from_regex(r"[a-z]{1,8}", fullmatch=True), _name))
_value = st.one_of(st.just(""), _name)


@st.composite
def _requirement_text(draw):
    key = draw(_key)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!"]))
    if op in ("in", "notin"):
        values = draw(st.lists(_name, min_size=1, max_size=3))
        return f"{key} {op} ({', '.join(values)})"
    if op == "exists":
        return key
    if op == "!":
        return f"!{key}"
    return f"{key}{op}{draw(_value)}"


@given(st.lists(_requirement_text(), max_size=5), st.dictionaries(_key, _value, max_size=5))
def test_canonical_string_round_trips_and_matches_alike(terms, labels):
    sel = LabelSelector.parse(" , ".join(terms))
    again = LabelSelector.parse(str(sel))
    assert again == sel
    assert again.matches(labels) == sel.matches(labels)


@given(st.dictionaries(_key, _value, max_size=6))
def test_a_set_selects_its_own_labels(labels):
    assert selector_from_set(labels).matches(labels)
    assert LabelSelector.parse(str(selector_from_set(labels))).matches(labels)
    assert label_selector_from_dict({"matchLabels": labels}).matches(labels)


@given(st.dictionaries(st.from_regex(r"[a-z][a-zA-Z.]{0,12}", fullmatch=True), st.text(max_size=8), max_size=4))
def test_field_selector_escaping_round_trips(values):
    text = ",".join(
        f"{f}={v.replace(chr(92), chr(92) * 2).replace(',', chr(92) + ',').replace('=', chr(92) + '=')}"
        for f, v in values.items()
        if v == v.strip()
    )
    sel = FieldSelector.parse(text)
    assert sel.matches(lambda f: values.get(f))
    assert FieldSelector.parse(str(sel)) == sel
