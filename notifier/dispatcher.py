"""Webhook dispatcher, the I/O shell around core.dispatch: it keeps the pending
notifications in memory (reading only new outbox rows), starts what `plan` says, each
attempt as its own task, and records outcomes in batches from a writer task, so neither
a hanging receiver nor a busy database delays the start of another attempt.
Runs as its own process (`python -m notifier`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from pathlib import Path

import httpx

from core.credentials import new_webhook_secret
from core.dispatch import (
    LANES,
    Circuit,
    CircuitState,
    Flight,
    Lane,
    Limits,
    Pending,
    advance,
    endpoint_of,
    expired,
    lane_load,
    on_result,
    plan,
)
from core.notify import RetryPolicy
from core.settings import Settings
from core.storage import wake
from core.storage.outbox import (
    Notification,
    current_target,
    give_up,
    pending_after,
    record_attempt,
)
from core.storage.port import Store
from notifier import metrics
from notifier.sender import Outcome, post

log = logging.getLogger("ansim.notifier")

RESCAN_S = 5.0
"""How often the dispatcher reads every pending notification again, not only the new ones:
the longest a notification committed behind the read cursor waits."""

Result = tuple[Notification, Outcome, int, int | None]  # notification, outcome, at, next due


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


def limits_from(settings: Settings) -> Limits:
    return Limits(
        lane_inflight=settings.notify_concurrency,
        endpoint_inflight=settings.notify_endpoint_inflight,
        circuit_failures=settings.notify_circuit_failures,
        cooloff_s=min(settings.notify_circuit_cooloff_s, settings.notify_backoff_max_s),
        slow_s=settings.notify_slow_ms / 1000,
    )


class Dispatcher:
    def __init__(self, settings: Settings, db: Store, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        self.policy = RetryPolicy(
            cap_s=settings.notify_backoff_max_s, give_up_s=settings.notify_give_up_s
        )
        self.limits = limits_from(settings)
        self.centre_secret = centre_secret(settings)
        self.pending: dict[str, Notification] = {}
        self.flights: dict[str, Flight] = {}
        self.circuits: dict[str, Circuit] = {}
        self.last_rowid = 0
        self.rescanned = time.monotonic()
        # settled here, not yet recorded: the database still says pending
        self.unrecorded: set[str] = set()
        self.results: list[Result] = []
        self.given_up: list[str] = []
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    # --- reading -------------------------------------------------------------------------
    async def _load_new(self) -> None:
        """The pending notifications inserted since the last read, by insertion order.
        Writers commit in another order than they took their row numbers (several on
        PostgreSQL; on SQLite a rolled-back id is reused), so a row can commit behind
        the cursor: every `RESCAN_S` the whole pending set is read again."""
        now = time.monotonic()
        if now - self.rescanned >= RESCAN_S:
            self.rescanned, self.last_rowid = now, -(2**63)  # every row number there is
        while True:
            rows = await pending_after(self.db.reader, self.last_rowid, 1000)
            for rowid, n in rows:
                self.last_rowid = max(self.last_rowid, rowid)
                key = n.notification_id
                if n.url and key not in self.pending and key not in self.unrecorded:
                    self.pending[key] = n
            if len(rows) < 1000:
                return

    # --- circuits ------------------------------------------------------------------------
    def _set_circuit(self, endpoint: str, new: Circuit) -> None:
        old = self.circuits.get(endpoint, Circuit())
        self.circuits[endpoint] = new
        if old.state is new.state:
            return
        metrics.CIRCUIT_CHANGES.labels(new.state.value).inc()
        metrics.CIRCUITS_OPEN.set(
            sum(c.state is not CircuitState.CLOSED for c in self.circuits.values())
        )
        extra = {"endpoint": endpoint, "from": old.state.value, "to": new.state.value,
                 "failures": new.failures}  # fmt: skip
        if new.state is CircuitState.OPEN:
            log.warning(
                "webhook circuit opened", extra={**extra, "cooloff_s": self.limits.cooloff_s}
            )
        elif new.state is CircuitState.CLOSED:
            log.info("webhook circuit closed", extra=extra)
        else:
            log.info("webhook circuit half-open", extra=extra)

    def _advance_circuits(self, now: int) -> None:
        for endpoint, c in list(self.circuits.items()):
            self._set_circuit(endpoint, advance(c, now, self.limits))
            if self.circuits[endpoint] == Circuit():
                del self.circuits[endpoint]  # healthy and forgotten

    # --- attempts ------------------------------------------------------------------------
    def _start(self, now: int) -> None:
        candidates = [
            Pending(n.notification_id, endpoint_of(n.url or ""), n.attempts,
                    n.next_attempt_us, n.created_us)
            for key, n in self.pending.items() if key not in self.flights
        ]  # fmt: skip
        for p in expired(candidates, now, self.policy.give_up_s):
            self.pending.pop(p.key, None)
            self.given_up.append(p.key)
            self.unrecorded.add(p.key)
            log.warning("webhook notification given up", extra={"notification_id": p.key})
        candidates = [p for p in candidates if p.key in self.pending]
        for p, lane in plan(candidates, self.flights.values(), self.circuits, now, self.limits):
            self.flights[p.key] = Flight(p.endpoint, lane, now)
            task = asyncio.create_task(self._attempt(self.pending[p.key], p.endpoint, lane))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        self._gauges(now)

    def _gauges(self, now: int) -> None:
        load = lane_load(self.flights.values(), now, self.limits)
        for lane in LANES:
            metrics.IN_FLIGHT.labels(lane).set(load[lane])
        metrics.PENDING.set(len(self.pending))

    async def _attempt(self, n: Notification, endpoint: str, lane: Lane) -> None:
        key = n.notification_id
        try:
            target = await current_target(self.db.reader, key)
            url, household_secret = target or (None, None)
            if not url:
                self.pending.pop(key, None)  # unenrolled or settled elsewhere
                return
            secret = self.centre_secret if n.recipient == "centre" else household_secret
            if n.attempts == 0:
                metrics.FIRST_ATTEMPT.observe(max(0, now_us() - n.created_us) / 1e6)
            if secret:
                outcome = await post(self.client, url, n.body, secret, key)
            else:
                outcome = Outcome(None, "no webhook secret", 0.0)
            self._settle(n, endpoint, outcome)
        except Exception:
            log.exception("webhook attempt crashed", extra={"notification_id": key})
        finally:
            self.flights.pop(key, None)
            self.wake.set()

    def _settle(self, n: Notification, endpoint: str, outcome: Outcome) -> None:
        now = now_us()
        self._set_circuit(
            endpoint,
            on_result(self.circuits.get(endpoint, Circuit()), outcome.ok, now, self.limits),
        )
        next_us: int | None = None
        if not outcome.ok and (now - n.created_us) / 1e6 < self.policy.give_up_s:
            next_us = now + int(self.policy.delay_s(n.attempts) * 1e6)
        if next_us is None:
            self.pending.pop(n.notification_id, None)
        else:
            self.pending[n.notification_id] = replace(
                n, attempts=n.attempts + 1, next_attempt_us=next_us
            )
        self.results.append((n, outcome, now, next_us))
        self.unrecorded.add(n.notification_id)
        metrics.DELIVERIES.labels(n.recipient, "delivered" if outcome.ok else "failed").inc()
        if outcome.ok:
            metrics.DELIVERY_LAG.observe((now - n.created_us) / 1e6)
        else:
            retry = None if next_us is None else round((next_us - now) / 1e6, 1)
            log.warning(
                "webhook attempt failed",
                extra={"notification_id": n.notification_id, "url": n.url,
                       "attempt": n.attempts + 1, "error": outcome.error, "retry_in_s": retry},
            )  # fmt: skip

    # --- recording -----------------------------------------------------------------------
    async def _flush(self) -> None:
        batch, self.results = self.results, []
        dropped, self.given_up = self.given_up, []
        if not batch and not dropped:
            return
        try:
            async with self.db.write() as conn:
                for key in dropped:
                    await give_up(conn, key, "gave up: no successful attempt in time")
                for n, o, at, next_us in batch:
                    await record_attempt(
                        conn, n, now_us=at, status_code=o.status_code, error=o.error,
                        duration_ms=o.duration_ms, delivered=o.ok, next_attempt_us=next_us,
                    )  # fmt: skip
        except Exception:
            log.exception("recording webhook attempts failed; will retry")
            self.results = batch + self.results
            self.given_up = dropped + self.given_up
            return
        still = {r[0].notification_id for r in self.results} | set(self.given_up)
        self.unrecorded -= ({r[0].notification_id for r in batch} | set(dropped)) - still

    async def _writer(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    # --- loop ----------------------------------------------------------------------------
    async def run_once(self) -> None:
        await self._load_new()
        now = now_us()
        self._advance_circuits(now)
        self._start(now)

    async def run(self, stop: asyncio.Event) -> None:
        poll = self.settings.notify_poll_ms / 1000
        writer = asyncio.create_task(self._writer(stop))
        loop = asyncio.get_running_loop()
        listener = wake.Listener(wake.channel_for(self.db.location), self.wake.set)
        listener.start(loop)  # a commit that adds outbox rows wakes us; polling stays
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("dispatch round failed")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), poll)
        listener.stop(loop)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await writer
        await self._flush()
