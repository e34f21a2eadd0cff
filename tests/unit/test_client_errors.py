"""Status bodies (and non-Status bodies) become the right typed exception."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, strategies as st

from client import errors as E


def status(code: int, reason: str, message: str = "boom", details: dict | None = None) -> bytes:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return orjson.dumps(body)


@pytest.mark.parametrize("code,reason,cls", [
    (400, "BadRequest", E.BadRequest),
    (401, "Unauthorized", E.Unauthorized),
    (403, "Forbidden", E.Forbidden),
    (404, "NotFound", E.NotFound),
    (405, "MethodNotAllowed", E.MethodNotAllowed),
    (409, "AlreadyExists", E.AlreadyExists),
    (409, "Conflict", E.Conflict),
    (410, "Expired", E.Gone),
    (410, "Gone", E.Gone),
    (413, "RequestEntityTooLarge", E.RequestEntityTooLarge),
    (415, "UnsupportedMediaType", E.UnsupportedMediaType),
    (422, "Invalid", E.Invalid),
    (429, "TooManyRequests", E.TooManyRequests),
    (500, "InternalError", E.ServerError),
    (503, "ServiceUnavailable", E.ServiceUnavailable),
    (504, "Timeout", E.ServerError),
])
def test_status_body_maps_to_class(code, reason, cls):
    err = E.error_from_response(code, status(code, reason, "it failed"), "application/json")
    assert type(err) is cls
    assert isinstance(err, E.ApiError)
    assert err.code == code
    assert err.reason == reason
    assert err.message == "it failed"
    assert str(err) == "it failed"
    assert err.status["kind"] == "Status"


def test_service_unavailable_is_a_server_error():
    assert issubclass(E.ServiceUnavailable, E.ServerError)
    assert issubclass(E.ConnectionFailed, E.ApiError)


def test_details_and_invalid_causes():
    causes = [{"field": "metadata.name", "message": "Required value", "reason": "FieldValueRequired"}]
    err = E.error_from_response(
        422, status(422, "Invalid", 'Pod "" is invalid', {"kind": "Pod", "causes": causes}), "application/json")
    assert isinstance(err, E.Invalid)
    assert err.causes == causes
    assert err.details["kind"] == "Pod"


def test_invalid_without_causes_has_empty_list():
    err = E.error_from_response(422, status(422, "Invalid"), "application/json")
    assert err.causes == []


def test_conflict_with_unknown_reason_is_conflict():
    err = E.error_from_response(409, status(409, "SomethingElse"), "application/json")
    assert type(err) is E.Conflict


def test_http_code_wins_over_body_code():
    err = E.error_from_response(404, status(500, "NotFound"), "application/json")
    assert isinstance(err, E.NotFound)
    assert err.code == 404


def test_status_without_code_uses_http_code():
    body = orjson.dumps({"kind": "Status", "reason": "Conflict", "message": "rv mismatch"})
    err = E.error_from_response(409, body, "application/json")
    assert isinstance(err, E.Conflict) and err.code == 409 and err.message == "rv mismatch"


@pytest.mark.parametrize("body,ctype", [
    (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    (b"", ""),
    (b"{not json", "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'{"hello": "world"}', "application/json"),
    (b"\xff\xfe\x00garbage", "application/octet-stream"),
])
def test_non_status_bodies_are_tolerated(body, ctype):
    err = E.error_from_response(502, body, ctype)
    assert isinstance(err, E.ServerError)
    assert err.code == 502
    assert err.message  # always something readable


def test_non_status_404_is_not_found_with_text():
    err = E.error_from_response(404, b"404 page not found", "text/plain")
    assert isinstance(err, E.NotFound)
    assert err.message == "404 page not found"
    assert err.reason == "NotFound"


def test_unknown_4xx_is_plain_api_error():
    err = E.error_from_response(418, b"teapot", "text/plain")
    assert type(err) is E.ApiError and err.code == 418


def test_error_from_status_for_watch_error_event():
    err = E.error_from_status({"kind": "Status", "code": 410, "reason": "Expired",
                               "message": "too old resource version: 1 (5)"})
    assert isinstance(err, E.Gone)
    assert "too old" in err.message


def test_retry_after_seconds():
    err = E.error_from_response(429, status(429, "TooManyRequests", details={"retryAfterSeconds": 3}),
                                "application/json")
    assert isinstance(err, E.TooManyRequests)
    assert err.retry_after_seconds == 3


def test_constructed_error_has_synthetic_status():
    err = E.NotFound('pods "x" not found')
    assert err.code == 404 and err.reason == "NotFound"
    assert err.status["code"] == 404 and err.status["message"] == 'pods "x" not found'
    conn = E.ConnectionFailed("refused")
    assert conn.code == 0 and conn.reason == "ConnectionFailed"
    assert E.is_not_found(err) and not E.is_conflict(err)


@given(st.integers(min_value=400, max_value=599), st.binary(max_size=200), st.sampled_from(
    ["application/json", "text/plain", "", None]))
def test_never_raises_on_arbitrary_bodies(code, body, ctype):
    err = E.error_from_response(code, body, ctype)
    assert isinstance(err, E.ApiError)
    assert err.code == code
