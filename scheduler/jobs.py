"""The periodic jobs. Each takes `now` from the scheduler and does its I/O through
core.storage; one scheduler process per deployment runs them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from core.models import TimeMode
from core.settings import Settings
from core.storage.db import Database
from core.storage.events import purge_events_before
from core.storage.sensors import mark_silent_sensors_offline
from core.timeutil import to_us

log = logging.getLogger("ansim.scheduler")

MISSED_HEARTBEATS = 3
OFFLINE_GRACE_S = 60


async def offline_sweep(db: Database, settings: Settings, now: datetime) -> list[str]:
    """Sensors silent for 3 heartbeat intervals (+ a grace) are offline. Live mode only:
    in replay mode silence is judged on the event clock by the rules."""
    if settings.time_mode is not TimeMode.LIVE:
        return []
    silent_s = MISSED_HEARTBEATS * settings.heartbeat_interval_s + OFFLINE_GRACE_S
    cutoff = now - timedelta(seconds=silent_s)
    async with db.write() as conn:
        gone = await mark_silent_sensors_offline(conn, to_us(cutoff), to_us(now))
    if gone:
        log.info("sensors went silent", extra={"count": len(gone), "sensors": gone[:20]})
    return gone


async def retention_purge(db: Database, settings: Settings, now: datetime) -> int:
    """Raw door events older than the retention period are deleted."""
    cutoff = now - timedelta(days=settings.retention_days)
    deleted = await _purge(db, to_us(cutoff))
    log.info("retention purge", extra={"deleted": deleted, "cutoff": cutoff.isoformat()})
    return deleted


async def _purge(db: Database, cutoff_us: int) -> int:
    async with db.writer_session() as conn:
        return await purge_events_before(conn, cutoff_us)
