"""The periodic jobs. Each takes `now` from the scheduler and does its I/O through
core.storage; one scheduler process per deployment runs them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.broker.dynsec import DynsecAdmin
from core.broker.mosquitto import load_or_create_credentials
from core.engine import TickInput
from core.geo import SegmentIndex
from core.models import TimeMode
from core.sensor_broker import sweep
from core.settings import Settings
from core.storage import grade_runs, segment_import
from core.storage.alert_state import build_config, evaluate, households_due
from core.storage.dead_letters import purge_dead_letters_before
from core.storage.events import purge_events_before
from core.storage.port import Store
from core.storage.sensors import broker_work
from core.timeutil import to_us

log = logging.getLogger("ansim.scheduler")

MISSED_HEARTBEATS = 3


class JobSkipped(Exception):
    """The job had nothing it could do now (e.g. another recompute holds the lease)."""


async def offline_sweep(db: Store, settings: Settings, now: datetime) -> list[str]:
    """The rules' timers as a safety net (live mode): sensors silent for 3 heartbeat
    intervals (+ the grace) go offline with a `sensor_offline` alert, unacknowledged alerts
    escalate, due entry-delay / door-left-open checks fire. The bridge does the same every
    half second; this job covers a bridge that is down. Both go through the same engine in
    serialised transactions and alerts carry unique dedupe keys, so nothing is raised twice.
    In replay mode the event clock drives these, in the bridge."""
    if settings.time_mode is not TimeMode.LIVE:
        return []
    silent_s = MISSED_HEARTBEATS * settings.heartbeat_interval_s + settings.offline_grace_s
    now_us = to_us(now)
    async with db.write() as conn:
        due = await households_due(conn, now_us, now_us - int(silent_s * 1e6))
        if not due:
            return []
        done = await evaluate(conn, due, [TickInput(now)], build_config(settings), now)
    if done.raised:
        log.info("alerts raised by the sweep", extra={"alert_ids": done.raised})
    return done.raised


async def retention_purge(db: Store, settings: Settings, now: datetime) -> int:
    """Raw door events older than the retention period are deleted."""
    cutoff = now - timedelta(days=settings.retention_days)
    deleted = await _purge(db, to_us(cutoff))
    log.info("retention purge", extra={"deleted": deleted, "cutoff": cutoff.isoformat()})
    return deleted


async def _purge(db: Store, cutoff_us: int) -> int:
    async with db.writer_session() as conn:
        return await purge_events_before(conn, cutoff_us)


async def dead_letter_purge(db: Store, settings: Settings, now: datetime) -> dict[str, int]:
    """Dead letters (and the cap's tallies) older than their retention period are deleted,
    a short transaction per batch of rows so ingest is never held up for long."""
    cutoff = now - timedelta(days=settings.dead_letter_retention_days)
    async with db.writer_session() as conn:
        deleted = await purge_dead_letters_before(conn, to_us(cutoff))
    log.info("dead-letter purge", extra={**deleted, "cutoff": cutoff.isoformat()})
    return deleted


@dataclass(slots=True)
class _IndexCache:
    version: int = -1
    index: SegmentIndex | None = None


_index_cache = _IndexCache()


async def _segment_index(db: Store) -> SegmentIndex:
    """The segment index, rebuilt only when an import changed the segment set."""
    version = await segment_import.segments_version(db.reader)
    if _index_cache.index is None or _index_cache.version != version:
        version, segs = await segment_import.load_segments(db.reader)
        _index_cache.index = SegmentIndex(segs)
        _index_cache.version = version
    return _index_cache.index


async def grade_recompute(db: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    """Recompute every segment's adjusted grade (nightly, and on demand)."""
    index = await _segment_index(db)
    if len(index) == 0:
        raise JobSkipped("no segments imported yet")
    params = settings.grade_params()
    try:
        result = await grade_runs.recompute_grades(db, index, params, now, "scheduler")
    except grade_runs.RecomputeBusyError as exc:
        raise JobSkipped(str(exc)) from None
    summary = result.to_dict()
    summary.pop("params", None)
    return summary


_broker_admin: list[DynsecAdmin] = []  # the scheduler's one admin connection, made on first need


async def sensor_broker_sweep(db: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    """Completes what a crash or a broker outage left half done (core/sensor_broker.py): a
    sensor `pending` longer than ANSIM_SENSOR_PENDING_TIMEOUT_S is retired as
    `provisioning_abandoned` and its broker client deleted; a retired sensor whose broker
    client was not deleted loses it. Connects to the broker only when there is work."""
    pending, deleting = await broker_work(
        db.reader, to_us(now) - int(settings.sensor_pending_timeout_s * 1e6)
    )
    if not pending and not deleting:
        return {"abandoned": [], "deleted": [], "failed": {}}
    if not _broker_admin:
        creds = load_or_create_credentials(settings)
        admin = DynsecAdmin(
            settings.mqtt_host, settings.mqtt_port, creds.admin_username, creds.admin_password,
            client_id=f"{creds.admin_username}-scheduler",
        )  # fmt: skip
        await asyncio.to_thread(admin.start)  # BrokerUnavailable: this run is an error
        _broker_admin.append(admin)
    result = await sweep(db, _broker_admin[0], settings.sensor_pending_timeout_s)
    return result.to_dict()


def close_broker_admin() -> None:
    while _broker_admin:
        _broker_admin.pop().stop()
