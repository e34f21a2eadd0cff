"""The one error hierarchy every pocketkube component catches.

The API server answers failures with a metav1 ``Status`` body whose ``code``
and ``reason`` say what went wrong (``404 NotFound``, ``409 Conflict``,
``422 Invalid`` ...). The client turns that body into an exception *at the
boundary*, so business logic reads like client-go's ``errors.IsNotFound``::

    try:
        pod = client.get(PODS, name, ns)
    except NotFound:
        ...  # treat as deleted

Hierarchy (status code, reason)::

    ApiError
    ├── BadRequest              400
    ├── Unauthorized            401
    ├── Forbidden               403
    ├── NotFound                404
    ├── MethodNotAllowed        405
    ├── AlreadyExists           409  reason AlreadyExists
    ├── Conflict                409  any other reason (resourceVersion races)
    ├── Gone                    410  reason Expired / Gone: relist
    ├── RequestEntityTooLarge   413
    ├── UnsupportedMediaType    415
    ├── Invalid                 422  ``.causes`` lists the bad fields
    ├── TooManyRequests         429
    ├── ServerError             5xx
    │   └── ServiceUnavailable  503
    └── ConnectionFailed        no HTTP answer at all (server unreachable)

Any other status code raises a plain ``ApiError``. Every instance carries
``code``, ``reason``, ``message``, ``details`` and the raw ``status`` dict, so
callers that need more than the type can look. Bodies that are not a Status
(a proxy's HTML page, an empty 502) still produce the right class, chosen by
the HTTP code, with the body text as the message.
"""
from __future__ import annotations

from typing import Any

import orjson

from api.meta import status_body


class ApiError(Exception):
    """A request to the API server failed; base of every client error."""

    code: int = 0
    default_reason: str = ""

    def __init__(
        self,
        message: str = "",
        *,
        code: int | None = None,
        reason: str | None = None,
        status: dict | None = None,
        details: dict | None = None,
    ):
        self.code = self.code if code is None else code
        self.reason = reason or self.default_reason
        self.message = message or self.reason or f"HTTP {self.code}"
        self.details = details if details is not None else {}
        self.status = status if status is not None else status_body(
            self.code, self.reason, self.message, self.details
        )
        super().__init__(self.message)

    @property
    def retry_after_seconds(self) -> int | None:
        """The server's ``details.retryAfterSeconds`` hint, when it gave one."""
        value = self.details.get("retryAfterSeconds")
        return value if isinstance(value, int) else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, reason={self.reason!r}, message={self.message!r})"


class BadRequest(ApiError):
    code = 400
    default_reason = "BadRequest"


class Unauthorized(ApiError):
    code = 401
    default_reason = "Unauthorized"


class Forbidden(ApiError):
    code = 403
    default_reason = "Forbidden"


class NotFound(ApiError):
    code = 404
    default_reason = "NotFound"


class MethodNotAllowed(ApiError):
    code = 405
    default_reason = "MethodNotAllowed"


class AlreadyExists(ApiError):
    code = 409
    default_reason = "AlreadyExists"


class Conflict(ApiError):
    code = 409
    default_reason = "Conflict"


class Gone(ApiError):
    """The resourceVersion (or continue token) is older than the server keeps: relist."""

    code = 410
    default_reason = "Expired"


class RequestEntityTooLarge(ApiError):
    code = 413
    default_reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code = 415
    default_reason = "UnsupportedMediaType"


class Invalid(ApiError):
    """Validation failed; ``causes`` is the list of ``{"field", "message", "reason"}`` dicts."""

    code = 422
    default_reason = "Invalid"

    @property
    def causes(self) -> list[dict]:
        causes = self.details.get("causes")
        return causes if isinstance(causes, list) else []


class TooManyRequests(ApiError):
    code = 429
    default_reason = "TooManyRequests"


class ServerError(ApiError):
    code = 500
    default_reason = "InternalError"


class ServiceUnavailable(ServerError):
    code = 503
    default_reason = "ServiceUnavailable"


class ConnectionFailed(ApiError):
    """No HTTP answer: refused, reset, timed out or TLS failure. ``code`` is 0."""

    code = 0
    default_reason = "ConnectionFailed"


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    413: RequestEntityTooLarge,
    415: UnsupportedMediaType,
    422: Invalid,
    429: TooManyRequests,
    503: ServiceUnavailable,
}


def error_class(code: int, reason: str = "") -> type[ApiError]:
    """The exception class for an HTTP status code and Status reason."""
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExists
    if code in _BY_CODE:
        return _BY_CODE[code]
    if 500 <= code <= 599:
        return ServerError
    return ApiError


def error_from_status(status: dict, code: int | None = None) -> ApiError:
    """Build the typed error for a metav1 Status dict (a body or a watch ERROR event).

    ``code`` is the HTTP status when there was one and is authoritative; a
    watch ERROR event has none, so the body's own ``code`` is used.
    """
    if not code:
        body_code = status.get("code")
        code = body_code if isinstance(body_code, int) and body_code > 0 else 500
    reason = status.get("reason")
    reason = reason if isinstance(reason, str) else ""
    details = status.get("details")
    cls = error_class(code, reason)
    return cls(
        str(status.get("message") or ""),
        code=code,
        reason=reason or None,
        status=status,
        details=details if isinstance(details, dict) else {},
    )


def error_from_response(status_code: int, body: bytes, content_type: str | None = "") -> ApiError:
    """Translate a non-2xx HTTP answer into the typed error.

    Tolerant by design: a body that is not JSON, or JSON that is not a Status,
    still yields the class for ``status_code`` with a readable message.
    """
    content_type = (content_type or "").lower()
    parsed: Any = None
    if body and ("json" in content_type or body[:1] in (b"{", b"[")):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
    if isinstance(parsed, dict) and (parsed.get("kind") == "Status" or "reason" in parsed):
        return error_from_status(parsed, status_code)
    text = body.decode("utf-8", "replace").strip() if body else ""
    if len(text) > 500:
        text = text[:500] + "..."
    cls = error_class(status_code)
    message = text or f"the server responded with HTTP {status_code}"
    return cls(message, code=status_code)


def is_not_found(err: BaseException) -> bool:
    return isinstance(err, NotFound)


def is_conflict(err: BaseException) -> bool:
    return isinstance(err, Conflict)


def is_already_exists(err: BaseException) -> bool:
    return isinstance(err, AlreadyExists)


__all__ = [
    "ApiError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed",
    "AlreadyExists", "Conflict", "Gone", "RequestEntityTooLarge", "UnsupportedMediaType",
    "Invalid", "TooManyRequests", "ServerError", "ServiceUnavailable", "ConnectionFailed",
    "error_class", "error_from_status", "error_from_response",
    "is_not_found", "is_conflict", "is_already_exists",
]
