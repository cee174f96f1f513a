"""The audit trail: who did what, when."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite


async def record(
    conn: aiosqlite.Connection,
    now_us: int,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at_us, actor, action, target, detail) VALUES (?,?,?,?,?)",
        (now_us, actor, action, target, json.dumps(detail or {}, ensure_ascii=False)),
    )


async def list_entries(
    conn: aiosqlite.Connection, limit: int, before_id: int | None = None
) -> list[dict[str, Any]]:
    sql = "SELECT audit_id, at_us, actor, action, target, detail FROM audit_log"
    params: list[Any] = []
    if before_id is not None:
        sql += " WHERE audit_id < ?"
        params.append(before_id)
    sql += " ORDER BY audit_id DESC LIMIT ?"
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    return [
        {
            "audit_id": r[0],
            "at_us": r[1],
            "actor": r[2],
            "action": r[3],
            "target": r[4],
            "detail": json.loads(r[5] or "{}"),
        }
        for r in rows
    ]
