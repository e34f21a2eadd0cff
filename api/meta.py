"""Object-metadata facts every layer shares: metav1 times and the Status body.

Kubernetes writes every timestamp (creationTimestamp, deletionTimestamp,
Event times, condition transitions, Lease renewals) as RFC 3339 in UTC with
one-second precision (`2026-12-07T13:08:25Z`), and every error answer as a
metav1 `Status`. The API server, the client, the kubelet and its runtime, the
scheduler and the controllers all write both; each had its own copy, and a
copy that drifts (a fractional second, a missing `metadata`) is a wire bug
kubectl or the official client trips on. They live here once; `api` imports
nothing, so every layer may use them.

`MicroTime` fields (Event `eventTime`, Lease `renewTime`/`acquireTime`) carry
microseconds: `now_micro()`.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
ZERO_TIME = "0001-01-01T00:00:00Z"  # what Go prints for a zero metav1.Time


def now() -> str:
    """The current time as a metav1.Time string (UTC, seconds)."""
    return time.strftime(RFC3339, time.gmtime())


def now_micro() -> str:
    """The current time as a metav1.MicroTime string (UTC, microseconds)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time(t: datetime | float | None) -> str:
    """A datetime (naive = UTC) or a Unix time as a metav1.Time string; None is the zero time."""
    if t is None:
        return ZERO_TIME
    if isinstance(t, (int, float)):
        return time.strftime(RFC3339, time.gmtime(t))
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.strftime(RFC3339)


def parse_time(s: str | None) -> datetime | None:
    """Parse a metav1.Time or MicroTime string (also with an offset); None when absent or malformed."""
    if not s or not isinstance(s, str):
        return None
    try:
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


def status_body(code: int, reason: str, message: str, details: dict | None = None,
                status: str = "Failure") -> dict:
    """A metav1 Status as the API server answers it (kubectl prints `message`; clients map `reason`)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": status,
        "message": message,
        "reason": reason,
        "code": code,
    }
    if status == "Success":
        # A success Status (a DELETE answer, a kubelet's finished exec) has no reason or message unless given.
        if not message:
            del body["message"]
        if not reason:
            del body["reason"]
    if details:
        body["details"] = details
    return body
