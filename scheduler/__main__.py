"""`python -m scheduler`: the deployment's APScheduler (3.x, asyncio); of several running,
one leads and runs the jobs, the others stand by (scheduler/leader.py).

Every run — scheduled, caught up after a missed fire, or requested by an operator through
`POST /api/v1/scheduler/jobs/{job_id}/run` — is recorded in `job_runs`, and each job's
next fire time in `scheduler_jobs`, so the API can list them.

Misfires: each job coalesces missed fires into one run and has a grace time; and since
the in-memory job store forgets everything on a restart, at start-up a daily job whose
last successful run is older than its latest scheduled fire time runs once at once
(trigger `catch_up`). A job never runs twice at once in this process (a second attempt is
recorded as `skipped`); the grade recompute is also guarded across processes by the
database lease that the API's recompute takes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import Counter, Gauge
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.jsonlog import configure_logging
from core.service import start_metrics, stop_on_signals, wall_us
from core.settings import Settings
from core.storage import heartbeats
from core.storage import jobs as job_store
from core.storage.db import connect, open_store
from core.storage.port import Conn, Store
from core.timeutil import to_us
from scheduler import jobs
from scheduler.leader import Leadership

log = logging.getLogger("ansim.scheduler")

RUNS = Counter("ansim_scheduler_job_runs_total", "Job runs by outcome", ["job", "outcome"])
LAST_OK = Gauge("ansim_scheduler_job_last_success_timestamp", "Last successful run", ["job"])
LEADER = Gauge("ansim_scheduler_leader", "1 while this scheduler holds the lease and runs the jobs")

JobFn = Callable[[Store, Settings, datetime], Awaitable[Any]]


class SchedulerExtras(BaseSettings):
    """`ANSIM_SCHEDULER_REQUEST_POLL_S`: how often on-demand run requests are picked up."""

    model_config = SettingsConfigDict(env_prefix="ANSIM_SCHEDULER_", extra="ignore")
    request_poll_s: float = 2.0


@dataclass(frozen=True, slots=True)
class JobSpec:
    job_id: str
    description: str
    fn: JobFn
    trigger: CronTrigger | IntervalTrigger
    schedule: str
    misfire_grace_s: int
    daily: bool


def _summarise(result: Any) -> Any:
    if isinstance(result, list):
        return {"count": len(result), "items": result[:20]}
    if isinstance(result, int | float | str | dict) or result is None:
        return result
    return str(result)


class Runner:
    """Runs jobs and records every run; one run per job at a time."""

    def __init__(self, db: Store, settings: Settings, specs: list[JobSpec]) -> None:
        self.db = db
        self.settings = settings
        self.specs = {s.job_id: s for s in specs}
        self.running: set[str] = set()
        self.sched: AsyncIOScheduler | None = None
        self.tasks: set[asyncio.Task[str]] = set()

    def spawn(self, coro: Coroutine[Any, Any, str]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(
        self,
        job_id: str,
        trigger: str,
        requested_by: str | None = None,
        request_id: int | None = None,
    ) -> str:
        spec = self.specs[job_id]
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            run_id = await job_store.start_run(
                conn, job_id, trigger, requested_by, to_us(now), request_id
            )
        if job_id in self.running:
            await self._finish(run_id, job_id, "skipped", None, "already running")
            log.info("job skipped", extra={"job": job_id, "trigger": trigger, "reason": "running"})
            return "skipped"
        self.running.add(job_id)
        started = time.perf_counter()
        try:
            result = await spec.fn(self.db, self.settings, now)
        except jobs.JobSkipped as exc:
            await self._finish(run_id, job_id, "skipped", None, str(exc))
            log.info("job skipped", extra={"job": job_id, "trigger": trigger, "reason": str(exc)})
            return "skipped"
        except Exception as exc:
            log.exception("job failed", extra={"job": job_id})
            await self._finish(run_id, job_id, "error", None, repr(exc)[:500])
            return "error"
        finally:
            self.running.discard(job_id)
        took = round(time.perf_counter() - started, 3)
        summary = _summarise(result)
        await self._finish(run_id, job_id, "ok", summary, None)
        LAST_OK.labels(job_id).set(time.time())
        log.info(
            "job done",
            extra={
                "job": job_id,
                "trigger": trigger,
                "outcome": "ok",
                "seconds": took,
                "result": json.dumps(summary, default=str)[:300],
            },
        )
        return "ok"

    async def _finish(
        self, run_id: int, job_id: str, outcome: str, result: Any, error: str | None
    ) -> None:
        RUNS.labels(job_id, outcome).inc()
        now_us = time.time_ns() // 1000
        next_us = self._next_run_us(job_id)
        async with self.db.write() as conn:
            await job_store.finish_run(conn, run_id, outcome, now_us, result, error)
            await job_store.set_next_run(conn, job_id, next_us, now_us)

    def _next_run_us(self, job_id: str) -> int | None:
        job = self.sched.get_job(job_id) if self.sched else None
        nxt = getattr(job, "next_run_time", None) if job else None
        return to_us(nxt) if nxt else None

    def scheduled(self, job_id: str) -> Callable[[], Awaitable[None]]:
        async def fire() -> None:
            await self.run(job_id, "schedule")

        return fire

    async def register(self) -> None:
        now_us = time.time_ns() // 1000
        async with self.db.write() as conn:
            for spec in self.specs.values():
                await job_store.upsert_job(
                    conn, spec.job_id, spec.description, spec.schedule,
                    self._next_run_us(spec.job_id), now_us,
                )  # fmt: skip

    async def catch_up(self, now: datetime) -> list[str]:
        """Daily jobs whose last success predates their latest scheduled fire: run once."""
        due = []
        for spec in self.specs.values():
            if not spec.daily:
                continue
            last_fire = _previous_fire(spec.trigger, now)
            last_ok = await job_store.last_success_us(self.db.reader, spec.job_id)
            if last_fire is not None and (last_ok is None or last_ok < to_us(last_fire)):
                due.append(spec.job_id)
        return due

    async def poll_requests(self) -> None:
        async with self.db.write() as conn:
            requests = await job_store.take_requests(conn, time.time_ns() // 1000)
        for request_id, job_id, by in requests:
            log.info(
                "run request picked up",
                extra={"request_id": request_id, "job": job_id, "requested_by": by},
            )
            if job_id not in self.specs:
                async with self.db.write() as conn:
                    run_id = await job_store.start_run(
                        conn, job_id, "request", by, time.time_ns() // 1000, request_id
                    )
                await self._finish(run_id, job_id, "error", None, "this scheduler has no such job")
                continue
            self.spawn(self.run(job_id, "request", by, request_id))


def _previous_fire(trigger: CronTrigger | IntervalTrigger, now: datetime) -> datetime | None:
    """The latest fire time of a daily cron trigger at or before `now` (within 2 days)."""
    start = now - timedelta(days=2)
    last = None
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= now:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def build_specs(settings: Settings) -> list[JobSpec]:
    zone = ZoneInfo(settings.timezone)
    h, m = settings.grade_recompute_hour, settings.grade_recompute_minute
    return [
        JobSpec("grade_recompute", "recompute the adjusted segment grades",
                jobs.grade_recompute, CronTrigger(hour=h, minute=m, timezone=zone),
                f"daily {h:02d}:{m:02d} {settings.timezone}", 6 * 3600, True),
        JobSpec("retention_purge",
                f"delete raw door events older than {settings.retention_days} days",
                jobs.retention_purge, CronTrigger(hour=3, minute=30, timezone=zone),
                f"daily 03:30 {settings.timezone}", 6 * 3600, True),
        JobSpec("dead_letter_purge",
                f"delete dead letters older than {settings.dead_letter_retention_days} days",
                jobs.dead_letter_purge, CronTrigger(hour=3, minute=45, timezone=zone),
                f"daily 03:45 {settings.timezone}", 6 * 3600, True),
        JobSpec("sensor_broker_sweep",
                "complete half-done sensor provisioning/retirement on the broker",
                jobs.sensor_broker_sweep,
                IntervalTrigger(seconds=settings.sensor_broker_sweep_interval_s, timezone=zone),
                f"every {settings.sensor_broker_sweep_interval_s} s", 30, False),
        JobSpec("offline_sweep", "silent sensors, escalations and due timers (safety net)",
                jobs.offline_sweep,
                IntervalTrigger(seconds=settings.offline_sweep_interval_s, timezone=zone),
                f"every {settings.offline_sweep_interval_s} s", 30, False),
    ]  # fmt: skip


async def main_async(settings: Settings) -> int:
    # the metrics port first: a port held by another program is a clean exit 2 before the
    # database is opened (aiosqlite's non-daemon thread would keep a failed process alive)
    if not start_metrics(settings.scheduler_metrics_port, settings.http_host, log):
        return 2
    stop = stop_on_signals()
    db = await open_store(settings, "ansim-scheduler")
    try:
        hb_conn = await connect(settings, "ansim-scheduler")
        try:
            await _lead_and_serve(db, hb_conn, settings, stop)
        finally:
            await hb_conn.close()
    finally:
        jobs.close_broker_admin()
        await db.close()
    log.info("scheduler stopped")
    return 0


async def _lead_and_serve(
    db: Store, hb_conn: Conn, settings: Settings, stop: asyncio.Event
) -> None:
    """Stand by until this scheduler leads, run the jobs while it does, stand by again if
    it loses the lease (scheduler/leader.py). Only the leader writes the `scheduler`
    heartbeat, naming itself."""
    me = settings.instance
    lead = Leadership(db, me, settings.scheduler_lease_s, settings.scheduler_renew_s)
    detail = json.dumps({"leader": me})
    LEADER.set(0)
    while await lead.acquire(stop):
        LEADER.set(1)
        until = asyncio.Event()

        async def end_on(event: asyncio.Event, until: asyncio.Event = until) -> None:
            await event.wait()
            until.set()

        watchers = [asyncio.create_task(end_on(stop)), asyncio.create_task(end_on(lead.lost))]
        keeper = asyncio.create_task(lead.keep(until))
        beats = asyncio.create_task(
            heartbeats.beat_forever(
                hb_conn, "scheduler", settings.heartbeat_write_s, wall_us, until, lambda: detail
            )
        )
        try:
            await _serve(db, settings, until)
        finally:
            for task in (beats, keeper, *watchers):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            LEADER.set(0)
        if stop.is_set():
            with contextlib.suppress(Exception):
                stopped = json.dumps({"state": "stopped", "leader": me})
                await heartbeats.beat(hb_conn, "scheduler", wall_us(), 0, stopped)
            await lead.release()  # a standby takes over at its next try
            return
        log.warning("no longer leading; standing by", extra={"holder": me})


async def _serve(db: Store, settings: Settings, stop: asyncio.Event) -> None:
    extras = SchedulerExtras()
    runner = Runner(db, settings, build_specs(settings))
    sched = AsyncIOScheduler(timezone=settings.timezone)
    runner.sched = sched
    for spec in runner.specs.values():
        sched.add_job(
            runner.scheduled(spec.job_id),
            spec.trigger,
            id=spec.job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=spec.misfire_grace_s,
        )

    async def poll_forever() -> None:
        # our own loop, not an APScheduler interval job: a poll slowed down by a loaded
        # machine is simply late, never a "skipped: maximum number of running instances"
        # warning every 2 s
        while not stop.is_set():
            try:
                await runner.poll_requests()
            except Exception:
                log.exception("polling run requests failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), extras.request_poll_s)

    sched.start()
    poller = asyncio.create_task(poll_forever())
    try:
        await runner.register()
        for job_id in await runner.catch_up(datetime.now(UTC)):
            log.info("catching up a missed run", extra={"job": job_id})
            runner.spawn(runner.run(job_id, "catch_up"))
        log.info("scheduler started", extra={"jobs": json.dumps(sorted(runner.specs))})
        await stop.wait()
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        sched.shutdown(wait=False)
        for _ in range(100):  # let a running job record its end
            if not runner.running:
                break
            await asyncio.sleep(0.1)


def main() -> None:
    settings = Settings()
    configure_logging("scheduler", settings.log_level)
    # APScheduler logs "Running job" / "executed successfully" at INFO for every fire,
    # the request poll included (every 2 s): only its warnings; the Runner logs what changes
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    try:
        code = asyncio.run(main_async(settings))
    except Exception:
        log.exception("scheduler failed")
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
