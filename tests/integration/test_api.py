"""The HTTP API under a real server: auth, roles, validation (4xx with a reason)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from core.models import Role
from tests.harness import Stack, wait_until


def test_health_docs_metrics_need_no_token(stack: Stack) -> None:
    wait_until(
        lambda: httpx.get(f"{stack.base_url}/healthz").status_code == 200, 20, what="healthz 200"
    )
    h = httpx.get(f"{stack.base_url}/healthz").json()
    assert h["status"] == "ok" and h["failing"] == [] and h["time_mode"] == "live"
    assert set(h["parts"]) == {"database", "broker", "bridge", "notifier"}
    assert all(p["status"] == "ok" for p in h["parts"].values())
    assert 0 <= h["parts"]["bridge"]["age_s"] < 30
    assert httpx.get(f"{stack.base_url}/docs").status_code == 200
    spec = httpx.get(f"{stack.base_url}/openapi.json").json()
    for path in ("/api/v1/households", "/api/v1/households/{household_id}/sensors",
                 "/api/v1/sensors/{sensor_id}", "/api/v1/sensors/{sensor_id}/events"):  # fmt: skip
        assert path in spec["paths"]
    metrics = httpx.get(f"{stack.base_url}/metrics")
    assert metrics.status_code == 200 and "ansim_api_requests_total" in metrics.text


def test_tokens_required_and_checked(stack: Stack) -> None:
    r = httpx.post(
        f"{stack.base_url}/api/v1/households", json={"name": "x", "lat": 37.5, "lon": 126.9}
    )
    assert r.status_code == 401 and r.json()["detail"]
    with stack.api("ansim_not-a-real-token") as bad:
        assert bad.get("/api/v1/sensors/s-whatever").status_code == 401


def test_resident_sees_only_her_household(stack: Stack) -> None:
    with stack.api() as op:
        mine = stack.enrol(op, webhook_url="http://127.0.0.1:9/hook")
        other = stack.enrol(op)
        assert mine["token"].startswith("ansim_") and mine["webhook_secret"]
        assert other["webhook_secret"] is None
        my_sensor = stack.provision(op, mine["household_id"])
        other_sensor = stack.provision(op, other["household_id"])
    with stack.api(mine["token"]) as resident:
        assert resident.get(f"/api/v1/sensors/{my_sensor['sensor_id']}").status_code == 200
        assert resident.get(f"/api/v1/sensors/{my_sensor['sensor_id']}/events").status_code == 200
        assert resident.get(f"/api/v1/sensors/{other_sensor['sensor_id']}").status_code == 403
        assert (
            resident.get(f"/api/v1/sensors/{other_sensor['sensor_id']}/events").status_code == 403
        )
        # operator-only routes
        assert (
            resident.post(
                "/api/v1/households", json={"name": "x", "lat": 37.5, "lon": 126.9}
            ).status_code
            == 403
        )
        assert (
            resident.post(f"/api/v1/households/{mine['household_id']}/sensors", json={}).status_code
            == 403
        )
        assert resident.delete(f"/api/v1/sensors/{my_sensor['sensor_id']}").status_code == 403
        assert resident.get("/api/v1/dead-letters").status_code == 403


def test_secrets_stored_only_hashed(stack: Stack) -> None:
    with stack.api() as op:
        hh = stack.enrol(op)
        prov = stack.provision(op, hh["household_id"])
    password = prov["mqtt"]["password"]
    assert stack.db_scalar("SELECT COUNT(*) FROM tokens WHERE token_hash = ?", hh["token"]) == 0
    assert (
        stack.db_scalar("SELECT password_hash FROM sensors WHERE sensor_id = ?", prov["sensor_id"])
        != password
    )
    dynsec = (stack.settings.broker_dir / "dynamic-security.json").read_text()
    assert password not in dynsec and prov["sensor_id"] in dynsec


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "x", "lat": 137.5, "lon": 126.9}, "lat"),
        ({"name": "x", "lat": 37.5}, "lon"),
        ({"name": "", "lat": 37.5, "lon": 126.9}, "name"),
        ({"name": "x", "lat": 37.5, "lon": 126.9, "timezone": "Mars/Olympus"}, "time zone"),
        ({"name": "x", "lat": 37.5, "lon": 126.9, "night_window": "25:00-06:00"}, "night window"),
        ({"name": "x", "lat": 37.5, "lon": 126.9, "night_window": "late"}, "night window"),
        ({"name": "x", "lat": 37.5, "lon": 126.9, "webhook_url": "ftp://x"}, "webhook_url"),
        ({"name": "x", "lat": "north", "lon": 126.9}, "lat"),
        ({"name": "x", "lat": 37.5, "lon": 126.9, "colour": "red"}, "colour"),
    ],
)
def test_bad_enrolment_is_422_with_reason(
    stack: Stack, body: dict[str, object], fragment: str
) -> None:
    with stack.api() as op:
        r = op.post("/api/v1/households", json=body)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]


def test_bad_requests_are_4xx_never_500(stack: Stack) -> None:
    with stack.api() as op:
        hh = stack.enrol(op, night_window="22:30-05:00", timezone="Asia/Seoul")
        assert hh["night_window"] == "22:30-05:00"
        hid = hh["household_id"]
        assert op.post("/api/v1/households/hh-nope/sensors", json={}).status_code == 404
        assert (
            op.post(f"/api/v1/households/{hid}/sensors", json={"sensor_id": "Bad_ID"}).status_code
            == 422
        )
        assert (
            op.post(
                f"/api/v1/households/{hid}/sensors", json={"sensor_id": "ansim-bridge"}
            ).status_code
            == 422
        )
        first = op.post(f"/api/v1/households/{hid}/sensors", json={"sensor_id": "door-test-409"})
        assert first.status_code == 201
        again = op.post(f"/api/v1/households/{hid}/sensors", json={"sensor_id": "door-test-409"})
        assert again.status_code == 409 and "taken" in again.json()["detail"]
        assert (
            op.get("/api/v1/sensors/door-test-409/events", params={"limit": 5000}).status_code
            == 422
        )
        assert (
            op.get("/api/v1/sensors/door-test-409/events", params={"limit": 0}).status_code == 422
        )
        assert (
            op.get("/api/v1/sensors/door-test-409/events", params={"cursor": "!!!"}).status_code
            == 400
        )
        assert op.get("/api/v1/sensors/nope-sensor").status_code == 404
        assert op.delete("/api/v1/sensors/nope-sensor").status_code == 404
        r = op.post(
            "/api/v1/households", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422
        r = op.post(
            f"/api/v1/households/{hid}/sensors",
            content=b"[]",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 422


def test_cli_tokens(stack: Stack) -> None:
    with stack.api() as op:
        hh = stack.enrol(op)
    token = asyncio.run(stack.create_token(Role.RESIDENT, hh["household_id"]))
    with stack.api(token) as resident:
        assert (
            resident.post("/api/v1/households", json={"name": "x", "lat": 1, "lon": 1}).status_code
            == 403
        )
