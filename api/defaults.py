"""Server-side defaulting of wire objects, as the Kubernetes API server does it.

Clients send sparse objects (``kubectl run`` sends a pod with one container
and an image); what they read back, and what every component acts on, has
the defaults filled in: the restart and DNS policies, the image pull policy
derived from the tag, probe timings, service target ports, the pod's QoS
class. Filling them in once, on the server, before validation, means no
component has to guess, and ``kubectl get -o yaml`` shows what a real
cluster shows.

The rules are Kubernetes' ``SetDefaults_*`` functions for core/v1 plus the
parts of its admission chain and registry strategies that add fields on
create (pod priority, namespace finalizers, the QoS class). Each kind's
rules live in its strategy (api/kinds/, ``Strategy.default``) and the pod
spec's in api/podspec.py; this module holds the few helpers they share.
Like Go's defaulting, a field counts as unset when it is missing, null, or
the zero value of a non-pointer field ("" for strings, 0 for probe timings).

Defaulting never raises: a field of the wrong JSON type is left alone for
validation to report. It is idempotent, so the server can run it on every
create and update.
"""
from __future__ import annotations

from typing import Any


def unset(d: dict, key: str, zero: tuple = ("",)) -> bool:
    """True when Go would see d[key] as unset: missing, null, or a zero value."""
    v = d.get(key)
    return v is None or any(v == z and type(v) is type(z) for z in zero)


def set_default(d: dict, key: str, value: Any, zero: tuple = ("",)) -> None:
    if unset(d, key, zero):
        d[key] = value


def ensure_dict(d: dict, key: str) -> dict | None:
    """d[key] as a dict, created when unset; None when it holds some other type."""
    if d.get(key) is None:
        d[key] = {}
    v = d[key]
    return v if isinstance(v, dict) else None


def dicts(d: dict, key: str) -> list[dict]:
    """The object elements of d[key] when it is a list (others are validation's business)."""
    v = d.get(key)
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def sub(d: dict, key: str) -> dict | None:
    v = d.get(key)
    return v if isinstance(v, dict) else None
