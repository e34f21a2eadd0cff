"""Errors as Kubernetes clients expect them: a metav1 Status body and the right code.

Every failure inside the server is raised as a StatusError (or mapped to one
at the boundary by app.py, the one place that turns errors into answers), so no request ever ends in a traceback or a bare
500: kubectl prints `message`, rebuilds 422 text from `details.causes`, and
the official client turns `reason` into its exception types.
"""
from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from api.meta import status_body


class StatusError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict:
        return status_body(self.code, self.reason, self.message, self.details)

    def json(self) -> bytes:
        return orjson.dumps(self.body())

    def response(self) -> Response:
        """The http answer (also a WebSocket's denial response): the Status, its code, its headers."""
        return Response(self.json(), status_code=self.code, media_type="application/json", headers=self.headers)


def _details(kind: str | None, name: str | None, group: str = "") -> dict:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    return d


def not_found(plural: str, name: str, group: str = "") -> StatusError:
    res = f"{plural}.{group}" if group else plural
    return StatusError(404, "NotFound", f'{res} "{name}" not found', _details(plural, name, group))


def already_exists(plural: str, name: str, group: str = "") -> StatusError:
    res = f"{plural}.{group}" if group else plural
    return StatusError(409, "AlreadyExists", f'{res} "{name}" already exists', _details(plural, name, group))


def conflict(plural: str, name: str, why: str, group: str = "") -> StatusError:
    res = f"{plural}.{group}" if group else plural
    return StatusError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {res} "{name}": {why}',
        _details(plural, name, group),
    )


def invalid(kind: str, name: str, causes: list[dict], group: str = "") -> StatusError:
    parts = []
    for c in causes:
        f = c.get("field")
        parts.append(f"{f}: {c.get('message', '')}" if f else c.get("message", ""))
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    k = f"{kind}.{group}" if group else kind
    details = _details(kind, name, group)
    details["causes"] = causes
    return StatusError(422, "Invalid", f'{k} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def gone(message: str = "too old resource version") -> StatusError:
    return StatusError(410, "Expired", message)


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml; got "{content_type}"')


def too_large(limit: int) -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", f"the request body is too large (limit {limit} bytes)")


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized", headers={"WWW-Authenticate": 'Bearer realm="pocketkube"'})


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")


def unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)


def path_not_found(path: str) -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource", {"causes": [{"reason": "UnexpectedServerResponse", "message": f"404 page not found: {path}"}]})
