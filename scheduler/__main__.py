"""`python -m scheduler`: the deployment's one APScheduler (3.x, asyncio)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import Counter, Gauge, start_http_server

from core.jsonlog import configure_logging
from core.settings import Settings
from core.storage.db import Database
from scheduler import jobs

log = logging.getLogger("ansim.scheduler")

RUNS = Counter("ansim_scheduler_job_runs_total", "Job runs by outcome", ["job", "outcome"])
LAST_OK = Gauge("ansim_scheduler_job_last_success_timestamp", "Last successful run", ["job"])


def _wrap(
    name: str,
    fn: Callable[[Database, Settings, datetime], Awaitable[Any]],
    db: Database,
    settings: Settings,
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        started = time.perf_counter()
        try:
            result = await fn(db, settings, datetime.now(UTC))
        except Exception:
            RUNS.labels(name, "error").inc()
            log.exception("job failed", extra={"job": name})
            return
        RUNS.labels(name, "ok").inc()
        LAST_OK.labels(name).set(time.time())
        took = round(time.perf_counter() - started, 3)
        count = (
            result if isinstance(result, int) else len(result) if isinstance(result, list) else None
        )
        log.info("job done", extra={"job": name, "seconds": took, "result": count})

    return run


async def main_async(settings: Settings) -> None:
    db = await Database.open(settings.database)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.scheduler_metrics_port:
        start_http_server(settings.scheduler_metrics_port, addr=settings.http_host)
    sched = AsyncIOScheduler(timezone=settings.timezone)
    sched.add_job(
        _wrap("offline_sweep", jobs.offline_sweep, db, settings),
        "interval",
        seconds=settings.offline_sweep_interval_s,
        id="offline_sweep",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=30,
    )
    sched.add_job(
        _wrap("retention_purge", jobs.retention_purge, db, settings),
        "cron",
        hour=3,
        minute=30,
        id="retention_purge",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
    sched.start()
    log.info("scheduler started", extra={"jobs": [j.id for j in sched.get_jobs()]})
    await stop.wait()
    sched.shutdown(wait=False)
    await db.close()
    log.info("scheduler stopped")


def main() -> None:
    settings = Settings()
    configure_logging("scheduler", settings.log_level)
    asyncio.run(main_async(settings))


if __name__ == "__main__":
    main()
