"""Alerts: their rows, lifecycle transitions (audited), timers, routines, the event clock."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from core.storage.port import Conn


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: str
    household_id: str
    sensor_id: str | None
    kind: str
    state: str
    resolution: str | None
    event_us: int
    event_offset_min: int
    last_event_us: int
    repeats: int
    reason: str
    detail: dict[str, Any]
    created_us: int
    updated_us: int
    acknowledged_us: int | None
    acknowledged_by: str | None
    escalated_us: int | None
    resolved_us: int | None
    resolved_by: str | None
    raised_us: int
    escalate_due_us: int | None
    recipients: str
    score: float | None
    segment_id: str | None
    help_us: int | None = None  # the resident answered "help"
    help_by: str | None = None


_COLS = (
    "alert_id, household_id, sensor_id, kind, state, resolution, event_us, event_offset_min,"
    " last_event_us, repeats, reason, detail, created_us, updated_us, acknowledged_us,"
    " acknowledged_by, escalated_us, resolved_us, resolved_by, raised_us, escalate_due_us,"
    " recipients, score, segment_id, help_us, help_by"
)


def _row(r: Any) -> AlertRow:
    v = list(r)
    v[11] = json.loads(v[11] or "{}")
    return AlertRow(*v)


async def insert_alert(
    conn: Conn,
    *,
    alert_id: str,
    household_id: str,
    sensor_id: str | None,
    kind: str,
    event_us: int,
    event_offset_min: int,
    reason: str,
    detail: dict[str, Any],
    now_us: int,
    raised_us: int,
    escalate_due_us: int | None,
    recipients: str,
    dedupe_key: str,
    score: float | None,
    segment_id: str | None,
    actor: str = "rules",
) -> bool:
    """Insert unless an alert with the same dedupe key exists; True when inserted."""
    async with conn.execute(
        "INSERT INTO alerts (alert_id, household_id, sensor_id, kind, state, event_us,"
        " event_offset_min, last_event_us, reason, detail, created_us, updated_us, raised_us,"
        " escalate_due_us, recipients, dedupe_key, score, segment_id)"
        " VALUES (?,?,?,?,'open',?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (dedupe_key) DO NOTHING RETURNING alert_id",
        (
            alert_id,
            household_id,
            sensor_id,
            kind,
            event_us,
            event_offset_min,
            event_us,
            reason,
            json.dumps(detail, ensure_ascii=False),
            now_us,
            now_us,
            raised_us,
            escalate_due_us,
            recipients,
            dedupe_key,
            score,
            segment_id,
        ),
    ) as cur:
        inserted = await cur.fetchone() is not None
    if inserted:
        await add_transition(
            conn, alert_id, now_us, actor, "raise", None, "open", {"reason": reason}
        )
    return inserted


_CENTRE = "'centre'"  # as an SQL literal


async def fold_into(conn: Conn, alert_id: str, event_us: int, now_us: int) -> None:
    await conn.execute(
        "UPDATE alerts SET repeats = repeats + 1,"
        f" last_event_us = {conn.dialect.greatest('last_event_us', '?')},"
        " updated_us = ? WHERE alert_id = ?",
        (event_us, now_us, alert_id),
    )


async def add_transition(
    conn: Conn,
    alert_id: str,
    at_us: int,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO alert_transitions (alert_id, at_us, actor, action, from_state, to_state,"
        " detail) VALUES (?,?,?,?,?,?,?)",
        (alert_id, at_us, actor, action, from_state, to_state, json.dumps(detail or {})),
    )


async def get_alert(conn: Conn, alert_id: str) -> AlertRow | None:
    async with conn.execute(f"SELECT {_COLS} FROM alerts WHERE alert_id = ?", (alert_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else _row(row)


async def open_alerts_for(conn: Conn, household_ids: list[str]) -> list[AlertRow]:
    if not household_ids:
        return []
    marks = ",".join("?" * len(household_ids))
    async with conn.execute(
        f"SELECT {_COLS} FROM alerts WHERE state != 'resolved' AND household_id IN ({marks})",
        household_ids,
    ) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def set_state(
    conn: Conn,
    alert: AlertRow,
    *,
    to_state: str,
    action: str,
    actor: str,
    now_us: int,
    resolution: str | None = None,
) -> None:
    await set_alert_state(
        conn, alert.alert_id, alert.state, to_state=to_state, action=action, actor=actor,
        now_us=now_us, resolution=resolution,
    )  # fmt: skip


async def set_alert_state(
    conn: Conn,
    alert_id: str,
    from_state: str,
    *,
    to_state: str,
    action: str,
    actor: str,
    now_us: int,
    resolution: str | None = None,
) -> None:
    """A lifecycle step (acknowledge, resolve, escalate, help) and its audit row."""
    if action == "acknowledge":
        await conn.execute(
            "UPDATE alerts SET state = ?, acknowledged_us = ?, acknowledged_by = ?, updated_us = ?"
            " WHERE alert_id = ?",
            (to_state, now_us, actor, now_us, alert_id),
        )
    elif action == "resolve":
        await conn.execute(
            "UPDATE alerts SET state = ?, resolution = ?, resolved_us = ?, resolved_by = ?,"
            " updated_us = ? WHERE alert_id = ?",
            (to_state, resolution, now_us, actor, now_us, alert_id),
        )
    elif action == "help":
        await conn.execute(
            "UPDATE alerts SET help_us = ?, help_by = ?, updated_us = ? WHERE alert_id = ?",
            (now_us, actor, now_us, alert_id),
        )
    elif action == "escalate":
        await conn.execute(
            "UPDATE alerts SET escalated_us = ?, updated_us = ?,"
            f" recipients = CASE WHEN {conn.dialect.contains('recipients', _CENTRE)}"
            " THEN recipients"
            " ELSE recipients || ',centre' END WHERE alert_id = ?",
            (now_us, now_us, alert_id),
        )
    await add_transition(
        conn, alert_id, now_us, actor, action, from_state, to_state,
        {"resolution": resolution} if resolution else None,
    )  # fmt: skip


async def list_alerts(
    conn: Conn,
    *,
    limit: int,
    household_id: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    before: tuple[int, str] | None = None,
    hide_kinds: Collection[str] = (),
) -> list[AlertRow]:
    sql = f"SELECT {_COLS} FROM alerts WHERE 1=1"
    params: list[Any] = []
    if hide_kinds:  # a resident never sees a duress alert
        sql += f" AND kind NOT IN ({','.join('?' * len(hide_kinds))})"
        params += sorted(hide_kinds)
    for col, value in (("household_id", household_id), ("kind", kind), ("state", state)):
        if value is not None:
            sql += f" AND {col} = ?"
            params.append(value)
    if before is not None:
        sql += " AND (created_us, alert_id) < (?, ?)"
        params += list(before)
    sql += " ORDER BY created_us DESC, alert_id DESC LIMIT ?"
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def transitions_since(
    conn: Conn,
    after_id: int,
    household_id: str | None,
    limit: int = 500,
    hide_kinds: Collection[str] = (),
) -> list[dict[str, Any]]:
    sql = (
        "SELECT t.transition_id, t.alert_id, t.at_us, t.actor, t.action, t.from_state,"
        " t.to_state, a.household_id FROM alert_transitions t JOIN alerts a USING (alert_id)"
        " WHERE t.transition_id > ?"
    )
    params: list[Any] = [after_id]
    if household_id is not None:
        sql += " AND a.household_id = ?"
        params.append(household_id)
    if hide_kinds:
        sql += f" AND a.kind NOT IN ({','.join('?' * len(hide_kinds))})"
        params += sorted(hide_kinds)
    sql += " ORDER BY t.transition_id LIMIT ?"
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        return [dict(r) for r in await cur.fetchall()]


async def last_transition_id(conn: Conn) -> int:
    async with conn.execute("SELECT COALESCE(MAX(transition_id), 0) FROM alert_transitions") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def alert_history(conn: Conn, alert_id: str) -> list[dict[str, Any]]:
    async with conn.execute(
        "SELECT at_us, actor, action, from_state, to_state, detail FROM alert_transitions"
        " WHERE alert_id = ? ORDER BY transition_id",
        (alert_id,),
    ) as cur:
        return [
            {"at_us": r[0], "actor": r[1], "action": r[2], "from_state": r[3], "to_state": r[4],
             "detail": json.loads(r[5] or "{}")}
            for r in await cur.fetchall()
        ]  # fmt: skip


async def count_alerts(conn: Conn) -> dict[tuple[str, str], int]:
    async with conn.execute("SELECT kind, state, COUNT(*) FROM alerts GROUP BY kind, state") as cur:
        return {(r[0], r[1]): r[2] for r in await cur.fetchall()}
