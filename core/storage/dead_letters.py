"""The dead-letter store: every message that broke the contract, with its reason.

Bounded two ways: a rate cap per source and window (the decision is pure, in
core/dead_letter_cap.py: beyond the cap a dead letter is only counted in its tally row) and
a retention (`purge_dead_letters_before`, run daily by the scheduler)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from core.dead_letter_cap import (
    CapDecision,
    DeadLetterCap,
    WindowKey,
    decide_dead_letters,
    window_key,
)
from core.ingest import DEAD_LETTER_PAYLOAD_KEEP, DeadLetter
from core.storage.port import Conn

DETAIL_KEEP = 500  # characters of a reason's detail stored (a detail may quote a 64 KiB topic)
_KEYS_PER_QUERY = 400  # (source, window) pairs per lookup, 2 bound values each
PURGE_BATCH_ROWS = 2000  # rows deleted per short write transaction


async def store_dead_letters(
    conn: Conn, dead: Sequence[DeadLetter], policy: DeadLetterCap
) -> CapDecision:
    """Inside the caller's write transaction: store what the cap lets through (payload cut to
    4 KiB), add every dead letter to its (source, window) tally."""
    if not dead:
        return CapDecision()
    keys = list(dict.fromkeys(window_key(d, policy.window_s) for d in dead))
    stored_so_far = await _stored_so_far(conn, keys)
    decision = decide_dead_letters(dead, stored_so_far, policy)
    if decision.store:
        await conn.executemany(
            "INSERT INTO dead_letters (received_us, topic, sensor_id, reason, detail,"
            " payload, payload_size) VALUES (?,?,?,?,?,?,?)",
            [
                (
                    d.received_us,
                    d.topic,
                    d.sensor_id,
                    d.reason,
                    d.detail[:DETAIL_KEEP],
                    d.payload[:DEAD_LETTER_PAYLOAD_KEEP],
                    d.payload_size,
                )
                for d in decision.store
            ],
        )
    await conn.executemany(
        "INSERT INTO dead_letter_tallies AS t (source, window_start_us, sensor_id, topic, stored,"
        " suppressed, first_us, last_us, last_reason, last_detail) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (source, window_start_us) DO UPDATE SET"
        " stored = t.stored + excluded.stored,"
        " suppressed = t.suppressed + excluded.suppressed,"
        f" first_us = {conn.dialect.least('t.first_us', 'excluded.first_us')},"
        f" last_us = {conn.dialect.greatest('t.last_us', 'excluded.last_us')},"
        " topic = CASE WHEN excluded.last_us >= t.last_us THEN excluded.topic ELSE t.topic END,"
        " last_reason = CASE WHEN excluded.last_us >= t.last_us"
        "  THEN excluded.last_reason ELSE t.last_reason END,"
        " last_detail = CASE WHEN excluded.last_us >= t.last_us"
        "  THEN excluded.last_detail ELSE t.last_detail END",
        [
            (
                t.source,
                t.window_start_us,
                t.sensor_id,
                t.topic,
                t.stored,
                t.suppressed,
                t.first_us,
                t.last_us,
                t.last_reason,
                t.last_detail[:DETAIL_KEEP],
            )
            for t in decision.tallies.values()
        ],
    )
    return decision


async def _stored_so_far(conn: Conn, keys: Sequence[WindowKey]) -> dict[WindowKey, int]:
    out: dict[WindowKey, int] = {}
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        values = ",".join(["(?,?)"] * len(chunk))
        params = [v for key in chunk for v in key]
        async with conn.execute(  # a join on the primary key (a row-value IN would scan)
            f"WITH k(source, window_start_us) AS (VALUES {values})"
            " SELECT t.source, t.window_start_us, t.stored FROM k CROSS JOIN"
            " dead_letter_tallies t ON t.source = k.source"
            " AND t.window_start_us = k.window_start_us",
            params,
        ) as cur:
            for r in await cur.fetchall():
                out[(r[0], int(r[1]))] = int(r[2])
    return out


async def purge_dead_letters_before(
    conn: Conn, cutoff_us: int, batch_rows: int = PURGE_BATCH_ROWS
) -> dict[str, int]:
    """Delete dead letters received before `cutoff_us`, and tallies whose last dead letter
    is older, `batch_rows` at a time, each batch its own short transaction, so the bridge's
    ingest transactions get the database in between. `conn` must be outside a transaction."""
    deleted = {"dead_letters": 0, "tallies": 0}
    for name, sql, params in (
        (
            "dead_letters",
            "DELETE FROM dead_letters WHERE dead_letter_id IN (SELECT dead_letter_id"
            " FROM dead_letters WHERE received_us < ? ORDER BY received_us LIMIT ?)",
            (cutoff_us, batch_rows),
        ),
        (
            "tallies",
            "DELETE FROM dead_letter_tallies WHERE (source, window_start_us) IN"
            " (SELECT source, window_start_us FROM dead_letter_tallies"
            "  WHERE window_start_us < ? AND last_us < ? LIMIT ?)",
            (cutoff_us, cutoff_us, batch_rows),
        ),
    ):
        while True:
            async with conn.transaction():
                cur = await conn.execute(sql, params)
                n = max(cur.rowcount, 0)
            deleted[name] += n
            if n < batch_rows:
                break
            await asyncio.sleep(0.01)  # let a waiting writer (the bridge) take the lock
    return deleted


async def list_dead_letters(
    conn: Conn,
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


async def count_dead_letters(conn: Conn) -> dict[str, int]:
    async with conn.execute("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason") as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}


async def list_suppressed(
    conn: Conn, limit: int, sensor_id: str | None = None
) -> list[dict[str, Any]]:
    """The newest tallies in which dead letters were only counted, not stored."""
    sql = (
        "SELECT source, sensor_id, topic, window_start_us, stored, suppressed, first_us,"
        " last_us, last_reason, last_detail FROM dead_letter_tallies WHERE suppressed > 0"
    )
    params: list[Any] = []
    if sensor_id:
        sql += " AND sensor_id = ?"
        params.append(sensor_id)
    sql += " ORDER BY last_us DESC LIMIT ?"
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    keys = (
        "source", "sensor_id", "topic", "window_start_us", "stored", "suppressed", "first_us",
        "last_us", "last_reason", "last_detail",
    )  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def count_suppressed(conn: Conn) -> int:
    """Dead letters only counted (over the cap), over every tally still kept."""
    async with conn.execute(
        "SELECT COALESCE(SUM(suppressed), 0) FROM dead_letter_tallies WHERE suppressed > 0"
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0
