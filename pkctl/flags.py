"""Flag value parsing shared by the commands: booleans, durations, key=value lists.

kubectl's flags come from Go's pflag, which accepts ``--wait=false`` for a
boolean and ``--timeout=1m30s`` for a duration; argparse knows neither, so
the converters live here and every command spells its flags the same way.
"""
from __future__ import annotations

import argparse
import re

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def parse_bool(value: str) -> bool:
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r} (use true or false)")


class BoolFlag(argparse.Action):
    """Marker class so ``normalize_bools`` can find the boolean options of a parser."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True if values is None else values)


def add_bool(parser: argparse.ArgumentParser, *names: str, default: bool = False, help: str = "",
             dest: str | None = None) -> None:
    """A pflag-style boolean: ``--x`` means true, ``--x=false`` false (see ``normalize_bools``)."""
    kw = {"dest": dest} if dest else {}
    parser.add_argument(*names, action=BoolFlag, nargs="?", const=True, default=default, type=parse_bool,
                        metavar="BOOL", help=help, **kw)


def bool_options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions if isinstance(a, BoolFlag) for s in a.option_strings}


def normalize_bools(args: list[str], bools: set[str]) -> list[str]:
    """Make argparse read booleans as pflag does.

    A boolean never takes the next word as its value (``logs -f web``), only
    ``--x=false``; and short booleans combine (``exec -it``). argparse's
    ``nargs="?"`` would swallow ``web``, so each bare boolean is rewritten to
    ``--x=true`` / ``-x=true`` and combined short ones are split first.
    """
    out: list[str] = []
    for a in args:
        if a.startswith("--"):
            out.append(a + "=true" if a in bools else a)
        elif a.startswith("-") and len(a) > 1 and not a[1].isdigit():
            if a in bools:
                out.append(a + "=true")
            elif "=" not in a and len(a) > 2 and all(f"-{ch}" in bools for ch in a[1:]):
                out += [f"-{ch}=true" for ch in a[1:]]
            else:
                out.append(a)
        else:
            out.append(a)
    return out


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float:
    """Go duration (``1m30s``, ``500ms``, ``2h``) or a bare number of seconds -> seconds."""
    v = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return float(v)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(v):
        if m.start() != pos:
            break
        n = float(m.group(1))
        total += {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[m.group(2)]
        pos = m.end()
    if pos != len(v) or not v:
        raise argparse.ArgumentTypeError(f"invalid duration {value!r} (examples: 30s, 1m, 1m30s)")
    return total


def parse_key_values(text: str, what: str = "label") -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"} (``--labels``)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise argparse.ArgumentTypeError(f"invalid {what} {part!r}: expected key=value")
        k, v = part.split("=", 1)
        if not k:
            raise argparse.ArgumentTypeError(f"invalid {what} {part!r}: empty key")
        out[k] = v
    return out
