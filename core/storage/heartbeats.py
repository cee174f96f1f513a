"""Service heartbeats: each long-running service (bridge, notifier, scheduler) rewrites its
row every few seconds; `/healthz` reads them. Times come from the caller's clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from core.storage.port import Conn

log = logging.getLogger("ansim.heartbeat")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    part: str
    at_us: int
    pid: int
    detail: str | None


async def beat(conn: Conn, part: str, at_us: int, pid: int, detail: str | None = None) -> None:
    """Upsert the part's heartbeat (autocommit: the connection has no open transaction)."""
    await conn.execute(
        "INSERT INTO service_heartbeats (part, at_us, pid, detail) VALUES (?,?,?,?)"
        " ON CONFLICT(part) DO UPDATE SET at_us = excluded.at_us, pid = excluded.pid,"
        " detail = excluded.detail",
        (part, at_us, pid, detail),
    )


async def read_all(conn: Conn) -> dict[str, Heartbeat]:
    async with conn.execute("SELECT part, at_us, pid, detail FROM service_heartbeats") as cur:
        rows = await cur.fetchall()
    return {r[0]: Heartbeat(r[0], int(r[1]), int(r[2]), r[3]) for r in rows}


async def beat_forever(
    conn: Conn,
    part: str,
    every_s: float,
    clock_us: Callable[[], int],
    stop: asyncio.Event,
    detail: Callable[[], str | None] = lambda: None,
) -> None:
    """Write the heartbeat now and every `every_s` until `stop`; runs on the service's own
    event loop, so a stalled (or SIGSTOPped) service goes silent. A failed write is logged
    and retried at the next beat."""
    pid = os.getpid()
    while not stop.is_set():
        try:
            await beat(conn, part, clock_us(), pid, detail())
        except Exception as exc:  # a locked/full database must not kill the service
            log.warning("heartbeat write failed", extra={"part": part, "error": repr(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
