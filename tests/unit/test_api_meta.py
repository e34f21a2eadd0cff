"""api/meta.py: the one home of metav1 times and the Status body."""
from datetime import datetime, timezone

from api import meta


def test_now_is_rfc3339_utc_seconds():
    s = meta.now()
    assert len(s) == 20 and s.endswith("Z") and s[10] == "T"
    assert abs(meta.parse_time(s).timestamp() - datetime.now(timezone.utc).timestamp()) < 2


def test_now_micro_has_microseconds():
    s = meta.now_micro()
    assert s.endswith("Z") and "." in s and len(s.split(".")[1]) == 7


def test_format_and_parse_round_trip():
    t = datetime(2026, 12, 7, 13, 8, 25, tzinfo=timezone.utc)
    assert meta.format_time(t) == "2026-12-07T13:08:25Z"
    assert meta.format_time(t.timestamp()) == "2026-12-07T13:08:25Z"
    assert meta.format_time(None) == meta.ZERO_TIME
    assert meta.parse_time("2026-12-07T13:08:25Z") == t
    assert meta.parse_time("2026-12-07T14:08:25+01:00") == t
    assert meta.parse_time("2026-12-07T13:08:25.000001Z").microsecond == 1
    assert meta.parse_time("garbage") is None and meta.parse_time(None) is None


def test_status_body_failure_and_success():
    b = meta.status_body(404, "NotFound", 'pods "x" not found', {"name": "x", "kind": "pods"})
    assert b == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": 'pods "x" not found', "reason": "NotFound", "code": 404,
                 "details": {"name": "x", "kind": "pods"}}
    ok = meta.status_body(200, "", "", status="Success")
    assert ok == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}
