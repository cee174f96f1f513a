"""Leases: a named row in `locks` held by one holder until it expires, so that two
processes never do the same exclusive work at once (the grade recompute)."""

from __future__ import annotations

from core.storage.port import Conn, Reader

# the lease the leading scheduler holds (scheduler/leader.py); read by the API's jobs view
SCHEDULER_LEASE = "scheduler"


async def acquire_lock(
    conn: Conn, name: str, holder: str, now_us: int, lease_us: int
) -> tuple[bool, str, int]:
    """Take the named lease if free or expired (inside a write transaction).
    Returns (taken, current holder, since)."""
    await conn.execute(
        "INSERT INTO locks (name, holder, acquired_us, expires_us) VALUES (?,?,?,?)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
        " acquired_us = excluded.acquired_us, expires_us = excluded.expires_us"
        " WHERE locks.expires_us < excluded.acquired_us",
        (name, holder, now_us, now_us + lease_us),
    )
    async with conn.execute("SELECT holder, acquired_us FROM locks WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    return (row[0] == holder and int(row[1]) == now_us), str(row[0]), int(row[1])


async def release_lock(conn: Conn, name: str, holder: str) -> None:
    await conn.execute("DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))


async def renew_lock(conn: Conn, name: str, holder: str, now_us: int, lease_us: int) -> bool:
    """Extend the named lease while `holder` still holds it and it has not expired (inside a
    write transaction). False: it was lost (expired and taken, or released)."""
    await conn.execute(
        "UPDATE locks SET expires_us = ? WHERE name = ? AND holder = ? AND expires_us >= ?",
        (now_us + lease_us, name, holder, now_us),
    )
    async with conn.execute("SELECT holder, expires_us FROM locks WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    return row is not None and row[0] == holder and int(row[1]) == now_us + lease_us


async def lock_holder(conn: Conn | Reader, name: str, now_us: int) -> str | None:
    """Who holds the named lease now (None: nobody, or it expired)."""
    async with conn.execute(
        "SELECT holder FROM locks WHERE name = ? AND expires_us >= ?", (name, now_us)
    ) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None
