"""`python -m api`: serve the API with uvicorn on ANSIM_HTTP_HOST:ANSIM_HTTP_PORT."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from core.jsonlog import configure_logging
from core.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("api", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
