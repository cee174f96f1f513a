"""Arming modes: the current mode on the household row, every change in mode_changes."""

from __future__ import annotations

import aiosqlite


async def set_mode(
    conn: aiosqlite.Connection,
    household_id: str,
    mode: str,
    at_us: int,
    recorded_us: int,
    actor: str,
) -> bool:
    """Record the change; False when the household already was in that mode."""
    async with conn.execute(
        "SELECT mode FROM households WHERE household_id = ?", (household_id,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return False
    await conn.execute(
        "INSERT INTO mode_changes (household_id, mode, at_us, recorded_us, actor)"
        " VALUES (?,?,?,?,?)",
        (household_id, mode, at_us, recorded_us, actor),
    )
    if row[0] == mode:
        return False
    await conn.execute(
        "UPDATE households SET mode = ?, mode_since_us = ? WHERE household_id = ?",
        (mode, at_us, household_id),
    )
    return True


async def mode_history(
    conn: aiosqlite.Connection, household_id: str, limit: int
) -> list[tuple[str, int, str]]:
    async with conn.execute(
        "SELECT mode, at_us, actor FROM mode_changes WHERE household_id = ?"
        " ORDER BY mode_change_id DESC LIMIT ?",
        (household_id, limit),
    ) as cur:
        return [(r[0], r[1], r[2]) for r in await cur.fetchall()]
