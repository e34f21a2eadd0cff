"""Kubernetes resource quantities: parsing, canonical formatting, rounding and rejection of garbage."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.quantity import (
    BINARY_SI, DECIMAL_EXPONENT, DECIMAL_SI, FORMAT_ERROR, MAX_QUANTITY,
    canonical_quantity, format_quantity, int_value, milli_value, parse_quantity, quantity_format,
)


@pytest.mark.parametrize("text, value", [
    ("0", 0),
    ("1", 1),
    ("250m", Fraction(1, 4)),
    ("0.5", Fraction(1, 2)),
    (".5", Fraction(1, 2)),
    ("1.", 1),
    ("+2", 2),
    ("-1", -1),
    ("100n", Fraction(1, 10**7)),
    ("5u", Fraction(5, 10**6)),
    ("1k", 1000),
    ("2M", 2 * 10**6),
    ("1G", 10**9),
    ("1T", 10**12),
    ("1P", 10**15),
    ("1E", 10**18),
    ("1Ki", 1024),
    ("128Mi", 128 * 2**20),
    ("1Gi", 2**30),
    ("1.5Gi", 3 * 2**29),
    ("1Ti", 2**40),
    ("1Pi", 2**50),
    ("1e3", 1000),
    ("1E3", 1000),
    ("1e-3", Fraction(1, 1000)),
    ("12e-1", Fraction(6, 5)),
    ("1.5e+2", 150),
    (" 64Mi ", 64 * 2**20),  # the JSON decoder trims whitespace too
    (2, 2),  # YAML `cpu: 2` arrives as a JSON number
    (0.25, Fraction(1, 4)),
])
def test_parse(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text, value", [
    ("0.0000000001", Fraction(1, 10**9)),  # below a nano rounds up to 1n
    ("1.0000000001", 1 + Fraction(1, 10**9)),
    ("-0.0000000001", -Fraction(1, 10**9)),  # away from zero
    ("1e-30", Fraction(1, 10**9)),
    ("1e-99999999", Fraction(1, 10**9)),
    ("9Ei", MAX_QUANTITY),  # capped at int64 max
    ("1e30", MAX_QUANTITY),
    ("-1e30", -MAX_QUANTITY),
    ("0e99999", 0),
])
def test_parse_rounds_up_to_nanos_and_caps(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", [
    "", " ", "abc", "1x", "x1", ".", "-", "+", "1.5.5", "1..5", "1Kii", "1KI", "1ki", "1e", "1e+", "Mi", "m",
    "1 Mi", "1M i", "1k3", "1mi", "1e1.5", "--1", "1e99999999999999999999", "0x10", "1_000", "١",
])
def test_parse_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_quantity(text)


@pytest.mark.parametrize("value", [None, True, False, [], {}, float("nan"), float("inf")])
def test_parse_rejects_non_quantities(value):
    with pytest.raises(ValueError):
        parse_quantity(value)


def test_format_error_is_kubernetes_text():
    with pytest.raises(ValueError) as e:
        parse_quantity("abc")
    assert str(e.value) == FORMAT_ERROR
    assert FORMAT_ERROR == "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


@pytest.mark.parametrize("text, fmt", [
    ("1", DECIMAL_SI), ("250m", DECIMAL_SI), ("1E", DECIMAL_SI), ("1Mi", BINARY_SI), ("1.5Gi", BINARY_SI),
    ("1e3", DECIMAL_EXPONENT), ("1E3", DECIMAL_EXPONENT), ("1e-3", DECIMAL_EXPONENT),
])
def test_quantity_format(text, fmt):
    assert quantity_format(text) == fmt


@pytest.mark.parametrize("text, canonical", [
    ("0", "0"),
    ("0m", "0"),
    ("0Mi", "0"),
    ("1", "1"),
    ("0.5", "500m"),
    ("1000m", "1"),
    ("1500m", "1500m"),
    ("1.5", "1500m"),
    ("2000", "2k"),
    ("1500", "1500"),
    ("1200000", "1200k"),
    ("0.1", "100m"),
    ("0.001", "1m"),
    ("0.0001", "100u"),
    ("1.0000000001", "1000000001n"),
    ("-1.5", "-1500m"),
    ("128Mi", "128Mi"),
    ("1024Mi", "1Gi"),
    ("1536Mi", "1536Mi"),
    ("1.5Gi", "1536Mi"),
    ("1024Ki", "1Mi"),
    ("0.5Ki", "512"),  # below 1024 a binary value prints as decimal
    ("1.5Ki", "1536"),  # whole but not a multiple of 1024: no suffix
    ("-2Gi", "-2Gi"),
    ("1e3", "1e3"),
    ("1.5e3", "1500"),
    ("12e-1", "1200e-3"),
    ("1E", "1E"),
    ("9Ei", str(MAX_QUANTITY)),
])
def test_canonical_form_matches_kubernetes(text, canonical):
    assert canonical_quantity(text) == canonical


@pytest.mark.parametrize("value, fmt, text", [
    (Fraction(1, 2), DECIMAL_SI, "500m"),
    (Fraction(1, 2), BINARY_SI, "500m"),
    (Fraction(1, 2), DECIMAL_EXPONENT, "500e-3"),
    (2**30, BINARY_SI, "1Gi"),
    (2**30, DECIMAL_SI, "1073741824"),
    (10**9, DECIMAL_SI, "1G"),
    (10**9, DECIMAL_EXPONENT, "1e9"),
    (0, BINARY_SI, "0"),
    (Fraction(1, 3), DECIMAL_SI, "333333334n"),  # rounded up to whole nanos
])
def test_format_quantity(value, fmt, text):
    assert format_quantity(value, fmt) == text


def test_format_quantity_parses_strings():
    assert format_quantity("2048Ki") == "2097152"
    assert format_quantity("2048Ki", BINARY_SI) == "2Mi"


@pytest.mark.parametrize("text, milli, whole", [
    ("250m", 250, 1), ("1", 1000, 1), ("1.5", 1500, 2), ("1n", 1, 1), ("0", 0, 0),
    ("-1n", -1, -1), ("128Mi", 128 * 2**20 * 1000, 128 * 2**20), ("1e3", 10**6, 1000),
])
def test_milli_and_int_values_round_away_from_zero(text, milli, whole):
    assert milli_value(text) == milli
    assert int_value(text) == whole
    assert milli_value(parse_quantity(text)) == milli


quantities = st.builds(
    lambda sign, whole, frac, suffix: f"{sign}{whole}{'.' + frac if frac else ''}{suffix}",
    st.sampled_from(["", "+", "-"]),
    st.integers(0, 10**12).map(str),
    st.one_of(st.just(""), st.integers(0, 10**9).map(str)),
    st.sampled_from(["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
                     "e0", "e3", "e-3", "E6", "e+2", "e-12"]),
)


@given(quantities)
def test_canonical_form_round_trips(text):
    q = parse_quantity(text)
    canonical = canonical_quantity(text)
    assert parse_quantity(canonical) == q
    assert canonical_quantity(canonical) == canonical  # canonical is a fixed point
    assert q.denominator in (1, 10**9) or 10**9 % q.denominator == 0  # whole nanos


@given(st.text(max_size=12))
def test_arbitrary_text_parses_or_raises_value_error(text):
    try:
        q = parse_quantity(text)
    except ValueError:
        return
    assert abs(q) <= MAX_QUANTITY
