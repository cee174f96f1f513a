"""The alert engine's storage on each adapter (a real SQLite file, a real PostgreSQL
database): load → decide → save → load again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core.engine import EngineConfig, EventInput, ModeChangeInput, TickInput
from core.models import DEFAULT_NIGHT_WINDOW, EventType, Mode
from core.rules import CheckKind, DoorEvent
from core.storage import alerts as alert_rows
from core.storage.alert_state import decide_stored, evaluate, load, save
from core.storage.db import transaction
from core.storage.households import insert_household
from core.storage.modes import set_mode
from core.storage.port import Conn
from core.storage.sensors import insert_sensor
from core.timeutil import to_us
from scheduler.jobs import offline_sweep
from tests.targets import Target

T0 = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
CONFIG = EngineConfig(centre_url="https://centre.example/hook")


async def _setup(target: Target) -> Conn:
    conn = await target.conn()
    async with transaction(conn):
        for hh in ("hh-a", "hh-b"):
            await insert_household(
                conn, household_id=hh, name=hh, lat=37.5, lon=127.0, timezone="Asia/Seoul",
                night_window=str(DEFAULT_NIGHT_WINDOW), webhook_url="https://r.example/h",
                webhook_secret=None, segment_id=None, now_us=to_us(T0 - timedelta(days=1)),
            )  # fmt: skip
            await insert_sensor(
                conn, sensor_id=f"se-{hh}", household_id=hh, mqtt_username=f"u-{hh}",
                password_hash="x", now_us=to_us(T0),
            )  # fmt: skip
        await set_mode(conn, "hh-a", "away", to_us(T0), to_us(T0), "test")
    return conn


def _open(hh: str, seconds: float) -> EventInput:
    at = T0 + timedelta(seconds=seconds)
    return EventInput(DoorEvent(f"se-{hh}", hh, EventType.OPEN, at), at)


def test_load_save_round_trip(target: Target) -> None:
    async def main() -> None:
        conn = await _setup(target)
        try:
            async with transaction(conn):
                done = await evaluate(
                    conn, ["hh-a", "hh-b", "hh-gone"], [_open("hh-a", 60), _open("hh-b", 60)],
                    CONFIG, T0 + timedelta(seconds=60),
                )  # fmt: skip
            state, changes = done.state, done.changes
            assert list(state.households) == ["hh-a", "hh-b"]  # the order asked, enrolled only
            assert state.households["hh-a"].mode_history == ((to_us(T0), Mode.AWAY),)
            assert changes.raised == []
            again = await load(conn, ["hh-a", "hh-b"])
            kinds = {c.kind for c in again.households["hh-a"].checks.values()}
            assert kinds == {CheckKind.ENTRY_DELAY, CheckKind.DOOR_LEFT_OPEN}
            door = again.households["hh-b"].sensors["se-hh-b"].door_open_since
            assert door == T0 + timedelta(seconds=60)
            assert again.households["hh-b"].routine is not None  # learned the opening

            # the entry delay runs out: one intrusion, its notification, the timer gone
            due = T0 + timedelta(seconds=100)
            async with transaction(conn):
                done = await evaluate(conn, ["hh-a"], [TickInput(due)], CONFIG, due)
            (alert_id,) = done.raised
            assert done.changes.raised == done.raised
            row = await alert_rows.get_alert(conn, alert_id)
            assert row is not None and row.kind == "intrusion" and row.state == "open"
            async with conn.execute(
                "SELECT recipient FROM outbox WHERE alert_id = ?", (alert_id,)
            ) as cur:
                assert [r[0] for r in await cur.fetchall()] == ["resident"]
            after = await load(conn, ["hh-a"])
            assert {c.kind for c in after.households["hh-a"].checks.values()} == {
                CheckKind.DOOR_LEFT_OPEN
            }
            assert [a.alert_id for a in after.households["hh-a"].alerts] == [alert_id]
        finally:
            await conn.close()

    asyncio.run(main())


def test_a_stored_dedupe_key_is_not_raised_again(target: Target) -> None:
    """Resolved alerts are not loaded; their keys are looked up when the engine wants one."""

    async def main() -> None:
        conn = await _setup(target)
        try:
            tamper = EventInput(DoorEvent("se-hh-b", "hh-b", EventType.TAMPER, T0), T0)
            async with transaction(conn):
                (alert_id,) = (await evaluate(conn, ["hh-b"], [tamper], CONFIG, T0)).raised
                row = await alert_rows.get_alert(conn, alert_id)
                assert row is not None
                await alert_rows.set_state(
                    conn, row, to_state="resolved", action="resolve", actor="t", now_us=to_us(T0),
                    resolution="false_alarm",
                )  # fmt: skip
            async with transaction(conn):
                state = await load(conn, ["hh-b"])
                assert state.households["hh-b"].alerts == ()
                changes = await decide_stored(conn, state, [tamper], CONFIG, T0)
                assert changes.raised == [] and changes.outbox == ()
                await save(conn, changes)
            async with conn.execute("SELECT COUNT(*) FROM alerts") as cur:
                assert (await cur.fetchone())[0] == 1  # type: ignore[index]
        finally:
            await conn.close()

    asyncio.run(main())


def test_a_mode_change_clears_the_entry_delay(target: Target) -> None:
    async def main() -> None:
        conn = await _setup(target)
        try:
            async with transaction(conn):
                await evaluate(conn, ["hh-a"], [_open("hh-a", 60)], CONFIG, T0)
            at = T0 + timedelta(seconds=70)
            async with transaction(conn):
                await set_mode(conn, "hh-a", "disarmed", to_us(at), to_us(at), "test")
                await evaluate(
                    conn, ["hh-a"], [ModeChangeInput("hh-a", Mode.DISARMED, at)], CONFIG, at
                )
            state = await load(conn, ["hh-a"])
            kinds = {c.kind for c in state.households["hh-a"].checks.values()}
            assert kinds == {CheckKind.DOOR_LEFT_OPEN}
        finally:
            await conn.close()

    asyncio.run(main())


def test_the_scheduler_sweep_raises_a_silent_sensor_once(target: Target) -> None:
    """scheduler/jobs.py offline_sweep goes through the same load → decide → save."""

    async def main() -> None:
        conn = await _setup(target)
        async with transaction(conn):
            await conn.execute(
                "UPDATE sensors SET status = 'online', last_seen_us = ? WHERE sensor_id = ?",
                (to_us(T0 - timedelta(hours=2)), "se-hh-b"),
            )
        await conn.close()
        settings = target.settings()
        db = await target.store()
        try:
            (alert_id,) = await offline_sweep(db, settings, T0)
            assert await offline_sweep(db, settings, T0 + timedelta(minutes=1)) == []
            row = await alert_rows.get_alert(db.reader, alert_id)
            assert row is not None and row.kind == "sensor_offline"
            async with db.reader.execute(
                "SELECT status, status_reason FROM sensors WHERE sensor_id = 'se-hh-b'"
            ) as cur:
                assert tuple(await cur.fetchone() or ()) == ("offline", "heartbeat_missed")
        finally:
            await db.close()

    asyncio.run(main())
