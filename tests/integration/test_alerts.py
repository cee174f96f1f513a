"""Alerts end to end: real broker, bridge, API, notifier and a real local webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.models import EventType
from core.notify import verify
from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until
from tests.receiver import Receiver

CENTRE_SECRET = "whsec_centre-test-secret"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("alerts-live"),
        ANSIM_ENTRY_DELAY_S="2",
        ANSIM_EXIT_DELAY_S="0",  # these tests open the door right after arming
        ANSIM_ESCALATION_DELAY_S="4",
        ANSIM_RULES_TICK_MS="200",
        ANSIM_NOTIFY_BACKOFF_MAX_S="1",
        ANSIM_CENTRE_WEBHOOK_URL=receiver.url("/centre"),
        ANSIM_CENTRE_WEBHOOK_SECRET=CENTRE_SECRET,
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _household(
    stack: Stack, receiver: Receiver, path: str, **extra: Any
) -> tuple[dict[str, Any], dict[str, Any], VirtualSensor]:
    with stack.api() as api:
        hh = stack.enrol(api, webhook_url=receiver.url(path), **extra)
        prov = stack.provision(api, hh["household_id"])
    sensor = VirtualSensor.provisioned(prov, boot=1)
    assert sensor.start()
    return hh, prov, sensor


def _alerts(stack: Stack, household_id: str) -> list[dict[str, Any]]:
    with stack.api() as api:
        r = api.get("/api/v1/alerts", params={"household_id": household_id})
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data


def test_armed_away_opening_raises_signed_intrusion_then_escalates(
    live: Stack, receiver: Receiver
) -> None:
    hh, prov, sensor = _household(live, receiver, "/hh-intrusion")
    with live.api(hh["token"]) as resident:
        r = resident.put(f"/api/v1/households/{hh['household_id']}/mode", json={"mode": "away"})
        assert r.status_code == 200 and r.json()["mode"] == "away"
    opened_at = datetime.now(UTC)
    sensor.publish(EventType.OPEN, opened_at).wait_for_publish(5)
    hooks = wait_until(lambda: receiver.delivered("/hh-intrusion"), 15, what="intrusion webhook")
    hook = hooks[0]
    body = hook["json"]
    assert body["kind"] == "intrusion" and body["state"] == "open"
    assert body["household_id"] == hh["household_id"] and body["sensor_id"] == prov["sensor_id"]
    assert {"alert_id", "event_ts"} <= set(body)
    event_ts = datetime.fromisoformat(body["event_ts"])
    assert event_ts.utcoffset() == timedelta(hours=9)  # the household's zone, Asia/Seoul
    assert abs((event_ts - opened_at).total_seconds()) < 0.01  # the opening's time, not the alert's
    assert hook["headers"]["x-ansim-signature"].startswith("sha256=")
    assert verify(hook["raw"], hh["webhook_secret"], hook["headers"]["x-ansim-signature"])
    assert not verify(hook["raw"], "wrong-secret", hook["headers"]["x-ansim-signature"])
    assert hook["headers"]["idempotency-key"]
    (pending,) = _alerts(live, hh["household_id"])
    if not pending["escalated"]:  # the console counts down to the automatic escalation
        due = datetime.fromisoformat(pending["escalate_due_at"])
        # raised after the entry delay (2 s), escalated ANSIM_ESCALATION_DELAY_S (4 s) later
        assert 4 < (due - event_ts).total_seconds() <= 2 + 4 + 1
    # nobody acknowledges: after the escalation delay the control centre is told
    centre = wait_until(
        lambda: [
            h for h in receiver.delivered("/centre") if h["json"]["alert_id"] == body["alert_id"]
        ],
        20,
        what="escalation to the centre",
    )
    assert centre[0]["json"]["notification"] == "alert.escalated"
    assert verify(centre[0]["raw"], CENTRE_SECRET, centre[0]["headers"]["x-ansim-signature"])
    (alert,) = _alerts(live, hh["household_id"])
    assert alert["kind"] == "intrusion" and alert["escalated"] is True
    assert alert["escalate_due_at"] is None
    sensor.stop()


def test_disarmed_within_entry_delay_raises_nothing(live: Stack, receiver: Receiver) -> None:
    hh, _prov, sensor = _household(live, receiver, "/hh-disarm")
    with live.api(hh["token"]) as resident:
        resident.put(f"/api/v1/households/{hh['household_id']}/mode", json={"mode": "away"})
        sensor.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
        time.sleep(0.5)
        r = resident.put(f"/api/v1/households/{hh['household_id']}/mode", json={"mode": "disarmed"})
        assert r.status_code == 200
    time.sleep(4)  # well past the 2 s entry delay
    assert _alerts(live, hh["household_id"]) == []
    assert receiver.delivered("/hh-disarm") == []
    sensor.stop()


def test_lifecycle_ack_resolve_audit_and_resident_scope(live: Stack, receiver: Receiver) -> None:
    hh, _prov, sensor = _household(live, receiver, "/hh-tamper")
    other, _p2, other_sensor = _household(live, receiver, "/hh-other")
    sensor.publish(EventType.TAMPER, datetime.now(UTC)).wait_for_publish(5)
    (alert,) = wait_until(lambda: _alerts(live, hh["household_id"]), 10, what="tamper alert")
    aid = alert["alert_id"]
    assert alert["kind"] == "tamper" and alert["state"] == "open"
    # tamper goes to the resident and the control centre at once
    wait_until(
        lambda: [h for h in receiver.delivered("/centre") if h["json"]["alert_id"] == aid], 10
    )
    # a repeat folds into the open alert
    sensor.publish(EventType.TAMPER, datetime.now(UTC)).wait_for_publish(5)
    wait_until(lambda: _alerts(live, hh["household_id"])[0]["repeats"] == 1, 10, what="fold")
    assert len(_alerts(live, hh["household_id"])) == 1
    with live.api(other["token"]) as stranger:
        assert stranger.post(f"/api/v1/alerts/{aid}/ack").status_code == 403
        assert stranger.get("/api/v1/alerts").json()["data"] == []
        assert (
            stranger.get("/api/v1/alerts", params={"household_id": hh["household_id"]}).status_code
            == 403
        )
    with live.api(hh["token"]) as resident:
        r = resident.post(f"/api/v1/alerts/{aid}/ack")
        assert r.status_code == 200 and r.json()["state"] == "acknowledged"
        assert resident.post(f"/api/v1/alerts/{aid}/ack").status_code == 409
        assert (
            resident.post(f"/api/v1/alerts/{aid}/resolve", json={"resolution": "maybe"}).status_code
            == 422
        )
    with live.api() as op:
        r = op.post(f"/api/v1/alerts/{aid}/resolve", json={"resolution": "confirmed"})
        assert r.status_code == 200
        assert r.json()["state"] == "resolved" and r.json()["resolution"] == "confirmed"
        assert (
            op.post(f"/api/v1/alerts/{aid}/resolve", json={"resolution": "false_alarm"}).status_code
            == 409
        )
        detail = op.get(f"/api/v1/alerts/{aid}").json()
        actions = [(h["action"], h["actor"].split(":")[0]) for h in detail["history"]]
        assert actions == [("raise", "rules"), ("acknowledge", "resident"), ("resolve", "operator")]
        log = op.get(f"/api/v1/alerts/{aid}/notifications").json()["data"]
        assert {n["recipient"] for n in log} == {"resident", "centre"}
        assert all(n["state"] == "delivered" and n["attempts_log"] for n in log)
        assert (
            op.get("/api/v1/alerts", params={"state": "resolved", "kind": "tamper"}).json()["count"]
            >= 1
        )
        assert op.get("/api/v1/alerts", params={"kind": "nonsense"}).status_code == 422
    sensor.stop()
    other_sensor.stop()


def test_receiver_down_then_up_gets_everything(live: Stack, receiver: Receiver) -> None:
    _hh, _prov, sensor = _household(live, receiver, "/hh-down")
    receiver.status = 503
    try:
        sensor.publish(EventType.TAMPER, datetime.now(UTC)).wait_for_publish(5)
        wait_until(
            lambda: [r for r in receiver.received if r["path"] == "/hh-down"], 10, what="first try"
        )
        time.sleep(2.5)  # several failed attempts with backoff
        failed = [r for r in receiver.received if r["path"] == "/hh-down"]
        assert len(failed) >= 2 and all(r["answered"] == 503 for r in failed)
    finally:
        receiver.status = 200
    ok = wait_until(lambda: receiver.delivered("/hh-down"), 15, what="delivery after recovery")
    keys = {r["headers"]["idempotency-key"] for r in receiver.received if r["path"] == "/hh-down"}
    assert len(keys) == 1  # every retry carried the same key
    assert len({r["raw"] for r in receiver.received if r["path"] == "/hh-down"}) == 1
    assert len(ok) == 1
    sensor.stop()


def test_sse_stream_shows_alert_changes_live(live: Stack, receiver: Receiver) -> None:
    hh, _prov, sensor = _household(live, receiver, "/hh-sse")
    got: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream(
            "GET", f"{live.base_url}/api/v1/alerts/stream",
            headers={"Authorization": f"Bearer {hh['token']}"}, timeout=20,
        ) as resp:  # fmt: skip
            ready.set()
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    got.append(json.loads(line[6:]))
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(5)
    time.sleep(0.3)
    sensor.publish(EventType.TAMPER, datetime.now(UTC)).wait_for_publish(5)
    t.join(15)
    assert got and got[0]["kind"] == "tamper" and got[0]["household_id"] == hh["household_id"]
    sensor.stop()


def test_bridge_killed_between_event_and_delivery_delivers_exactly_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    stack = Stack(tmp_path, ANSIM_NOTIFY_BACKOFF_MAX_S="1")
    stack.start()
    try:
        _hh, _prov, sensor = _household(stack, receiver, "/hh-crash")
        stack.kill("notifier")  # nothing is delivered while the bridge dies
        sensor.publish(EventType.TAMPER, datetime.now(UTC)).wait_for_publish(5)
        sensor.publish(EventType.TAMPER, datetime.now(UTC) + timedelta(seconds=1))
        wait_until(
            lambda: stack.db_scalar("SELECT COUNT(*) FROM outbox") >= 1, 10, what="outbox row"
        )
        stack.kill("bridge")
        stack.start_bridge()
        time.sleep(1.5)  # redelivered messages, if any, are duplicates now
        stack.start_notifier()
        wait_until(lambda: receiver.delivered("/hh-crash"), 15, what="delivery")
        time.sleep(2)
        assert len(receiver.delivered("/hh-crash")) == 1
        assert stack.db_scalar("SELECT COUNT(*) FROM alerts") == 1
        sensor.stop()
    finally:
        stack.stop()


def test_timers_door_left_open_and_silent_or_lost_sensor(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Live-mode timers on the wall clock: a door left open while armed, a sensor that stops
    sending heartbeats, and one whose connection drops (Last Will) for longer than the grace."""
    stack = Stack(
        tmp_path,
        ANSIM_HEARTBEAT_INTERVAL_S="1",
        ANSIM_OFFLINE_GRACE_S="1",
        ANSIM_DOOR_LEFT_OPEN_S="2",
        ANSIM_EXIT_DELAY_S="0",
        ANSIM_RULES_TICK_MS="200",
    )
    stack.start()
    try:
        hh, prov, sensor = _household(stack, receiver, "/hh-timers")
        with stack.api(hh["token"]) as resident:
            resident.put(f"/api/v1/households/{hh['household_id']}/mode", json={"mode": "away"})
        sensor.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
        kinds = lambda: {a["kind"] for a in _alerts(stack, hh["household_id"])}  # noqa: E731
        wait_until(lambda: "door_left_open" in kinds(), 15, what="door_left_open")
        # silence: connected, but no heartbeat for 3 intervals + grace
        wait_until(lambda: "sensor_offline" in kinds(), 20, what="silent sensor alert")
        with stack.api() as op:
            state = op.get(f"/api/v1/sensors/{prov['sensor_id']}").json()
        assert state["status"] == "offline" and state["status_reason"] == "heartbeat_missed"
        # a message brings it back online
        sensor.publish(EventType.HEARTBEAT, datetime.now(UTC)).wait_for_publish(5)
        with stack.api() as op:
            wait_until(
                lambda: op.get(f"/api/v1/sensors/{prov['sensor_id']}").json()["status"] == "online",
                10,
                what="back online",
            )
        sensor.stop()

        hh2, _prov2, lost = _household(stack, receiver, "/hh-lost")
        sock = lost.client.socket()
        lost.client.loop_stop()
        assert sock is not None
        sock.close()  # power loss: the broker publishes the Last Will
        wait_until(
            lambda: [
                a for a in _alerts(stack, hh2["household_id"]) if a["kind"] == "sensor_offline"
            ],
            15,
            what="Last Will alert after the grace",
        )
    finally:
        stack.stop()


def test_whoami_tells_operators_whether_a_centre_webhook_is_set(
    live: Stack, receiver: Receiver
) -> None:
    with live.api() as api:
        assert api.get("/api/v1/whoami").json()["centre_webhook"] is True
    hh, _prov, sensor = _household(live, receiver, "/hh-whoami")
    sensor.stop()
    with live.api(hh["token"]) as resident:
        assert resident.get("/api/v1/whoami").json().get("centre_webhook") is None
