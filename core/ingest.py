"""Pure part of the ingest pipeline: classify a batch of raw MQTT messages.

parse → (storage looks the sensors up) → classify → (storage writes) → ack.
Nothing here does I/O; the receive time of every message is carried in with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.errors import WireError
from core.models import EventType, TimeMode
from core.timeutil import offset_minutes, resolve_event_time, to_us
from core.wire import (
    SensorTopic,
    parse_event,
    parse_status,
    parse_topic,
    printable,
    sensor_id_hint,
)

DEAD_LETTER_PAYLOAD_KEEP = 4096  # bytes of an oversize payload kept for inspection
STORAGE_ERROR = "storage_error"  # dead-letter reason: the message's batch failed lastingly


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    payload: bytes
    received_us: int
    mid: int = 0
    retained: bool = False


@dataclass(frozen=True, slots=True)
class SensorRef:
    sensor_pk: int
    sensor_id: str
    household_id: str
    retired: bool
    last_heartbeat: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    sensor_pk: int
    sensor_id: str
    household_id: str
    boot: int
    seq: int
    type: EventType
    event_us: int
    device_us: int
    offset_min: int
    received_us: int
    battery: int | None
    rssi: int | None
    skew_s: float | None
    skewed: bool

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.sensor_pk, self.boot, self.seq)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    sensor_pk: int
    sensor_id: str
    household_id: str
    status: str
    received_us: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    sensor_id: str | None
    reason: str
    detail: str
    payload: bytes
    payload_size: int
    received_us: int


@dataclass(slots=True)
class Classified:
    events: list[Accepted] = field(default_factory=list)
    heartbeats: list[Accepted] = field(default_factory=list)
    heartbeat_duplicates: list[Accepted] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def topic_sensor_ids(messages: Iterable[RawMessage]) -> set[str]:
    """Sensor ids named by well-formed topics, to look up before classifying."""
    ids: set[str] = set()
    for msg in messages:
        try:
            ids.add(parse_topic(msg.topic).sensor_id)
        except WireError:
            continue
    return ids


def _dead(msg: RawMessage, sensor_id: str | None, exc: WireError) -> DeadLetter:
    return DeadLetter(
        topic=msg.topic[:512],
        sensor_id=sensor_id,
        reason=exc.reason,
        detail=exc.detail,
        payload=msg.payload[:DEAD_LETTER_PAYLOAD_KEEP],
        payload_size=len(msg.payload),
        received_us=msg.received_us,
    )


def storage_dead_letter(msg: RawMessage, exc: BaseException) -> DeadLetter:
    """A message that passed the wire contract but that no commit would take (found by
    splitting its batch): dead-lettered as `storage_error` with the exception."""
    detail = printable(f"{type(exc).__name__}: {exc}")
    return _dead(msg, sensor_id_hint(msg.topic), WireError(STORAGE_ERROR, detail))


def classify_batch(
    messages: Iterable[RawMessage],
    sensors: Mapping[str, SensorRef],
    mode: TimeMode,
    skew_tolerance_s: float,
) -> Classified:
    out = Classified()
    seen_heartbeats: set[tuple[int, int, int]] = set()
    for msg in messages:
        sensor_id: str | None = None
        try:
            topic: SensorTopic = parse_topic(msg.topic)
            sensor_id = topic.sensor_id
            ref = sensors.get(sensor_id)
            if ref is None:
                raise WireError("unknown_sensor", f"sensor {sensor_id!r} is not provisioned")
            if ref.retired:
                raise WireError("retired_sensor", f"sensor {sensor_id!r} has been retired")
            if topic.kind == "status":
                status = parse_status(msg.payload)
                if status is not None:
                    out.statuses.append(
                        StatusUpdate(
                            ref.sensor_pk, ref.sensor_id, ref.household_id, status, msg.received_us
                        )
                    )
                continue
            payload = parse_event(msg.payload)
        except WireError as exc:
            out.dead.append(_dead(msg, sensor_id or sensor_id_hint(msg.topic), exc))
            continue
        device_us = to_us(payload.ts)
        resolved = resolve_event_time(device_us, msg.received_us, mode, skew_tolerance_s)
        accepted = Accepted(
            sensor_pk=ref.sensor_pk,
            sensor_id=ref.sensor_id,
            household_id=ref.household_id,
            boot=payload.boot,
            seq=payload.seq,
            type=payload.type,
            event_us=resolved.event_us,
            device_us=device_us,
            offset_min=offset_minutes(payload.ts),
            received_us=msg.received_us,
            battery=payload.battery,
            rssi=payload.rssi,
            skew_s=resolved.skew_s,
            skewed=resolved.skewed,
        )
        if payload.type is EventType.HEARTBEAT:
            key = accepted.key
            if key in seen_heartbeats or ref.last_heartbeat == (payload.boot, payload.seq):
                out.heartbeat_duplicates.append(accepted)
            else:
                seen_heartbeats.add(key)
                out.heartbeats.append(accepted)
        else:
            out.events.append(accepted)
    return out


@dataclass(slots=True)
class SensorUpdate:
    """What one batch teaches about one sensor's state."""

    sensor_pk: int
    newest_event_us: int
    newest_received_us: int
    battery: int | None
    rssi: int | None
    skew_s: float | None
    skewed: bool | None
    last_boot_seq: tuple[int, int]
    last_heartbeat: tuple[int, int] | None
    tamper_us: int | None
    stored: int = 0
    duplicates: int = 0
    heartbeats: int = 0


def summarise_sensors(
    messages: Iterable[Accepted],
    stored_keys: set[tuple[int, int, int]],
    heartbeat_keys: set[tuple[int, int, int]],
) -> list[SensorUpdate]:
    """Fold accepted messages into one update per sensor: newest message wins for
    battery/rssi, newest received for clock skew, counters add up."""
    updates: dict[int, SensorUpdate] = {}
    newest_received: dict[int, int] = {}
    counted: set[tuple[int, int, int]] = set()
    for m in messages:
        u = updates.get(m.sensor_pk)
        if u is None:
            u = updates[m.sensor_pk] = SensorUpdate(
                sensor_pk=m.sensor_pk,
                newest_event_us=m.event_us,
                newest_received_us=m.received_us,
                battery=m.battery,
                rssi=m.rssi,
                skew_s=m.skew_s,
                skewed=None if m.skew_s is None else m.skewed,
                last_boot_seq=(m.boot, m.seq),
                last_heartbeat=None,
                tamper_us=None,
            )
            newest_received[m.sensor_pk] = m.received_us
        else:
            if m.event_us >= u.newest_event_us:
                u.newest_event_us = m.event_us
                u.battery = m.battery if m.battery is not None else u.battery
                u.rssi = m.rssi if m.rssi is not None else u.rssi
            if m.received_us >= newest_received[m.sensor_pk]:
                newest_received[m.sensor_pk] = m.received_us
                u.newest_received_us = m.received_us
                if m.skew_s is not None:
                    u.skew_s, u.skewed = m.skew_s, m.skewed
            u.last_boot_seq = max(u.last_boot_seq, (m.boot, m.seq))
        fresh = m.key not in counted
        counted.add(m.key)
        if m.type is EventType.HEARTBEAT:
            if fresh and m.key in heartbeat_keys:
                u.heartbeats += 1
                u.last_heartbeat = max(u.last_heartbeat or (-1, -1), (m.boot, m.seq))
            else:
                u.duplicates += 1
        elif fresh and m.key in stored_keys:
            u.stored += 1
            if m.type is EventType.TAMPER:
                u.tamper_us = max(u.tamper_us or 0, m.event_us)
        else:
            u.duplicates += 1
    return list(updates.values())
