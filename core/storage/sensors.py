"""Sensors: provisioning, retirement, state for the API."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite


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


def _row(r: aiosqlite.Row) -> SensorRow:
    values = list(r)
    values[13] = bool(values[13])
    return SensorRow(*values)


async def insert_sensor(
    conn: aiosqlite.Connection,
    *,
    sensor_id: str,
    household_id: str,
    mqtt_username: str,
    password_hash: str,
    now_us: int,
) -> int:
    async with conn.execute(
        "INSERT INTO sensors (sensor_id, household_id, mqtt_username, password_hash, created_us)"
        " VALUES (?,?,?,?,?) RETURNING sensor_pk",
        (sensor_id, household_id, mqtt_username, password_hash, now_us),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def sensor_id_taken(conn: aiosqlite.Connection, sensor_id: str) -> bool:
    async with conn.execute("SELECT 1 FROM sensors WHERE sensor_id = ?", (sensor_id,)) as cur:
        return await cur.fetchone() is not None


async def get_sensor(conn: aiosqlite.Connection, sensor_id: str) -> SensorRow | None:
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM sensors WHERE sensor_id = ?", (sensor_id,)
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _row(row)


async def list_household_sensors(conn: aiosqlite.Connection, household_id: str) -> list[SensorRow]:
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM sensors WHERE household_id = ? ORDER BY sensor_pk",
        (household_id,),
    ) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def retire_sensor(conn: aiosqlite.Connection, sensor_id: str, now_us: int) -> bool:
    """Mark retired; False when it already was."""
    cur = await conn.execute(
        "UPDATE sensors SET retired_us = ?, status = 'retired', status_reason = 'retired',"
        " status_us = ? WHERE sensor_id = ? AND retired_us IS NULL",
        (now_us, now_us, sensor_id),
    )
    return cur.rowcount > 0


async def count_sensors_by_status(conn: aiosqlite.Connection) -> dict[str, int]:
    async with conn.execute("SELECT status, COUNT(*) FROM sensors GROUP BY status") as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}
