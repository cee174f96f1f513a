"""`python -m api`: serve the API with uvicorn on ANSIM_HTTP_HOST:ANSIM_HTTP_PORT.

The listening socket is bound before the application starts: a port held by another
program is a clean exit 2 before the database or the broker is touched."""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn

from api.app import create_app
from core.jsonlog import configure_logging
from core.settings import Settings

log = logging.getLogger("ansim.api")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def main() -> None:
    settings = Settings()
    configure_logging("api", settings.log_level)
    try:
        sock = bind(settings.http_host, settings.http_port)
    except OSError as exc:
        log.error(
            "cannot start: HTTP port unavailable",
            extra={"host": settings.http_host, "port": settings.http_port, "error": str(exc)},
        )
        raise SystemExit(2) from None
    app = create_app(settings)
    tls: dict[str, Any] = {}
    if settings.http_tls:
        files = app.state.tls
        # TLS 1.2+ is Python's default minimum for server contexts
        tls = {"ssl_certfile": str(files.cert), "ssl_keyfile": str(files.key)}
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        **tls,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
