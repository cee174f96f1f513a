"""Issue 15 (trust) end to end: real broker, bridge, API, notifier and a webhook receiver."""

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
from tests.integration.grades_helpers import (
    CENTRE,
    distance_m,
    district_subset,
    midpoint,
    subset_geojson,
)
from tests.receiver import Receiver

EXIT_DELAY_S = 30  # the service's; households below override it


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("trust-live"),
        ANSIM_ENTRY_DELAY_S="1",
        ANSIM_ESCALATION_DELAY_S="600",
        ANSIM_RULES_TICK_MS="200",
        ANSIM_NOTIFY_BACKOFF_MAX_S="1",
        ANSIM_EXIT_DELAY_S=str(EXIT_DELAY_S),
        ANSIM_CENTRE_WEBHOOK_URL=receiver.url("/centre"),
        ANSIM_CENTRE_WEBHOOK_SECRET="whsec_centre-trust",
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _household(
    stack: Stack, receiver: Receiver, path: str, **extra: Any
) -> tuple[dict[str, Any], VirtualSensor]:
    with stack.api() as api:
        hh = stack.enrol(api, webhook_url=receiver.url(path), **extra)
        prov = stack.provision(api, hh["household_id"])
    sensor = VirtualSensor.provisioned(prov, boot=1)
    assert sensor.start()
    return hh, sensor


def _alerts(stack: Stack, household_id: str) -> list[dict[str, Any]]:
    with stack.api() as api:
        r = api.get("/api/v1/alerts", params={"household_id": household_id})
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data


def _arm(stack: Stack, hh: dict[str, Any], mode: str) -> dict[str, Any]:
    with stack.api(hh["token"]) as resident:
        r = resident.put(f"/api/v1/households/{hh['household_id']}/mode", json={"mode": mode})
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer


# ---------------------------------------------------------------------------- exit delay


def test_exit_delay_walking_out_after_arming_raises_nothing(
    live: Stack, receiver: Receiver
) -> None:
    """The service's exit delay (30 s here), a household with its own 0 s at enrolment and
    one that sets 2 s through PATCH: the same arm-then-open, three verdicts."""
    default, s_default = _household(live, receiver, "/exit-default")
    none, s_none = _household(live, receiver, "/exit-none", exit_delay_s=0)
    short, s_short = _household(live, receiver, "/exit-short")
    assert none["exit_delay_s"] == 0 and default["exit_delay_s"] is None
    with live.api(short["token"]) as resident:  # the resident sets her own
        r = resident.patch(f"/api/v1/households/{short['household_id']}", json={"exit_delay_s": 2})
        assert r.status_code == 200, r.text
        assert r.json()["exit_delay_s"] == 2
        assert (
            resident.patch(
                f"/api/v1/households/{short['household_id']}", json={"exit_delay_s": -1}
            ).status_code
            == 422
        )

    armed = datetime.now(UTC)
    answer = _arm(live, default, "away")
    until = datetime.fromisoformat(answer["exit_delay_until"])
    assert abs((until - armed).total_seconds() - EXIT_DELAY_S) < 2
    assert _arm(live, none, "away")["exit_delay_until"] is None
    short_answer = _arm(live, short, "night")
    assert short_answer["exit_delay_until"] is not None
    with live.api(default["token"]) as resident:
        shown = resident.get(f"/api/v1/households/{default['household_id']}").json()
        assert shown["exit_delay_s"] == EXIT_DELAY_S
        assert shown["exit_delay_until"] == answer["exit_delay_until"]

    # she walks out at once: within the 30 s exit delay of `default`, none for `none`
    s_default.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
    s_none.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
    wait_until(lambda: _alerts(live, none["household_id"]), 10, what="intrusion, no exit delay")
    assert _alerts(live, none["household_id"])[0]["kind"] == "intrusion"
    # `short`: after her 2 s exit delay an opening counts
    time.sleep(
        max(
            0.0,
            (
                datetime.fromisoformat(short_answer["exit_delay_until"]) - datetime.now(UTC)
            ).total_seconds(),
        )
        + 0.3
    )
    s_short.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
    wait_until(lambda: _alerts(live, short["household_id"]), 10, what="intrusion after 2 s")
    time.sleep(2)  # well past the 1 s entry delay of the opening within the exit delay
    assert _alerts(live, default["household_id"]) == []
    assert receiver.delivered("/exit-default") == []
    for s in (s_default, s_none, s_short):
        s.stop()


# ---------------------------------------------------------------------------- help stands


def test_help_stands_her_it_was_me_cannot_close_it(live: Stack, receiver: Receiver) -> None:
    hh, sensor = _household(live, receiver, "/help", exit_delay_s=0)
    _arm(live, hh, "away")
    sensor.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
    (alert,) = wait_until(lambda: _alerts(live, hh["household_id"]), 10, what="intrusion")
    aid = alert["alert_id"]
    with live.api(hh["token"]) as resident:
        r = resident.post(f"/api/v1/alerts/{aid}/answer", json={"answer": "help"})
        assert r.status_code == 200, r.text
        assert r.json()["help_requested"] is True and r.json()["escalated"] is True
        # the centre is told at once, and that it is a help request
        (hook,) = wait_until(
            lambda: [h for h in receiver.delivered("/centre") if h["json"]["alert_id"] == aid],
            10,
            what="help at the centre",
        )
        assert hook["json"]["notification"] == "alert.escalated"
        assert hook["json"]["help_requested"] is True
        # her later "it was me" (she may be made to press it) does not close it, nor her
        # own resolve or acknowledge
        r = resident.post(f"/api/v1/alerts/{aid}/answer", json={"answer": "it_was_me"})
        assert r.status_code == 409, r.text
        assert "only the control centre" in r.json()["detail"]
        for path, body in (("resolve", {"resolution": "false_alarm"}), ("ack", None)):
            r = resident.post(f"/api/v1/alerts/{aid}/{path}", json=body)
            assert r.status_code == 409, (path, r.text)
        shown = resident.get(f"/api/v1/alerts/{aid}").json()
        assert shown["state"] == "open" and shown["resolution"] is None
        actions = [h["action"] for h in shown["history"]]
        assert "help" in actions and "refused" in actions
        refused = next(h for h in shown["history"] if h["action"] == "refused")
        assert refused["detail"]["answer"] == "it_was_me"
    # only an operator resolves it
    with live.api() as operator:
        r = operator.post(f"/api/v1/alerts/{aid}/resolve", json={"resolution": "confirmed"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "resolved" and r.json()["resolution"] == "confirmed"
        assert r.json()["help_requested"] is True
    sensor.stop()


# ---------------------------------------------------------------------------- incident kinds


def test_migration_7_removes_incidents_of_kinds_not_about_the_street(tmp_path: Path) -> None:
    """From v6: the copies of confirmed battery_low/tamper/... alerts go, the rest stay."""
    path = tmp_path / "v6.db"
    with sqlite3.connect(path) as db:
        schema_at(db, 6)
        for i, kind in enumerate(
            ["intrusion", "night_opening", "battery_low", "tamper", "sensor_offline",
             "door_left_open", None]
        ):  # fmt: skip
            db.execute(
                "INSERT INTO incidents (incident_id, source_key, lat, lon, occurred_us,"
                " resolution, kind, recorded_us) VALUES (?,?,37.5,126.9,1,'confirmed',?,1)",
                (f"inc-{i}", f"al-{i}", kind),
            )

    async def upgrade() -> None:
        conn = await connect(path)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(upgrade())
    with sqlite3.connect(path) as db:
        kinds = {r[0] for r in db.execute("SELECT kind FROM incidents")}
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 7
    assert kinds == {"intrusion", "night_opening", None}


def test_only_street_kinds_confirmed_raise_grades(live: Stack, receiver: Receiver) -> None:
    """A battery_low and a tamper resolved `confirmed` leave every grade alone; a confirmed
    intrusion on the same segment raises it. (Last in this module: it imports segments.)"""
    segs = district_subset()
    home = min((s for s in segs if s.base_grade < 5), key=lambda s: distance_m(midpoint(s), CENTRE))
    with live.api() as op:
        assert op.post("/api/v1/segments/import", json=subset_geojson()).status_code == 200
    lat, lon = midpoint(home)
    hh, sensor = _household(live, receiver, "/kinds", exit_delay_s=0, lat=lat, lon=lon)
    assert hh["segment_id"] == home.segment_id
    sensor.battery = 10
    sensor.publish(EventType.HEARTBEAT, datetime.now(UTC)).wait_for_publish(5)
    sensor.publish(EventType.TAMPER, datetime.now(UTC)).wait_for_publish(5)
    wait_until(
        lambda: {a["kind"] for a in _alerts(live, hh["household_id"])} >= {"battery_low", "tamper"},
        10,
        what="battery_low and tamper",
    )

    def confirm_all() -> list[dict[str, Any]]:
        out = []
        with live.api() as op:
            for a in _alerts(live, hh["household_id"]):
                if a["state"] != "resolved":
                    r = op.post(
                        f"/api/v1/alerts/{a['alert_id']}/resolve", json={"resolution": "confirmed"}
                    )
                    assert r.status_code == 200, r.text
                    out.append(r.json())
        return out

    def recompute() -> tuple[dict[str, Any], dict[str, Any]]:
        with live.api() as op:
            r = op.post("/api/v1/grades/recompute")
            assert r.status_code == 200, r.text
            feats = op.get("/api/v1/segments").json()["features"]
        props = [f["properties"] for f in feats]
        (mine,) = [p for p in props if p["segment_id"] == home.segment_id]
        return r.json(), mine

    before, _ = recompute()
    resolved = confirm_all()
    assert {a["kind"] for a in resolved} == {"battery_low", "tamper"}
    assert all(a["resolution"] == "confirmed" and a["incident"] is False for a in resolved)
    summary, mine = recompute()
    assert summary["incidents_confirmed"] == before["incidents_confirmed"]
    assert mine["grade"] == mine["base_grade"] == home.base_grade
    assert live.db_scalar("SELECT COUNT(*) FROM incidents WHERE kind != 'intrusion'") == 0

    _arm(live, hh, "away")
    sensor.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
    wait_until(
        lambda: any(a["kind"] == "intrusion" for a in _alerts(live, hh["household_id"])),
        10,
        what="intrusion",
    )
    (intrusion,) = confirm_all()
    assert intrusion["kind"] == "intrusion" and intrusion["incident"] is True
    summary, mine = recompute()
    assert summary["incidents_confirmed"] == before["incidents_confirmed"] + 1
    assert mine["grade"] > mine["base_grade"]
    sensor.stop()


# ---------------------------------------------------------------------------- replay mode


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("trust-replay"),
        ANSIM_TIME_MODE="replay",
        ANSIM_RULES_TICK_MS="200",
        ANSIM_ESCALATION_DELAY_S="600",
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_replay_mode_change_without_at_goes_on_the_event_clock(
    replay: Stack, receiver: Receiver
) -> None:
    """A replay of October: `away` set (today, on the wall clock) without `at` governs the
    replayed openings that come after it — for a household with events already, and for
    one with none yet."""
    october = datetime(2026, 10, 6, 4, 0, tzinfo=UTC)  # 13:00 in Seoul: no night rules
    seen, s_seen = _household(replay, receiver, "/replay-seen")
    fresh, s_fresh = _household(replay, receiver, "/replay-fresh")
    s_seen.publish(EventType.OPEN, october).wait_for_publish(5)
    s_seen.publish(EventType.CLOSE, october + timedelta(seconds=20)).wait_for_publish(5)
    with replay.api() as op:
        wait_until(
            lambda: len(op.get(f"/api/v1/sensors/{s_seen.sensor_id}/events").json()["data"]) == 2,
            10,
            what="October events stored",
        )
    answer = _arm(replay, seen, "away")
    since = datetime.fromisoformat(answer["since"])
    assert since == october + timedelta(seconds=20)  # shown to the millisecond
    stored = replay.db_scalar(
        "SELECT MAX(at_us) FROM mode_changes WHERE household_id = ?", seen["household_id"]
    )
    assert stored == int((october + timedelta(seconds=20)).timestamp() * 1_000_000) + 1
    # the exit delay (60 s) runs on the event clock from there
    until = datetime.fromisoformat(answer["exit_delay_until"])
    assert until - since == timedelta(seconds=60)
    fresh_since = datetime.fromisoformat(_arm(replay, fresh, "away")["since"])
    assert fresh_since < october  # before any event at all

    # five replayed minutes later the door opens; a heartbeat later moves the event clock
    # past the entry delay
    for sensor in (s_seen, s_fresh):
        sensor.publish(EventType.OPEN, october + timedelta(minutes=5)).wait_for_publish(5)
    for sensor in (s_seen, s_fresh):
        sensor.publish(EventType.HEARTBEAT, october + timedelta(minutes=6)).wait_for_publish(5)
    for hh in (seen, fresh):
        (alert,) = wait_until(lambda h=hh: _alerts(replay, h["household_id"]), 15, what="intrusion")
        assert alert["kind"] == "intrusion"
    for sensor in (s_seen, s_fresh):
        sensor.stop()
