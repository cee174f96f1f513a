"""`python -m notifier`: the webhook dispatcher."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from core.jsonlog import configure_logging
from core.notify import webhook_url_problem
from core.settings import Settings
from core.storage.db import Database
from notifier.dispatcher import Dispatcher
from notifier.sender import make_client

log = logging.getLogger("ansim.notifier")


async def main_async(settings: Settings) -> None:
    db = await Database.open(settings.database)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.notifier_metrics_port:
        start_http_server(settings.notifier_metrics_port, addr=settings.http_host)
    async with make_client(settings) as client:
        log.info("notifier started", extra={"centre_url": settings.centre_webhook_url})
        await Dispatcher(settings, db, client).run(stop)
    await db.close()
    log.info("notifier stopped")


def main() -> None:
    settings = Settings()
    configure_logging("notifier", settings.log_level)
    if settings.centre_webhook_url:
        problem = webhook_url_problem(settings.centre_webhook_url, settings.webhook_allow_http)
        if problem:
            log.error("refusing ANSIM_CENTRE_WEBHOOK_URL", extra={"reason": problem})
            raise SystemExit(2)
    asyncio.run(main_async(settings))


if __name__ == "__main__":
    main()
