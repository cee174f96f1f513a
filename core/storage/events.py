"""Stored door events: listing with keyset pagination, retention purge."""

from __future__ import annotations

from dataclasses import dataclass

from core.storage.port import Conn
from core.timeutil import from_us


@dataclass(frozen=True, slots=True)
class EventRow:
    boot: int
    seq: int
    event_us: int
    device_us: int
    offset_min: int
    received_us: int
    type: str
    battery: int | None
    rssi: int | None
    skewed: bool


async def list_events(
    conn: Conn,
    sensor_pk: int,
    limit: int,
    before: tuple[int, int, int] | None = None,
) -> list[EventRow]:
    """Newest event time first; `before` is the (event_us, boot, seq) of the last row seen."""
    sql = (
        "SELECT boot, seq, event_us, device_us, offset_min, received_us, type, battery, rssi,"
        " skewed FROM events WHERE sensor_pk = ?"
    )
    params: list[int] = [sensor_pk]
    if before is not None:
        sql += " AND (event_us, boot, seq) < (?, ?, ?)"
        params += list(before)
    sql += " ORDER BY event_us DESC, boot DESC, seq DESC LIMIT ?"
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    return [
        EventRow(
            boot=r[0],
            seq=r[1],
            event_us=r[2],
            device_us=r[3],
            offset_min=r[4],
            received_us=r[5],
            type=r[6],
            battery=r[7],
            rssi=r[8],
            skewed=bool(r[9]),
        )
        for r in rows
    ]


async def purge_events_before(conn: Conn, cutoff_us: int, batch_sensors: int = 500) -> int:
    """Delete raw events older than `cutoff_us`, sensor by sensor (uses the time index)."""
    deleted = 0
    cutoff_day = from_us(cutoff_us).strftime("%Y-%m-%d")  # heartbeat_days.day, UTC
    async with conn.execute("SELECT sensor_pk FROM sensors ORDER BY sensor_pk") as cur:
        pks = [r[0] for r in await cur.fetchall()]
    for start in range(0, len(pks), batch_sensors):
        async with conn.transaction():
            for pk in pks[start : start + batch_sensors]:
                c = await conn.execute(
                    "DELETE FROM events WHERE sensor_pk = ? AND event_us < ?", (pk, cutoff_us)
                )
                deleted += max(c.rowcount, 0)
            await conn.executemany(
                "DELETE FROM heartbeat_days WHERE sensor_pk = ? AND day < ?",
                [(pk, cutoff_day) for pk in pks[start : start + batch_sensors]],
            )
    return deleted
