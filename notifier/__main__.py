"""`python -m notifier`: the webhook dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from prometheus_client import start_http_server

from core.jsonlog import configure_logging
from core.notify import webhook_url_problem
from core.settings import Settings
from core.storage import heartbeats
from core.storage.db import Database, connect
from notifier.dispatcher import Dispatcher
from notifier.sender import make_client

log = logging.getLogger("ansim.notifier")


def wall_us() -> int:
    return time.time_ns() // 1000


async def main_async(settings: Settings) -> int:
    # the metrics port first: a port held by another program is a clean exit 2 before the
    # database is opened (aiosqlite's non-daemon thread would keep a failed process alive)
    if settings.notifier_metrics_port:
        try:
            start_http_server(settings.notifier_metrics_port, addr=settings.http_host)
        except OSError as exc:
            log.error(
                "cannot start: metrics port unavailable",
                extra={"port": settings.notifier_metrics_port, "error": str(exc)},
            )
            return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    db = await Database.open(settings.database)
    try:
        hb_conn = await connect(settings.database)
        try:
            beats = asyncio.create_task(
                heartbeats.beat_forever(
                    hb_conn, "notifier", settings.heartbeat_write_s, wall_us, stop
                )
            )
            try:
                async with make_client(settings) as client:
                    log.info("notifier started", extra={"centre_url": settings.centre_webhook_url})
                    await Dispatcher(settings, db, client).run(stop)
            finally:
                beats.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beats
                with contextlib.suppress(Exception):
                    await heartbeats.beat(hb_conn, "notifier", wall_us(), 0, '{"state":"stopped"}')
        finally:
            await hb_conn.close()
    finally:
        await db.close()
    log.info("notifier stopped")
    return 0


def main() -> None:
    settings = Settings()
    configure_logging("notifier", settings.log_level)
    if settings.centre_webhook_url:
        problem = webhook_url_problem(settings.centre_webhook_url, settings.webhook_allow_http)
        if problem:
            log.error("refusing ANSIM_CENTRE_WEBHOOK_URL", extra={"reason": problem})
            raise SystemExit(2)
    try:
        code = asyncio.run(main_async(settings))
    except Exception:
        log.exception("notifier failed")
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
