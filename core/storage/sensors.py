"""Sensors: provisioning, retirement, state for the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.storage.port import Conn


@dataclass(frozen=True, slots=True)
class SensorRow:
    sensor_pk: int
    sensor_id: str
    household_id: str
    created_us: int
    retired_us: int | None
    status: str
    status_reason: str | None
    status_us: int | None
    last_seen_us: int | None
    last_received_us: int | None
    battery: int | None
    rssi: int | None
    clock_skew_s: float | None
    clock_skewed: bool
    last_boot: int | None
    last_seq: int | None
    events_stored: int
    heartbeats: int
    duplicates: int
    last_tamper_us: int | None


_COLUMNS = (
    "sensor_pk, sensor_id, household_id, created_us, retired_us, status, status_reason,"
    " status_us, last_seen_us, last_received_us, battery, rssi, clock_skew_s, clock_skewed,"
    " last_boot, last_seq, events_stored, heartbeats, duplicates, last_tamper_us"
)


def _row(r: Any) -> SensorRow:
    values = list(r)
    values[13] = bool(values[13])
    return SensorRow(*values)


async def insert_sensor(
    conn: Conn,
    *,
    sensor_id: str,
    household_id: str,
    mqtt_username: str,
    password_hash: str,
    now_us: int,
    broker_state: str = "pending",
) -> int:
    """A new sensor; `pending` until its broker client is confirmed (schema v6)."""
    async with conn.execute(
        "INSERT INTO sensors (sensor_id, household_id, mqtt_username, password_hash, created_us,"
        " broker_state, broker_state_us) VALUES (?,?,?,?,?,?,?) RETURNING sensor_pk",
        (sensor_id, household_id, mqtt_username, password_hash, now_us, broker_state, now_us),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def sensor_id_taken(conn: Conn, sensor_id: str) -> bool:
    async with conn.execute("SELECT 1 FROM sensors WHERE sensor_id = ?", (sensor_id,)) as cur:
        return await cur.fetchone() is not None


async def get_sensor(conn: Conn, sensor_id: str) -> SensorRow | None:
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM sensors WHERE sensor_id = ?", (sensor_id,)
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _row(row)


async def list_household_sensors(conn: Conn, household_id: str) -> list[SensorRow]:
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM sensors WHERE household_id = ? ORDER BY sensor_pk",
        (household_id,),
    ) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def retire_sensor(conn: Conn, sensor_id: str, now_us: int) -> bool:
    """Mark retired, its broker client `deleting`; False when it already was retired."""
    cur = await conn.execute(
        "UPDATE sensors SET retired_us = ?, status = 'retired', status_reason = 'retired',"
        " status_us = ?, broker_state = 'deleting', broker_state_us = ?"
        " WHERE sensor_id = ? AND retired_us IS NULL",
        (now_us, now_us, now_us, sensor_id),
    )
    return cur.rowcount > 0


@dataclass(frozen=True, slots=True)
class BrokerState:
    household_id: str
    broker_state: str
    broker_state_us: int | None


async def get_broker_state(conn: Conn, sensor_id: str) -> BrokerState | None:
    async with conn.execute(
        "SELECT household_id, broker_state, broker_state_us FROM sensors WHERE sensor_id = ?",
        (sensor_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else BrokerState(row[0], row[1], row[2])


async def renew_pending(conn: Conn, sensor_id: str, password_hash: str, now_us: int) -> bool:
    """A retried provisioning takes over a `pending` sensor: new password, fresh age (so the
    sweep leaves it alone while the retry runs). False when it is no longer pending."""
    cur = await conn.execute(
        "UPDATE sensors SET password_hash = ?, broker_state_us = ?"
        " WHERE sensor_id = ? AND broker_state = 'pending'",
        (password_hash, now_us, sensor_id),
    )
    return cur.rowcount > 0


async def set_broker_state(
    conn: Conn, sensor_id: str, from_state: str, to_state: str, now_us: int
) -> bool:
    """Move `from_state` → `to_state`; False when the sensor was not in `from_state`."""
    cur = await conn.execute(
        "UPDATE sensors SET broker_state = ?, broker_state_us = ?"
        " WHERE sensor_id = ? AND broker_state = ?",
        (to_state, now_us, sensor_id, from_state),
    )
    return cur.rowcount > 0


async def remove_pending(conn: Conn, sensor_id: str) -> bool:
    """Forget a sensor whose provisioning never completed (its password was never handed
    out, so it has no events); False when it is not pending."""
    cur = await conn.execute(
        "DELETE FROM sensors WHERE sensor_id = ? AND broker_state = 'pending'", (sensor_id,)
    )
    return cur.rowcount > 0


async def abandon_pending(conn: Conn, sensor_id: str, pending_before_us: int, now_us: int) -> bool:
    """The sweep gives up on a provisioning nobody completed: a sensor still `pending` since
    before `pending_before_us` is retired (reason `provisioning_abandoned`) with its broker
    client `deleting`. Decided in this one statement, so a retry that renewed the row first
    keeps it, and a retry after this finds it retired (409)."""
    cur = await conn.execute(
        "UPDATE sensors SET retired_us = ?, status = 'retired',"
        " status_reason = 'provisioning_abandoned', status_us = ?,"
        " broker_state = 'deleting', broker_state_us = ?"
        " WHERE sensor_id = ? AND broker_state = 'pending'"
        " AND COALESCE(broker_state_us, created_us) < ?",
        (now_us, now_us, now_us, sensor_id, pending_before_us),
    )
    return cur.rowcount > 0


async def household_deleting(conn: Conn, household_id: str) -> list[str]:
    """The household's retired sensors whose broker client is not confirmed deleted."""
    async with conn.execute(
        "SELECT sensor_id FROM sensors WHERE household_id = ? AND broker_state = 'deleting'"
        " ORDER BY sensor_pk",
        (household_id,),
    ) as cur:
        return [r[0] for r in await cur.fetchall()]


async def broker_work(conn: Conn, pending_before_us: int) -> tuple[list[str], list[str]]:
    """What the sweep completes: sensors `pending` since before `pending_before_us`, and
    retired sensors whose broker client is not confirmed deleted."""
    async with conn.execute(
        "SELECT sensor_id, broker_state FROM sensors WHERE (broker_state = 'pending'"
        " AND COALESCE(broker_state_us, created_us) < ?) OR broker_state = 'deleting'"
        " ORDER BY sensor_pk",
        (pending_before_us,),
    ) as cur:
        rows = [(r[0], r[1]) for r in await cur.fetchall()]
    return [s for s, st in rows if st == "pending"], [s for s, st in rows if st == "deleting"]


async def count_sensors_by_status(conn: Conn) -> dict[str, int]:
    async with conn.execute("SELECT status, COUNT(*) FROM sensors GROUP BY status") as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}
