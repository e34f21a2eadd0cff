"""Kubernetes resource quantities ("250m", "128Mi", "1e3") as exact fractions.

Requests and limits, node capacity and emptyDir size limits are all
``resource.Quantity`` strings on the wire. Validation has to reject what the
real API server rejects, the scheduler has to add CPU and memory up without
float drift, and anything we echo back (an error message, a describe line)
should print the canonical form Kubernetes prints ("0.5" -> "500m",
"1024Mi" -> "1Gi"). So quantities are parsed into :class:`fractions.Fraction`
and formatted back by Kubernetes' own canonicalisation rules:

* a number (sign, digits, optional fraction) followed by a decimal SI suffix
  (``n u m "" k M G T P E``), a binary suffix (``Ki Mi Gi Ti Pi Ei``) or a
  decimal exponent (``e3``, ``E-2``);
* values are rounded *up* (away from zero) to the nearest nano unit — "if you
  ask for some resource you get some" — and capped at 2^63-1 like Go's int64;
* the canonical string uses the suffix family the input was written in: a
  binary input stays binary when it is a whole number of at least 1024, else
  it falls back to decimal SI; decimal forms use the largest power-of-1000
  suffix that keeps the mantissa an integer.

Where Kubernetes accepts odd corner cases ("-" alone parses as zero) we are
stricter and require at least one digit.
"""
from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

# Message Kubernetes returns for a malformed quantity (resource.ErrFormatWrong).
FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

MAX_QUANTITY = (1 << 63) - 1  # Go's int64 ceiling, Kubernetes' maxAllowed
NANO = Fraction(1, 10**9)

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXP = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {0: "", 1: "Ki", 2: "Mi", 3: "Gi", 4: "Ti", 5: "Pi", 6: "Ei"}

# sign, integer digits, optional fraction digits, then the suffix. "1." and
# ".5" are accepted as Kubernetes does; the number needs at least one digit.
_QUANTITY_RE = re.compile(r"([+-]?)(?=\.?[0-9])([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[-+]?[0-9]*)")


def _split(s: object) -> tuple[int, str, str, int, int, str]:
    """Return (sign, integer digits, fraction digits, base, exponent, format)."""
    if isinstance(s, bool) or not isinstance(s, (str, int, float)):
        raise ValueError(FORMAT_ERROR)
    if isinstance(s, float):
        if not math.isfinite(s):
            raise ValueError(FORMAT_ERROR)
        s = repr(s)
    s = str(s).strip()  # the JSON decoder trims surrounding whitespace too
    m = _QUANTITY_RE.fullmatch(s)
    if not m:
        raise ValueError(FORMAT_ERROR)
    sign, whole, frac, suffix = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    if suffix in _DECIMAL_SUFFIXES:
        base, exp, fmt = 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    elif suffix in _BINARY_SUFFIXES:
        base, exp, fmt = 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?[0-9]+", suffix[1:]):
        base, exp, fmt = 10, int(suffix[1:]), DECIMAL_EXPONENT
        if abs(exp) > MAX_QUANTITY:  # Go parses the exponent as an int64
            raise ValueError("unable to parse quantity's suffix")
    else:
        raise ValueError("unable to parse quantity's suffix")
    return (-1 if sign == "-" else 1), whole, frac, base, exp, fmt


def _clamp(magnitude: Fraction) -> Fraction:
    """Round a non-negative value up to whole nanos and cap it at 2^63-1."""
    if magnitude == 0:
        return Fraction(0)
    nanos = math.ceil(magnitude / NANO)
    return min(Fraction(nanos, 10**9), Fraction(MAX_QUANTITY))


def parse_quantity(s: str | int | float) -> Fraction:
    """Parse a Kubernetes quantity; raise ValueError on anything Kubernetes would reject.

    JSON numbers are accepted too (``cpu: 0.5`` in YAML arrives as a float).
    Results are cached: a cluster uses a handful of distinct quantities
    ("100m", "128Mi", ...) millions of times, and Fractions are immutable.
    """
    if type(s) in (str, int, float):  # hashable, and True never shares 1's cache slot
        return _parse_cached(s)
    return _parse_quantity(s)


def _parse_quantity(s: str | int | float) -> Fraction:
    sign, whole, frac, base, exp, _ = _split(s)
    mantissa = int((whole + frac) or "0")
    if mantissa == 0:
        return Fraction(0)
    if base == 2:
        magnitude = Fraction(mantissa, 10 ** len(frac)) * (1 << exp)
    else:
        shift = exp - len(frac)  # value = mantissa * 10**shift
        if shift >= 19:
            magnitude = Fraction(MAX_QUANTITY + 1)  # certainly above the cap
        elif len(str(mantissa)) + shift <= -9:
            magnitude = NANO  # below one nano: rounds up to exactly 1n
        elif shift >= 0:
            magnitude = Fraction(mantissa * 10**shift)
        else:
            magnitude = Fraction(mantissa, 10**-shift)
    return sign * _clamp(magnitude)


def quantity_format(s: str | int | float) -> str:
    """The suffix family a quantity string is written in: DecimalSI, BinarySI or DecimalExponent."""
    return _split(s)[5]


def _strip_factor(n: int, factor: int) -> tuple[int, int]:
    times = 0
    while n and n % factor == 0:
        n //= factor
        times += 1
    return n, times


def format_quantity(value: Fraction | int | str, fmt: str = DECIMAL_SI) -> str:
    """Canonical Kubernetes string for a value (``Quantity.String()``).

    A string value is parsed first; to keep the suffix family it was written
    in, use :func:`canonical_quantity` instead.
    """
    if isinstance(value, str):
        value = parse_quantity(value)
    value = Fraction(value)
    sign = "-" if value < 0 else ""
    magnitude = _clamp(abs(value))
    if magnitude == 0:
        return "0"
    if fmt == BINARY_SI:
        if magnitude >= 1024 and magnitude.denominator == 1:
            amount, power = _strip_factor(magnitude.numerator, 1024)
            return f"{sign}{amount}{_BINARY_BY_POWER[power]}"
        fmt = DECIMAL_SI  # small or fractional binary values would lose precision
    # mantissa * 10**exp with exp a multiple of 3 and the mantissa an integer
    nanos = magnitude.numerator * (10**9 // magnitude.denominator)
    amount, times = _strip_factor(nanos, 10)
    exp = times - 9
    rem = exp % 3
    amount, exp = amount * 10**rem, exp - rem
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{amount}" + (f"e{exp}" if exp else "")
    return f"{sign}{amount}{_DECIMAL_BY_EXP[exp]}"


def canonical_quantity(s: str | int | float) -> str:
    """Parse and re-print a quantity the way the API server echoes it ("0.5" -> "500m")."""
    return format_quantity(parse_quantity(s), quantity_format(s))


def _away_from_zero(x: Fraction) -> int:
    return math.ceil(x) if x >= 0 else math.floor(x)


def int_value(s: str | int | float | Fraction) -> int:
    """Quantity.Value(): whole units, rounded away from zero ("100m" -> 1)."""
    q = s if isinstance(s, Fraction) else parse_quantity(s)
    return _away_from_zero(q)


def milli_value(s: str | int | float | Fraction) -> int:
    """Quantity.MilliValue(): thousandths, rounded away from zero (CPU in millicores)."""
    q = s if isinstance(s, Fraction) else parse_quantity(s)
    return _away_from_zero(q * 1000)


__all__ = [
    "BINARY_SI", "DECIMAL_EXPONENT", "DECIMAL_SI", "FORMAT_ERROR", "MAX_QUANTITY",
    "canonical_quantity", "format_quantity", "int_value", "milli_value", "parse_quantity", "quantity_format",
]


_parse_cached = functools.lru_cache(maxsize=4096)(_parse_quantity)
