"""The dead-letter store: every message that broke the contract, with its reason."""

from __future__ import annotations

from typing import Any

import aiosqlite


async def list_dead_letters(
    conn: aiosqlite.Connection,
    limit: int,
    reason: str | None = None,
    sensor_id: str | None = None,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    sql = (
        "SELECT dead_letter_id, received_us, topic, sensor_id, reason, detail, payload,"
        " payload_size FROM dead_letters WHERE 1=1"
    )
    params: list[Any] = []
    if reason:
        sql += " AND reason = ?"
        params.append(reason)
    if sensor_id:
        sql += " AND sensor_id = ?"
        params.append(sensor_id)
    if before_id is not None:
        sql += " AND dead_letter_id < ?"
        params.append(before_id)
    sql += " ORDER BY dead_letter_id DESC LIMIT ?"
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    return [
        {
            "dead_letter_id": r[0],
            "received_us": r[1],
            "topic": r[2],
            "sensor_id": r[3],
            "reason": r[4],
            "detail": r[5],
            "payload": bytes(r[6]).decode("utf-8", errors="replace"),
            "payload_size": r[7],
        }
        for r in rows
    ]


async def count_dead_letters(conn: aiosqlite.Connection) -> dict[str, int]:
    async with conn.execute("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason") as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}
