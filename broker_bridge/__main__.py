"""`python -m broker_bridge`: run the bridge until SIGTERM/SIGINT.

Start order: the metrics port first (a port held by another program is a clean exit 2
before anything else is opened), then the database, closed in `finally` whatever happens
(aiosqlite's connection thread is not a daemon: left open it keeps a failed process alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time

from broker_bridge.bridge import Bridge, slot_problem
from core.broker.mosquitto import load_or_create_credentials
from core.jsonlog import configure_logging
from core.service import start_metrics, stop_on_signals, wall_us
from core.settings import Settings
from core.storage import heartbeats
from core.storage.db import checkpoint_forever, connect, location, open_connection
from core.storage.sqlite import SqliteConn, turn_off_autocheckpoint

log = logging.getLogger("ansim.bridge")


async def main_async(settings: Settings) -> int:
    creds = load_or_create_credentials(settings)
    problem = slot_problem(settings)
    if problem:
        log.error("bridge cannot start", extra={"error": problem})
        return 2
    metrics_port = settings.bridge_metrics_port + settings.bridge_slot
    if not start_metrics(metrics_port, settings.http_host, log):
        return 2
    stop = stop_on_signals()
    conn = await open_connection(settings, "ansim-bridge")
    checkpoints: asyncio.Task[None] | None = None
    if settings.bridge_checkpoint_s > 0:
        # the writer's COMMIT never runs a checkpoint: a task of its own does, every N s
        if isinstance(conn, SqliteConn):
            await turn_off_autocheckpoint(conn)
        checkpoints = asyncio.create_task(
            checkpoint_forever(settings, settings.bridge_checkpoint_s, stop)
        )
    try:
        hb_conn = await connect(settings, "ansim-bridge")
        try:
            log.info(
                "bridge starting",
                extra={
                    "broker": f"{settings.mqtt_host}:{settings.mqtt_port}",
                    "database": location(settings),
                    "time_mode": str(settings.time_mode),
                    "metrics": f"http://{settings.http_host}:{metrics_port}/metrics",
                    "slot": f"{settings.bridge_slot}/{settings.bridges}",
                },
            )
            bridge = Bridge(settings, conn, creds.bridge_username, creds.bridge_password)

            last_totals, last_progress = dict(bridge.totals), time.monotonic()

            def detail() -> str:
                # beats run on the loop that drives MQTT: a stalled loop goes silent; and a
                # pipeline that has messages waiting but stores none reports how long
                nonlocal last_totals, last_progress
                now = time.monotonic()
                if not bridge.buffer or bridge.totals != last_totals:
                    last_totals, last_progress = dict(bridge.totals), now
                stalled = now - last_progress
                return json.dumps(
                    {
                        # subscribed too: connected without the subscription receives nothing
                        "connected": bridge.connected.is_set() and not bridge.subscribe_refused,
                        "pending": len(bridge.buffer),
                        "stalled_s": round(stalled, 1),
                        "oldest_pending_s": round(bridge.oldest_pending_s(), 1),
                    }
                )

            beats = asyncio.create_task(
                heartbeats.beat_forever(
                    hb_conn, settings.bridge_part, settings.heartbeat_write_s, wall_us, stop, detail
                )
            )

            async def beat_on_connect() -> None:
                # the first beat says "not connected yet": say "connected" as soon as it is
                await bridge.connected.wait()
                with contextlib.suppress(Exception):  # the periodic beat logs failures
                    await heartbeats.beat(
                        hb_conn, settings.bridge_part, wall_us(), os.getpid(), detail()
                    )

            first = asyncio.create_task(beat_on_connect())
            try:
                await bridge.run(stop)
            finally:
                for task in (first, beats):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                with contextlib.suppress(Exception):
                    await heartbeats.beat(
                        hb_conn, settings.bridge_part, wall_us(), 0, '{"state":"stopped"}'
                    )
        finally:
            await hb_conn.close()
    finally:
        if checkpoints is not None:
            stop.set()
            with contextlib.suppress(Exception):
                await checkpoints
        await conn.close()
    return 0


def main() -> None:
    settings = Settings()
    configure_logging("bridge", settings.log_level)
    try:
        code = asyncio.run(main_async(settings))
    except Exception:
        log.exception("bridge failed")
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
