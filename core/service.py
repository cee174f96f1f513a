"""What every long-running service (bridge, notifier, scheduler) does the same way at
start: its Prometheus port first — a port held by another program is a clean exit 2
before the database is opened (aiosqlite's non-daemon thread would keep a failed process
alive) — then a stop event set by SIGTERM/SIGINT. And the one wall clock they stamp
heartbeats with."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from prometheus_client import start_http_server


def wall_us() -> int:
    return time.time_ns() // 1000


def start_metrics(port: int, host: str, log: logging.Logger) -> bool:
    """Serve Prometheus metrics on host:port (0: none). False, logged: the port is taken."""
    if not port:
        return True
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("cannot start: metrics port unavailable", extra={"port": port, "error": str(exc)})
        return False
    return True


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
