"""Integer ids and cursors under a real server: anything a SQLite integer cannot hold, a
sign, a non-digit or an overlong value is 400 with a reason on every route, never 500."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.harness import Stack

BAD_NUMBERS = [
    "99999999999999999999999",
    "-1",
    "9223372036854775808",
    "abc",
    "1e3",
    "0x10",
    " 1",
    "１",  # a full-width digit: isdigit() but not ASCII
    "0" * 25 + "1",
]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _assert_400(r: httpx.Response, name: str) -> None:
    assert r.status_code == 400, (r.request.url, r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and name in detail, detail


@pytest.mark.parametrize("bad", BAD_NUMBERS)
@pytest.mark.parametrize("route", ["/api/v1/dead-letters", "/api/v1/audit", "/api/v1/fleet"])
def test_integer_cursors_are_400(stack: Stack, route: str, bad: str) -> None:
    with stack.api() as op:
        _assert_400(op.get(route, params={"cursor": bad}), "cursor")


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_scheduler_request_id_is_400(stack: Stack, bad: str) -> None:
    with stack.api() as op:
        r = op.get(f"/api/v1/scheduler/requests/{bad}")
        _assert_400(r, "request_id")


@pytest.mark.parametrize("bad", [*BAD_NUMBERS, "", "x" * 300])
def test_opaque_cursors_are_400(stack: Stack, bad: str) -> None:
    with stack.api() as op:
        hh = stack.enrol(op)
        sid = stack.provision(op, hh["household_id"])["sensor_id"]
        # the raw value, and the raw value wrapped as a cursor would be (a time may be
        # negative, before 1970; boot and seq may not)
        signed_bad = bad != "-1"
        crafted = [
            *([_b64(f"{bad}:1:1")] if signed_bad else []),
            _b64(f"1:{bad}:1"),
            _b64(f"1:1:{bad}"),
            _b64("1:-1:1"),
            _b64("1:1"),
        ]
        for cursor in ([bad] if bad else []) + crafted:
            _assert_400(
                op.get(f"/api/v1/sensors/{sid}/events", params={"cursor": cursor}), "cursor"
            )
        for cursor in ([bad] if bad else []) + ([_b64(f"{bad}:al-x")] if signed_bad else []):
            _assert_400(op.get("/api/v1/alerts", params={"cursor": cursor}), "cursor")


@pytest.mark.parametrize("bad", [b for b in BAD_NUMBERS if b.isascii() and b.strip() == b])
def test_last_event_id_is_400(stack: Stack, bad: str) -> None:
    with stack.api() as op:
        r = op.get("/api/v1/alerts/stream", headers={"Last-Event-ID": bad})
        _assert_400(r, "Last-Event-ID")


def test_valid_ids_still_work(stack: Stack) -> None:
    with stack.api() as op:
        for route in ("/api/v1/dead-letters", "/api/v1/audit", "/api/v1/fleet"):
            for cursor in ("1", str(2**63 - 1)):
                r = op.get(route, params={"cursor": cursor})
                assert r.status_code == 200, (route, r.text)
                assert r.json()["count"] >= 0
        assert op.get("/api/v1/fleet", params={"cursor": "0"}).status_code == 200
        for route in ("/api/v1/dead-letters", "/api/v1/audit"):
            _assert_400(op.get(route, params={"cursor": "0"}), "cursor")
        r = op.get(f"/api/v1/scheduler/requests/{2**63 - 1}")
        assert r.status_code == 404 and "not found" in r.json()["detail"]
        # a real request id answering 200: tests/integration/test_privacy.py


def test_unknown_alert_notifications_is_404(stack: Stack) -> None:
    with stack.api() as op:
        r = op.get("/api/v1/alerts/al-does-not-exist/notifications")
        assert r.status_code == 404, r.text
        assert r.json() == {"detail": "alert 'al-does-not-exist' not found"}
        assert op.get("/api/v1/alerts/al-does-not-exist").json() == r.json()
