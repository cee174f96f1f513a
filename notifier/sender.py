"""One signed webhook POST, and the HTTP client it goes through (TLS verified, with an
optional extra CA from ANSIM_WEBHOOK_CA_FILE; never a fallback to clear text)."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

import certifi
import httpx

from core.notify import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign
from core.settings import Settings


def tls_context(settings: Settings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.webhook_ca_file:
        ctx.load_verify_locations(cafile=str(settings.webhook_ca_file))
    return ctx


def make_client(settings: Settings) -> httpx.AsyncClient:
    # Concurrency is bounded by core.dispatch (per lane and per endpoint), not by the pool:
    # a shared pool limit would let hanging receivers hold everyone's connections.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.notify_timeout_s),
        follow_redirects=False,
        verify=tls_context(settings),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=50),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.error is None


async def post(
    client: httpx.AsyncClient, url: str, body: str, secret: str, notification_id: str
) -> Outcome:
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(raw, secret),
        IDEMPOTENCY_HEADER: notification_id,
        "User-Agent": "ansim-door-notifier/0.1",
    }
    started = time.perf_counter()
    try:
        resp = await client.post(url, content=raw, headers=headers)
        code: int | None = resp.status_code
        error = None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"
    except httpx.HTTPError as exc:
        code, error = None, f"{type(exc).__name__}: {exc}"[:300]
    return Outcome(code, error, (time.perf_counter() - started) * 1000)
