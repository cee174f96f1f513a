"""`python -m broker_bridge`: run the bridge until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from broker_bridge.bridge import Bridge
from core.broker.mosquitto import load_or_create_credentials
from core.jsonlog import configure_logging
from core.settings import Settings
from core.storage.db import open_database

log = logging.getLogger("ansim.bridge")


async def main_async(settings: Settings) -> None:
    creds = load_or_create_credentials(settings)
    conn = await open_database(settings.database)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.bridge_metrics_port:
        start_http_server(settings.bridge_metrics_port, addr=settings.http_host)
    log.info(
        "bridge starting",
        extra={
            "broker": f"{settings.mqtt_host}:{settings.mqtt_port}",
            "database": str(settings.database),
            "time_mode": str(settings.time_mode),
            "metrics": f"http://{settings.http_host}:{settings.bridge_metrics_port}/metrics",
        },
    )
    bridge = Bridge(settings, conn, creds.bridge_username, creds.bridge_password)
    try:
        await bridge.run(stop)
    finally:
        await conn.close()


def main() -> None:
    settings = Settings()
    configure_logging("bridge", settings.log_level)
    asyncio.run(main_async(settings))


if __name__ == "__main__":
    main()
