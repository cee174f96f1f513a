"""Webhook dispatcher: sends what the outbox holds, signs it, retries with backoff and
jitter, and logs every attempt. Runs as its own process (`python -m notifier`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import httpx
from prometheus_client import Counter, Histogram

from core.credentials import new_webhook_secret
from core.notify import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, RetryPolicy, sign
from core.settings import Settings
from core.storage.db import Database
from core.storage.outbox import Notification, due, record_attempt

log = logging.getLogger("ansim.notifier")

DELIVERIES = Counter(
    "ansim_notifier_attempts_total",
    "Webhook attempts by recipient and outcome",
    ["recipient", "outcome"],
)
DELIVERY_LAG = Histogram(
    "ansim_notifier_delivery_lag_seconds",
    "Outbox insert to successful delivery",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 60, 300, 3600),
)


def now_us() -> int:
    return time.time_ns() // 1000


def centre_secret(settings: Settings) -> str:
    """ANSIM_CENTRE_WEBHOOK_SECRET, or one generated once into DATA_DIR (mode 0600)."""
    if settings.centre_webhook_secret:
        return settings.centre_webhook_secret
    path: Path = settings.data_dir / "centre_webhook_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_webhook_secret())
        path.chmod(0o600)
    return path.read_text().strip()


class Dispatcher:
    def __init__(self, settings: Settings, db: Database, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        self.policy = RetryPolicy(
            cap_s=settings.notify_backoff_max_s, give_up_s=settings.notify_give_up_s
        )
        self.centre_secret = centre_secret(settings)
        self.sem = asyncio.Semaphore(settings.notify_concurrency)

    async def _secret_for(self, n: Notification) -> str | None:
        if n.recipient == "centre":
            return self.centre_secret
        async with self.db.reader.execute(
            "SELECT webhook_secret FROM households WHERE household_id = ?", (n.household_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def _send(self, n: Notification) -> tuple[Notification, int | None, str | None, float]:
        async with self.sem:
            started = time.perf_counter()
            secret = await self._secret_for(n)
            if not secret or not n.url:
                return n, None, "no endpoint or secret", 0.0
            body = n.body.encode()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, secret),
                IDEMPOTENCY_HEADER: n.notification_id,
                "User-Agent": "ansim-door-notifier/0.1",
            }
            try:
                resp = await self.client.post(n.url, content=body, headers=headers)
                code: int | None = resp.status_code
                error = None if 200 <= resp.status_code < 300 else f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                code, error = None, f"{type(exc).__name__}: {exc}"[:300]
            return n, code, error, (time.perf_counter() - started) * 1000

    async def run_once(self) -> int:
        batch = await due(self.db.reader, now_us(), 200)
        if not batch:
            return 0
        results = await asyncio.gather(*(self._send(n) for n in batch))
        now = now_us()
        async with self.db.write() as conn:
            for n, code, error, ms in results:
                delivered = error is None
                next_us: int | None = None
                if not delivered:
                    age_s = (now - n.created_us) / 1e6
                    if age_s < self.policy.give_up_s:
                        next_us = now + int(self.policy.delay_s(n.attempts) * 1e6)
                await record_attempt(
                    conn, n, now_us=now, status_code=code, error=error, duration_ms=ms,
                    delivered=delivered, next_attempt_us=next_us,
                )  # fmt: skip
                DELIVERIES.labels(n.recipient, "delivered" if delivered else "failed").inc()
                if delivered:
                    DELIVERY_LAG.observe((now - n.created_us) / 1e6)
                else:
                    retry = None if next_us is None else round((next_us - now) / 1e6, 1)
                    log.warning(
                        "webhook attempt failed",
                        extra={"notification_id": n.notification_id, "url": n.url,
                               "attempt": n.attempts + 1, "error": error, "retry_in_s": retry},
                    )  # fmt: skip
        return len(batch)

    async def run(self, stop: asyncio.Event) -> None:
        poll = self.settings.notify_poll_ms / 1000
        while not stop.is_set():
            try:
                sent = await self.run_once()
            except Exception:
                log.exception("dispatch round failed")
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll)
