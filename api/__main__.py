"""`python -m api`: serve the API with uvicorn on ANSIM_HTTP_HOST:ANSIM_HTTP_PORT."""

from __future__ import annotations

from typing import Any

import uvicorn

from api.app import create_app
from core.jsonlog import configure_logging
from core.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("api", settings.log_level)
    app = create_app(settings)
    tls: dict[str, Any] = {}
    if settings.http_tls:
        files = app.state.tls
        # TLS 1.2+ is Python's default minimum for server contexts
        tls = {"ssl_certfile": str(files.cert), "ssl_keyfile": str(files.key)}
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        **tls,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
