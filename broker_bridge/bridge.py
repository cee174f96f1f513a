"""The bridge: receive → classify → store → acknowledge, in batches.

At-least-once: a message is acknowledged to the broker only after the transaction that
holds it has committed. A crash before the ack makes the broker redeliver it; the
(sensor_id, boot, seq) key makes the second copy a counted duplicate, never a second row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker_bridge import metrics
from broker_bridge.mqtt_loop import AsyncioPaho
from core.dead_letter_cap import DeadLetterCap
from core.engine import EventInput, Input, StatusInput, TickInput
from core.ingest import (
    Accepted,
    Classified,
    DeadLetter,
    RawMessage,
    classify_batch,
    storage_dead_letter,
    topic_sensor_ids,
)
from core.isolate import commit_isolating
from core.models import SensorStatus, TimeMode
from core.replay_clock import ReplayClock
from core.rules import DoorEvent, StatusChange
from core.settings import Settings
from core.storage.alert_state import (
    advance_event_clock,
    build_config,
    decide_stored,
    evaluate,
    households_due,
    load,
    read_event_clock,
    save,
)
from core.storage.db import DB_ERRORS, is_transient_error, transaction
from core.storage.ingest import (
    StoreResult,
    insert_events,
    lookup_sensors,
    store_batch,
    update_sensors,
)
from core.storage.port import Conn
from core.timeutil import from_us, rfc3339
from core.wire import SENSORS_FILTER

log = logging.getLogger("ansim.bridge")


@dataclass(slots=True)
class _Pending:
    message: RawMessage
    generation: int
    qos: int


def slot_problem(settings: Settings) -> str | None:
    """Why this bridge slot cannot run, or None."""
    if settings.bridges < 1:
        return "ANSIM_BRIDGES must be at least 1"
    if not 0 <= settings.bridge_slot < settings.bridges:
        return f"ANSIM_BRIDGE_SLOT={settings.bridge_slot} is not in 0..{settings.bridges - 1}"
    if settings.bridges > 1 and not settings.database_url:
        return (
            f"ANSIM_BRIDGES={settings.bridges} needs PostgreSQL (ANSIM_DATABASE_URL, or"
            " `ansim up --database postgres`): SQLite has one writer, run one bridge"
        )
    return None


def subscription(settings: Settings, username: str) -> tuple[str, str, str]:
    """(client id, topic filter, the filter of the other arrangement).

    One bridge subscribes to the sensors' topics plainly. Several share one MQTT v5
    shared subscription, `$share/<group>/ansim/v1/sensors/#`: the broker hands each
    message to one member. Each slot has its own client id and persistent session, so a
    restarted slot takes up its own queued and in-flight messages (mosquitto 2.0 keeps a
    dead member's queue for it instead of handing it to the others). Slot 0 keeps the
    service account's name as its client id (the one-bridge session carries on)."""
    client_id = username if settings.bridge_slot == 0 else f"{username}-{settings.bridge_slot}"
    shared = f"$share/{settings.bridge_share_group}/{SENSORS_FILTER}"
    if settings.bridges > 1:
        return client_id, shared, SENSORS_FILTER
    return client_id, SENSORS_FILTER, shared


def now_us() -> int:
    return time.time_ns() // 1000


class Bridge:
    def __init__(self, settings: Settings, conn: Conn, username: str, password: str) -> None:
        self.settings = settings
        self.conn = conn
        self.username = username
        self.password = password
        self.buffer: list[_Pending] = []
        self.in_process: list[_Pending] = []  # the batch being committed
        self.generation = 0
        self.connected = asyncio.Event()
        self.lost = asyncio.Event()
        self.wake = asyncio.Event()
        self.totals = {
            "stored": 0, "duplicates": 0, "heartbeats": 0, "statuses": 0, "dead": 0, "alerts": 0,
            "dead_suppressed": 0,
        }  # fmt: skip
        self.db_lock = asyncio.Lock()
        self.silent_us = int((3 * settings.heartbeat_interval_s + settings.offline_grace_s) * 1e6)
        self.replay = settings.time_mode is TimeMode.REPLAY
        self.engine_config = build_config(settings)
        self.replay_clock = ReplayClock(int(settings.replay_max_jump_s * 1_000_000))
        self._held_logged: set[str] = set()
        self.dead_letter_cap = DeadLetterCap(
            settings.dead_letter_cap_per_sensor, settings.dead_letter_cap_window_s
        )
        self.client_id, self.topic_filter, self.other_filter = subscription(settings, username)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribe_refused: str | None = None  # the broker's reason, while refused

    # paho callbacks (run on the event loop) -----------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: ReasonCode, _p: object
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the bridge", extra={"reason": str(rc)})
            return
        self.generation += 1
        # a session kept from the other arrangement (1 ↔ N bridges) would get both
        client.unsubscribe(self.other_filter)
        client.subscribe(self.topic_filter, qos=1)
        metrics.CONNECTED.set(1)
        metrics.RECONNECTS.inc()
        self.connected.set()
        self.lost.clear()
        log.info(
            "connected to broker",
            extra={
                "session_present": flags.session_present,
                "generation": self.generation,
                "client_id": self.client_id,
                "filter": self.topic_filter,
            },
        )

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        refused = [str(c) for c in codes if c.is_failure]
        if refused:
            self.subscribe_refused = ", ".join(refused)
            log.error(
                "broker refused the subscription: no message will arrive",
                extra={"filter": self.topic_filter, "reason": self.subscribe_refused},
            )
        else:
            self.subscribe_refused = None

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        metrics.CONNECTED.set(0)
        self.connected.clear()
        self.lost.set()
        log.warning("disconnected from broker", extra={"reason": str(rc)})

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.buffer.append(
            _Pending(
                RawMessage(msg.topic, bytes(msg.payload), now_us(), msg.mid, bool(msg.retain)),
                self.generation,
                msg.qos,
            )
        )
        if len(self.buffer) == 1 or len(self.buffer) >= self.settings.bridge_batch_max:
            self.wake.set()  # the first message starts a batch at once, not at the next poll

    # connection management ------------------------------------------------------
    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.bridge_session_expiry_s
        props.ReceiveMaximum = self.settings.bridge_receive_maximum
        return props

    async def _keep_connected(self, stop: asyncio.Event) -> None:
        delay = 0.2
        loop = asyncio.get_running_loop()
        AsyncioPaho(loop, self.client)
        first = True
        while not stop.is_set():
            try:
                if first:
                    self.client.connect(
                        self.settings.mqtt_host,
                        self.settings.mqtt_port,
                        keepalive=30,
                        clean_start=False,
                        properties=self._connect_properties(),
                    )
                    first = False
                else:
                    self.client.reconnect()
                delay = 0.2
            except OSError as exc:
                log.warning("broker unreachable", extra={"error": str(exc), "retry_s": delay})
                await _wait_or(stop, delay)
                delay = min(delay * 2, 10.0) * (0.8 + 0.4 * random.random())
                continue
            # wait for the connection to be lost (or stop)
            lost = asyncio.create_task(self.lost.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({lost, stopping}, return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            stopping.cancel()
            if not stop.is_set():
                await _wait_or(stop, delay)

    # batching --------------------------------------------------------------------
    async def _batches(self, stop: asyncio.Event) -> None:
        wait_s = self.settings.bridge_batch_wait_ms / 1000
        last_report = time.monotonic()
        while not stop.is_set() or self.buffer:
            if not self.buffer:
                self.wake.clear()
                await _wait_or(self.wake, wait_s)
                if not self.buffer:
                    if stop.is_set():
                        break
                    continue
            elif len(self.buffer) < self.settings.bridge_batch_max:
                # let a short burst gather, but never hold the first message long
                await asyncio.sleep(0.002)
            batch, self.buffer = self.buffer, []
            self.in_process = batch
            metrics.PENDING.set(len(batch) + len(self.buffer))
            await self._process(batch)
            self.in_process = []
            metrics.PENDING.set(len(self.buffer))
            metrics.OLDEST_PENDING.set(self.oldest_pending_s())
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                log.info("bridge totals", extra=dict(self.totals))
            if stop.is_set() and not self.connected.is_set():
                break

    def oldest_pending_s(self) -> float:
        """Age of the oldest message received and not yet acknowledged."""
        first = self.in_process or self.buffer
        if not first:
            return 0.0
        return max(0.0, (now_us() - first[0].message.received_us) / 1e6)

    async def _process(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        start_us = now_us()
        messages = [p.message for p in batch]
        for m in messages:
            metrics.QUEUE_WAIT.observe(max(0, start_us - m.received_us) / 1e6)
        outcome = await commit_isolating(
            messages, self._commit, is_transient_error, self._wait_transient
        )
        poisoned = [storage_dead_letter(msg, exc) for msg, exc in outcome.failed]
        dead_result = await self._store_dead(poisoned) if poisoned else None
        committed_us = now_us()
        commit_s = (committed_us - start_us) / 1e6
        self._ack(batch)
        ack_s = (now_us() - committed_us) / 1e6
        for _ in batch:
            metrics.COMMIT_SECONDS.observe(commit_s)
            metrics.ACK_DELAY.observe(ack_s)
        for result, classified in outcome.results:
            self._account(result, classified.dead, committed_us, classified.events)
        if dead_result is not None:
            self._account(dead_result, poisoned, committed_us, [])
        if outcome.commits > 1:
            metrics.BATCH_SPLITS.inc()
            log.error(
                "batch split to isolate messages that fail to commit",
                extra={"messages": len(batch), "commits": outcome.commits,
                       "dead_lettered": len(poisoned)},
            )  # fmt: skip
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(batch))

    async def _commit(self, messages: Sequence[RawMessage]) -> tuple[StoreResult, Classified]:
        """Classify `messages` and store them in one transaction, the alert rules included:

            insert events → load engine state → decide → save → sensor updates

        What the rules see is fixed by that order: every sensor as it was before this batch
        (its row — last seen, battery, door, status — is updated from the batch only in the
        last step), the batch's newly stored events and heartbeats in event-time order (a
        repeat of a stored event is not seen again), each evaluated after the earlier ones of
        its household, then the broker statuses, then (replay) the timers due on the event
        clock. Nothing else runs in between: no storage function calls back into the bridge.
        """
        sensors = await lookup_sensors(self.conn, topic_sensor_ids(messages))
        classified = classify_batch(
            messages, sensors, self.settings.time_mode, self.settings.clock_skew_tolerance_s
        )
        async with self.db_lock, transaction(self.conn):
            stored = await insert_events(self.conn, classified)
            raised = await self._evaluate(self.conn, classified, stored)
            result = await update_sensors(self.conn, classified, stored, self.dead_letter_cap)
        if raised:  # counted once committed: a failed part's alerts were rolled back
            self.totals["alerts"] += len(raised)
            metrics.ALERTS.inc(len(raised))
            log.info("alerts raised", extra={"alert_ids": raised})
        return result, classified

    async def _wait_transient(self, exc: Exception) -> None:
        """Locked, busy or full: retry the same commit, never ack before it succeeds."""
        log.error("batch commit failed; retrying", extra={"error": str(exc)})
        await asyncio.sleep(0.5)

    async def _store_dead(self, dead: list[DeadLetter]) -> StoreResult:
        """Dead-letter the messages no commit would take. If even that fails, nothing is
        acknowledged: the batch stays unacked and this retries until it succeeds."""
        while True:
            try:
                async with self.db_lock:
                    return await store_batch(self.conn, Classified(dead=dead), self.dead_letter_cap)
            except Exception as exc:
                log.error("storing dead letters failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)

    async def _evaluate(
        self, conn: Conn, batch: Classified, stored: set[tuple[int, int, int]]
    ) -> list[str]:
        """load → decide → save for what this batch newly stored (the middle of `_commit`);
        the ids of the alerts raised. The decision time is the wall clock in live mode; in
        replay mode the event clock, moved by each event (`ReplayClock`) before it is
        evaluated, and advanced in the same transaction."""
        fresh = [e for e in batch.events if e.key in stored]
        if not fresh and not batch.heartbeats and not batch.statuses:
            return []
        wall = now_us()
        clock = (await read_event_clock(conn) or 0) if self.replay else wall
        inputs: list[Input] = []
        seen: set[tuple[int, int, int]] = set()
        for e in sorted([*fresh, *batch.heartbeats], key=lambda m: m.event_us):
            if e.key in seen:
                continue
            seen.add(e.key)
            if self.replay:
                moved = self.replay_clock.observe(clock, e.sensor_id, e.event_us)
                if (
                    moved < e.event_us - self.replay_clock.max_jump_us
                    and e.sensor_id not in self._held_logged
                ):
                    self._held_logged.add(e.sensor_id)
                    log.warning(
                        "event far ahead of the replay clock does not move it (one sensor alone)",
                        extra={"sensor_id": e.sensor_id, "ts": rfc3339(from_us(e.event_us)),
                               "clock": rfc3339(from_us(clock))},
                    )  # fmt: skip
                clock = moved
            event = DoorEvent(e.sensor_id, e.household_id, e.type, from_us(e.event_us), e.battery)
            # replay: timers follow the event clock, the household's due ones fire first
            inputs.append(EventInput(event, from_us(clock), tick_first=self.replay))
        for s in batch.statuses:
            at = from_us(clock if self.replay and clock else s.received_us)
            change = StatusChange(s.sensor_id, s.household_id, SensorStatus(s.status), at)
            inputs.append(StatusInput(change, at))
        households = list(
            dict.fromkeys(
                [e.household_id for e in fresh]
                + [h.household_id for h in batch.heartbeats]
                + [s.household_id for s in batch.statuses]
            )
        )
        if self.replay and clock:
            # the event clock moved: every household's timers now due fire in this batch,
            # not on the next wall-clock tick (a whole simulated hour may pass in between)
            households += await households_due(conn, clock, clock - self.silent_us)
            inputs.append(TickInput(from_us(clock)))
        state = await load(conn, households)
        changes = await decide_stored(conn, state, inputs, self.engine_config, from_us(wall))
        raised = await save(conn, changes)
        if self.replay and clock:
            await advance_event_clock(conn, clock)
        return raised

    async def _ticker(self, stop: asyncio.Event) -> None:
        """Timers (entry delay, door left open, offline grace), escalations and silent
        sensors: on the wall clock in live mode, on the event clock in replay mode."""
        every = self.settings.rules_tick_ms / 1000
        silent_us = self.silent_us
        while not stop.is_set():
            await _wait_or(stop, every)
            try:
                async with self.db_lock:
                    now = (await read_event_clock(self.conn)) if self.replay else now_us()
                    if now is None:
                        continue
                    due = await households_due(self.conn, now, now - silent_us)
                    if not due:
                        continue
                    async with transaction(self.conn):
                        done = await evaluate(
                            self.conn, due, [TickInput(from_us(now))], self.engine_config,
                            from_us(now_us()),
                        )  # fmt: skip
                if done.raised:
                    self.totals["alerts"] += len(done.raised)
                    metrics.ALERTS.inc(len(done.raised))
                    log.info("alerts raised by timers", extra={"alert_ids": done.raised})
            except DB_ERRORS as exc:
                log.error("rules tick failed; will retry", extra={"error": str(exc)})
            except Exception:  # a bug here must not stop every timer for good
                log.exception("rules tick raised; will retry")

    def _ack(self, batch: list[_Pending]) -> None:
        for p in batch:
            # a message from an earlier connection is redelivered by the broker instead
            if p.qos > 0 and p.generation == self.generation and self.connected.is_set():
                self.client.ack(p.message.mid, p.qos)

    def _account(
        self,
        result: StoreResult,
        dead: list[DeadLetter],
        committed_us: int,
        events: list[Accepted],
    ) -> None:
        self.totals["stored"] += result.stored
        self.totals["duplicates"] += result.duplicates
        self.totals["heartbeats"] += result.heartbeats
        self.totals["statuses"] += result.statuses
        self.totals["dead"] += result.dead_letters
        metrics.MESSAGES.labels("stored").inc(result.stored)
        metrics.MESSAGES.labels("duplicate").inc(result.duplicates)
        metrics.MESSAGES.labels("heartbeat").inc(result.heartbeats)
        metrics.MESSAGES.labels("status").inc(result.statuses)
        metrics.MESSAGES.labels("dead_letter").inc(result.dead_letters)
        for d in dead:
            metrics.DEAD_LETTERS.labels(d.reason).inc()
        # over the per-sensor cap a dead letter is only counted (in the 10 s totals line too),
        # never logged one by one
        self.totals["dead_suppressed"] += result.dead_letters_suppressed
        metrics.DEAD_LETTER_OUTCOMES.labels("stored").inc(len(result.dead_letters_stored))
        metrics.DEAD_LETTER_OUTCOMES.labels("suppressed").inc(result.dead_letters_suppressed)
        for d in result.dead_letters_stored:
            log.info(
                "dead letter",
                extra={
                    "reason": d.reason,
                    "topic": d.topic,
                    "sensor_id": d.sensor_id,
                    "detail": d.detail,
                },
            )
        if self.settings.time_mode is TimeMode.LIVE:
            for e in events:
                if not e.skewed:
                    metrics.COMMIT_LATENCY.observe(max(0.0, (committed_us - e.device_us) / 1e6))
                    metrics.RECEIVE_LATENCY.observe(max(0.0, (e.received_us - e.device_us) / 1e6))

    # entry -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        keeper = asyncio.create_task(self._keep_connected(stop))
        ticker = asyncio.create_task(self._ticker(stop))
        try:
            await self._batches(stop)
        finally:
            keeper.cancel()
            ticker.cancel()
            if self.connected.is_set():
                self.client.disconnect()
            log.info("bridge stopped", extra=dict(self.totals))


async def _wait_or(event: asyncio.Event, seconds: float) -> None:
    """Wait for the event, at most `seconds`."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
