"""Issue 14 item 11, issue 15 items 9-10 (panic) end to end: real broker, bridge, API,
notifier and a webhook receiver: the help button, the silent duress disarm, door bounce."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.models import EventType
from core.storage.sqlite import connect, migrate
from simulator.device import VirtualSensor
from tests.harness import Stack, schema_at, wait_until
from tests.receiver import Receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("panic-live"),
        ANSIM_ENTRY_DELAY_S="1",
        ANSIM_ESCALATION_DELAY_S="600",  # so "at once" cannot be the escalation timer
        ANSIM_RULES_TICK_MS="200",
        ANSIM_NOTIFY_BACKOFF_MAX_S="1",
        ANSIM_EXIT_DELAY_S="0",  # the tests open the door right after arming
        ANSIM_CENTRE_WEBHOOK_URL=receiver.url("/centre"),
        ANSIM_CENTRE_WEBHOOK_SECRET="whsec_centre-panic",
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _household(stack: Stack, receiver: Receiver, path: str) -> dict[str, Any]:
    with stack.api() as api:
        hh: dict[str, Any] = stack.enrol(api, webhook_url=receiver.url(path))
        return hh


def _alerts(stack: Stack, household_id: str, token: str | None = None) -> list[dict[str, Any]]:
    with stack.api(token) as api:
        r = api.get("/api/v1/alerts", params={"household_id": household_id})
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data


def _centre_for(receiver: Receiver, alert_id: str) -> list[dict[str, Any]]:
    return [h for h in receiver.delivered("/centre") if h["json"]["alert_id"] == alert_id]


# ---------------------------------------------------------------------------- help button


def test_help_button_reaches_her_and_the_centre_at_once_and_stands(
    live: Stack, receiver: Receiver
) -> None:
    hh = _household(live, receiver, "/help-press")
    hid = hh["household_id"]
    with live.api(hh["token"]) as resident:
        pressed = time.monotonic()
        r = resident.post(f"/api/v1/households/{hid}/help")
        assert r.status_code == 201, r.text
        alert = r.json()
        aid = alert["alert_id"]
        assert alert["kind"] == "help" and alert["state"] == "open"
        assert alert["escalated"] is True and alert["help_requested"] is True
        assert alert["escalate_due_at"] is None and alert["repeats"] == 0
        assert {"history", "detail"} <= alert.keys()  # the shape of GET /alerts/{id}
        shown = resident.get(f"/api/v1/alerts/{aid}").json()
        assert {k: shown[k] for k in alert if k != "updated_at"} == {
            k: alert[k] for k in alert if k != "updated_at"
        }
        # both webhooks, without the 600 s escalation delay
        (centre,) = wait_until(lambda: _centre_for(receiver, aid), 10, what="help at the centre")
        (own,) = wait_until(lambda: receiver.delivered("/help-press"), 10, what="her webhook")
        assert time.monotonic() - pressed < 10
        assert centre["json"]["kind"] == "help" and centre["json"]["help_requested"] is True
        assert own["json"]["kind"] == "help" and own["json"]["alert_id"] == aid
        # pressed again while it is open: folded into it, no new alert, no new delivery
        r = resident.post(f"/api/v1/households/{hid}/help")
        assert r.status_code == 201, r.text
        assert r.json()["alert_id"] == aid and r.json()["repeats"] == 1
        assert len(_alerts(live, hid)) == 1
        # she cannot close it herself
        for path, body in (("resolve", {"resolution": "false_alarm"}), ("ack", None)):
            r = resident.post(f"/api/v1/alerts/{aid}/{path}", json=body)
            assert r.status_code == 409, (path, r.text)
        r = resident.post(f"/api/v1/alerts/{aid}/answer", json={"answer": "it_was_me"})
        assert r.status_code == 409, r.text
        # another household's button is not hers
        other = _household(live, receiver, "/help-other")
        r = resident.post(f"/api/v1/households/{other['household_id']}/help")
        assert r.status_code == 403, r.text
    time.sleep(0.5)
    assert len(_centre_for(receiver, aid)) == 1 and len(receiver.delivered("/help-press")) == 1
    with live.api() as operator:
        r = operator.post(f"/api/v1/alerts/{aid}/resolve", json={"resolution": "confirmed"})
        assert r.status_code == 200, r.text
        assert r.json()["incident"] is True  # a confirmed help press is an incident
        # an operator may press it for her; once resolved a press opens a new one
        r = operator.post(f"/api/v1/households/{hid}/help")
        assert r.status_code == 201, r.text
        assert r.json()["alert_id"] != aid and r.json()["repeats"] == 0
        assert operator.post("/api/v1/households/hh-nobody/help").status_code == 404


# ---------------------------------------------------------------------------- duress


def test_duress_disarm_tells_only_the_centre_and_looks_normal_to_her(
    live: Stack, receiver: Receiver
) -> None:
    duress = _household(live, receiver, "/duress")
    normal = _household(live, receiver, "/duress-normal")
    for hh in (duress, normal):
        with live.api(hh["token"]) as resident:
            hid = hh["household_id"]
            r = resident.put(f"/api/v1/households/{hid}/duress-pin", json={"pin": "2580"})
            assert r.status_code == 204, r.text
            assert (
                resident.put(f"/api/v1/households/{hid}/duress-pin", json={"pin": "12"})
            ).status_code == 422
            r = resident.put(f"/api/v1/households/{hid}/mode", json={"mode": "away"})
            assert r.status_code == 200, r.text
    answers = {}
    for hh, pin in ((duress, "2580"), (normal, "1111")):  # the second: not her duress PIN
        with live.api(hh["token"]) as resident:
            r = resident.put(
                f"/api/v1/households/{hh['household_id']}/mode", json={"mode": "home", "pin": pin}
            )
            assert r.status_code == 200, r.text
            answers[hh["household_id"]] = r.json()
    a, b = answers[duress["household_id"]], answers[normal["household_id"]]
    assert a.keys() == b.keys()
    assert {k: v for k, v in a.items() if k not in ("household_id", "since")} == {
        k: v for k, v in b.items() if k not in ("household_id", "since")
    }
    # the centre gets a duress alert, at once
    did = duress["household_id"]
    ops = wait_until(lambda: _alerts(live, did), 10, what="duress alert")
    assert [x["kind"] for x in ops] == ["duress"] and ops[0]["escalated"] is True
    aid = ops[0]["alert_id"]
    (hook,) = wait_until(lambda: _centre_for(receiver, aid), 10, what="duress at the centre")
    assert hook["json"]["kind"] == "duress"
    assert _alerts(live, normal["household_id"]) == []
    # nothing on her side: her webhook, her list, the alert itself
    time.sleep(1.5)  # the notifier had time to deliver anything queued for her
    assert receiver.delivered("/duress") == []
    assert _alerts(live, did, duress["token"]) == []
    with live.api(duress["token"]) as resident:
        assert resident.get(f"/api/v1/alerts/{aid}").status_code == 404
        assert resident.post(f"/api/v1/alerts/{aid}/resolve",
                             json={"resolution": "false_alarm"}).status_code == 404  # fmt: skip
        assert resident.get(f"/api/v1/households/{did}").json()["mode"] == "home"
    with live.api() as operator:
        r = operator.post(f"/api/v1/alerts/{aid}/resolve", json={"resolution": "confirmed"})
        assert r.status_code == 200, r.text
        assert r.json()["incident"] is True


# ---------------------------------------------------------------------------- door bounce


def test_open_close_open_within_2_s_is_one_alert(live: Stack, receiver: Receiver) -> None:
    hh = _household(live, receiver, "/bounce")
    hid = hh["household_id"]
    with live.api() as api:
        prov = live.provision(api, hid)
    sensor = VirtualSensor.provisioned(prov, boot=1)
    assert sensor.start()
    try:
        with live.api(hh["token"]) as resident:
            r = resident.put(f"/api/v1/households/{hid}/mode", json={"mode": "away"})
            assert r.status_code == 200, r.text
        t0 = datetime.now(UTC)
        for kind, dt in ((EventType.OPEN, 0.0), (EventType.CLOSE, 0.4), (EventType.OPEN, 1.2)):
            sensor.publish(kind, t0 + timedelta(seconds=dt)).wait_for_publish(5)
        (alert,) = wait_until(lambda: _alerts(live, hid), 10, what="intrusion")
        assert alert["kind"] == "intrusion"
        time.sleep(2.5)  # past the 1 s entry delay of the reopening too
        (alert,) = _alerts(live, hid)
        assert alert["repeats"] == 0  # the bounce was not a second opening
    finally:
        sensor.stop()


# ---------------------------------------------------------------------------- schema v8


def test_migration_8_adds_the_duress_pin_hash_and_keeps_households(tmp_path: Path) -> None:
    path = tmp_path / "v7.db"
    with sqlite3.connect(path) as db:
        schema_at(db, 7)
        db.execute(
            "INSERT INTO households (household_id, name, lat, lon, timezone, night_window,"
            " mode, mode_since_us, created_us)"
            " VALUES ('hh-old', 'x', 37.5, 126.9, 'Asia/Seoul', '23:00-06:00', 'disarmed', 1, 1)"
        )

    async def upgrade() -> None:
        conn = await connect(path)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(upgrade())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 8
        row = db.execute("SELECT household_id, duress_pin_hash FROM households").fetchone()
    assert row == ("hh-old", None)
