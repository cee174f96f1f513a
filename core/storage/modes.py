"""Arming modes: the current mode on the household row, every change in mode_changes."""

from __future__ import annotations

from core.replay_clock import replay_mode_at
from core.storage.port import Conn


async def set_mode(
    conn: Conn,
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


async def mode_history(conn: Conn, household_id: str, limit: int) -> list[tuple[str, int, str]]:
    async with conn.execute(
        "SELECT mode, at_us, actor FROM mode_changes WHERE household_id = ?"
        " ORDER BY mode_change_id DESC LIMIT ?",
        (household_id, limit),
    ) as cur:
        return [(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def replay_mode_time(conn: Conn, household_id: str) -> int:
    """Replay mode, a mode change without `at`: on the event clock, right after the
    household's latest stored event and mode change (`core.replay_clock.replay_mode_at`)."""
    async with conn.execute(
        "SELECT (SELECT MAX(e.event_us) FROM events e JOIN sensors s ON s.sensor_pk = e.sensor_pk"
        " WHERE s.household_id = ?), (SELECT MAX(at_us) FROM mode_changes WHERE household_id = ?)",
        (household_id, household_id),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return replay_mode_at(row[0], row[1])
