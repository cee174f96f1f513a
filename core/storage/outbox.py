"""The transactional outbox: notifications are inserted in the same transaction as the
alert change that causes them; the dispatcher sends them and logs every attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.storage import wake
from core.storage.port import Conn


@dataclass(frozen=True, slots=True)
class Notification:
    notification_id: str
    alert_id: str
    recipient: str
    household_id: str | None
    url: str | None
    body: str
    attempts: int
    created_us: int
    next_attempt_us: int = 0


async def enqueue(
    conn: Conn,
    *,
    notification_id: str,
    alert_id: str,
    recipient: str,
    household_id: str | None,
    url: str | None,
    body: str,
    now_us: int,
) -> None:
    await conn.execute(
        "INSERT INTO outbox (notification_id, alert_id, recipient, household_id, url, body,"
        " state, created_us, next_attempt_us) VALUES (?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT (notification_id) DO NOTHING",
        (notification_id, alert_id, recipient, household_id, url, body,
         "pending" if url else "no_endpoint", now_us, now_us),
    )  # fmt: skip
    if url:
        wake.mark(conn)


async def pending_after(conn: Conn, after_rowid: int, limit: int) -> list[tuple[int, Notification]]:
    """Pending notifications inserted after `after_rowid`, in insertion order: the
    dispatcher keeps its queue in memory and reads only what is new."""
    async with conn.execute(
        "SELECT rowid, notification_id, alert_id, recipient, household_id, url, body, attempts,"
        " created_us, next_attempt_us FROM outbox WHERE rowid > ? AND state = 'pending'"
        " ORDER BY rowid LIMIT ?",
        (after_rowid, limit),
    ) as cur:
        return [(r[0], Notification(*r[1:])) for r in await cur.fetchall()]


async def current_target(conn: Conn, notification_id: str) -> tuple[str | None, str | None] | None:
    """(url, household webhook secret) of a still-pending notification, read just before
    an attempt (unenrolment deletes or blanks rows); None when it is no longer pending."""
    async with conn.execute(
        "SELECT o.url, h.webhook_secret FROM outbox o"
        " LEFT JOIN households h ON h.household_id = o.household_id"
        " WHERE o.notification_id = ? AND o.state = 'pending'",
        (notification_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else (row[0], row[1])


async def record_attempt(
    conn: Conn,
    n: Notification,
    *,
    now_us: int,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
    delivered: bool,
    next_attempt_us: int | None,
) -> None:
    attempt = n.attempts + 1
    await conn.execute(
        "INSERT INTO deliveries (notification_id, attempt, at_us, status_code, error, duration_ms)"
        " VALUES (?,?,?,?,?,?)",
        (n.notification_id, attempt, now_us, status_code, error, duration_ms),
    )
    if delivered:
        await conn.execute(
            "UPDATE outbox SET state = 'delivered', attempts = ?, delivered_us = ?,"
            " last_error = NULL WHERE notification_id = ?",
            (attempt, now_us, n.notification_id),
        )
    elif next_attempt_us is None:
        await conn.execute(
            "UPDATE outbox SET state = 'failed', attempts = ?, last_error = ?"
            " WHERE notification_id = ?",
            (attempt, error, n.notification_id),
        )
    else:
        await conn.execute(
            "UPDATE outbox SET attempts = ?, next_attempt_us = ?, last_error = ?"
            " WHERE notification_id = ?",
            (attempt, next_attempt_us, error, n.notification_id),
        )


async def give_up(conn: Conn, notification_id: str, reason: str) -> None:
    """Fail a pending notification without another attempt (past its give-up age)."""
    await conn.execute(
        "UPDATE outbox SET state = 'failed', last_error = ? WHERE notification_id = ?"
        " AND state = 'pending'",
        (reason, notification_id),
    )


async def list_notifications(
    conn: Conn,
    limit: int,
    alert_id: str | None = None,
    state: str | None = None,
) -> list[dict[str, Any]]:
    sql = (
        "SELECT notification_id, alert_id, recipient, household_id, url, state, attempts,"
        " created_us, next_attempt_us, delivered_us, last_error FROM outbox WHERE 1=1"
    )
    params: list[Any] = []
    if alert_id:
        sql += " AND alert_id = ?"
        params.append(alert_id)
    if state:
        sql += " AND state = ?"
        params.append(state)
    sql += " ORDER BY created_us DESC LIMIT ?"
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        rows = [dict(r) for r in await cur.fetchall()]
    for row in rows:
        async with conn.execute(
            "SELECT attempt, at_us, status_code, error, duration_ms FROM deliveries"
            " WHERE notification_id = ? ORDER BY attempt",
            (row["notification_id"],),
        ) as cur:
            row["attempts_log"] = [
                {"attempt": a, "at_us": t, "status_code": s, "error": e, "duration_ms": d}
                for a, t, s, e, d in await cur.fetchall()
            ]
    return rows


async def count_notifications(conn: Conn) -> dict[str, int]:
    async with conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state") as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}
