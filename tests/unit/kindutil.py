"""Test helpers: a kind's strategy by kind name, and its defaults/validation as functions of the kind.

A kind the table does not serve gets the generic Strategy of an example
group, as a kind without rules of its own would.
"""
from __future__ import annotations

from api import resources as R
from api.kinds.base import Strategy


def strategy(kind: str) -> Strategy:
    rt = R.resolve(kind) or R.ResourceType("example.com", "v1", kind, kind.lower() + "s", True)
    return rt.strategy


def apply_defaults(kind: str, obj):
    return strategy(kind).defaults(obj)


def validate(kind: str, obj):
    return strategy(kind).validate(obj)


def validate_update(kind: str, new, old):
    return strategy(kind).validate_update(new, old)
