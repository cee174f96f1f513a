"""create_app(settings): the FastAPI application."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.routes import alerts, dead_letters, health, households, modes, segments, sensors
from api.routes import console as console_routes
from core.broker.dynsec import BrokerUnavailable, DynsecAdmin
from core.broker.mosquitto import load_or_create_credentials
from core.broker.tls import ensure_tls
from core.settings import Settings
from core.storage.db import location, open_store

log = logging.getLogger("ansim.api")

REQUESTS = Counter("ansim_api_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("ansim_api_request_seconds", "HTTP request latency", ["method", "route"])


class BrokerAdminHolder:
    """Connects to the broker on first use and again after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin: DynsecAdmin | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> DynsecAdmin | None:
        async with self._lock:
            if self.admin is not None:
                return self.admin
            creds = load_or_create_credentials(self.settings)
            admin = DynsecAdmin(
                self.settings.mqtt_host,
                self.settings.mqtt_port,
                creds.admin_username,
                creds.admin_password,
            )
            try:
                await asyncio.to_thread(admin.start)
            except BrokerUnavailable as exc:
                log.warning("broker admin connection failed", extra={"error": str(exc)})
                return None
            self.admin = admin
            return admin

    def connected(self) -> bool:
        return self.admin is not None and self.admin._connected.is_set()

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.stop()


def create_app(settings: Settings) -> FastAPI:
    holder = BrokerAdminHolder(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await open_store(settings, "ansim-api")
        await holder()
        log.info("api ready", extra={"database": location(settings)})
        try:
            yield
        finally:
            holder.stop()
            await app.state.db.close()

    app = FastAPI(
        title="Ansim Door",
        version="0.1.0",
        description="Door-sensor safety backend: enrolment, sensors, events, alerts, grades.",
        lifespan=lifespan,
        docs_url=None,  # served below from our own files: a district PC may have no internet
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.grade_params = settings.grade_params()  # built once, at start
    app.state.tls = ensure_tls(settings)  # the broker's CA, handed to sensors
    app.state.broker_admin = holder
    app.state.broker_connected = holder.connected

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        LATENCY.labels(request.method, path).observe(time.perf_counter() - started)
        if settings.http_tls:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        reason = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse(status_code=422, content={"detail": reason, "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": exc.detail},
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(status_code=500, content={"detail": "internal error, logged"})

    static = Path(__file__).resolve().parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI from `api/static/vendor/swagger-ui/` (vendored from npm), no CDN."""
        vendor = "/static/vendor/swagger-ui"
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Ansim Door API",
            swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
            swagger_css_url=f"{vendor}/swagger-ui.css",
            swagger_favicon_url=f"{vendor}/favicon-32x32.png",
        )

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        """The web console for operators and residents (no build step, no CDN)."""
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    app.include_router(health.router)
    app.include_router(households.router)
    app.include_router(sensors.router)
    app.include_router(dead_letters.router)
    app.include_router(modes.router)
    app.include_router(alerts.router)
    app.include_router(segments.router)
    app.include_router(console_routes.router)
    return app
