"""`python -m notifier`: the webhook dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.jsonlog import configure_logging
from core.notify import webhook_url_problem
from core.service import start_metrics, stop_on_signals, wall_us
from core.settings import Settings
from core.storage import heartbeats
from core.storage.db import connect, open_store
from notifier.dispatcher import Dispatcher
from notifier.sender import make_client

log = logging.getLogger("ansim.notifier")


async def main_async(settings: Settings) -> int:
    # the metrics port first: a port held by another program is a clean exit 2 before the
    # database is opened (aiosqlite's non-daemon thread would keep a failed process alive)
    if not start_metrics(settings.notifier_metrics_port, settings.http_host, log):
        return 2
    stop = stop_on_signals()
    db = await open_store(settings, "ansim-notifier")
    try:
        hb_conn = await connect(settings, "ansim-notifier")
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
