"""The wire contract: topics and event payloads (SPEC "Wire contract").

`parse_topic` and `parse_event` turn raw MQTT input into typed values or raise
`WireError` with a machine-readable `reason` (used as the dead-letter reason) and a
human-readable `detail`. `encode_event` is the inverse used by the simulator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import WireError
from core.models import SENSOR_ID_RE, EventType

TOPIC_ROOT = "ansim/v1"
SENSORS_PREFIX = f"{TOPIC_ROOT}/sensors/"
SENSORS_FILTER = f"{TOPIC_ROOT}/sensors/#"
MAX_PAYLOAD_BYTES = 1024
# The instants a `ts` may name, in UTC. A valid RFC 3339 text such as
# 9999-12-31T23:59:59-12:00 is past year 9999 once in UTC and cannot be converted; far
# inside datetime's range on both sides, every later step (offsets, household zones,
# rule windows and routine look-backs of weeks) stays representable. A clock reset to
# 1970 or 2000 is still inside: in live mode it is stored as skewed.
TS_MIN_UTC = datetime(1900, 1, 1, tzinfo=UTC)
TS_MAX_UTC = datetime(3000, 1, 1, tzinfo=UTC)

TopicKind = Literal["event", "status"]


def event_topic(sensor_id: str) -> str:
    return f"{SENSORS_PREFIX}{sensor_id}/event"


def status_topic(sensor_id: str) -> str:
    return f"{SENSORS_PREFIX}{sensor_id}/status"


@dataclass(frozen=True, slots=True)
class SensorTopic:
    sensor_id: str
    kind: TopicKind


def parse_topic(topic: str) -> SensorTopic:
    """`ansim/v1/sensors/{sensor_id}/{event|status}` → SensorTopic, else WireError."""
    if not topic.startswith(SENSORS_PREFIX):
        raise WireError("unknown_topic", f"topic {topic!r} is outside {SENSORS_PREFIX}")
    parts = topic[len(SENSORS_PREFIX) :].split("/")
    if len(parts) != 2 or parts[1] not in ("event", "status"):
        raise WireError("unknown_topic", f"topic {topic!r} is not .../{{sensor_id}}/event|status")
    sensor_id, kind = parts
    if not SENSOR_ID_RE.match(sensor_id):
        raise WireError("bad_sensor_id", f"sensor id {sensor_id!r} does not match the contract")
    return SensorTopic(sensor_id, "event" if kind == "event" else "status")


def sensor_id_hint(topic: str) -> str | None:
    """The sensor id a topic under `sensors/` names, even when the rest is wrong."""
    if not topic.startswith(SENSORS_PREFIX):
        return None
    candidate = topic[len(SENSORS_PREFIX) :].split("/", 1)[0]
    return candidate if SENSOR_ID_RE.match(candidate) else None


_ZERO = TS_MAX_UTC - TS_MAX_UTC


def printable(text: str, limit: int = 500) -> str:
    """`text` safe to store and log: lone surrogates (JSON `\\ud800`) escaped, cut short."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


class EventPayload(BaseModel):
    """One event as a sensor sends it. Strict: no coercion of strings into numbers."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    boot: Annotated[int, Field(ge=0, le=2**53)]
    seq: Annotated[int, Field(ge=0, le=2**53)]
    ts: datetime
    type: EventType
    battery: Annotated[int, Field(ge=0, le=100)] | None = None
    rssi: Annotated[int, Field(ge=-200, le=50)] | None = None

    @field_validator("ts", mode="before")
    @classmethod
    def _ts_is_rfc3339_with_offset(cls, value: object) -> datetime:
        if not isinstance(value, str):
            raise ValueError("ts must be an RFC 3339 string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"ts is not RFC 3339: {exc}") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError("ts must carry a UTC offset")
        # aware subtraction works in timedelta arithmetic, which never leaves the range
        if not TS_MIN_UTC - parsed <= _ZERO <= TS_MAX_UTC - parsed:
            raise ValueError("ts is out of range: its UTC instant must lie in years 1900-2999")
        return parsed

    @field_validator("type", mode="before")
    @classmethod
    def _type_known(cls, value: object) -> EventType:
        if not isinstance(value, str):
            raise ValueError("type must be a string")
        try:
            return EventType(value)
        except ValueError:
            raise ValueError(f"unknown type {value!r}") from None


def _reason_for(exc: ValidationError) -> str:
    for err in exc.errors():
        loc = err.get("loc", ())
        if err["type"] == "missing":
            return "missing_field"
        if err["type"] == "json_invalid":
            return "bad_json"
        if loc and loc[0] == "type":
            return "unknown_type"
    first = exc.errors()[0]["type"] if exc.errors() else ""
    if first in ("model_type", "model_attributes_type"):
        return "bad_json"
    return "invalid_field"


def parse_event(payload: bytes) -> EventPayload:
    """Validate a raw payload against the wire contract, or raise WireError."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError("oversize", f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("bad_encoding", "payload is not UTF-8") from None
    try:
        return EventPayload.model_validate_json(text)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
        )
        raise WireError(_reason_for(exc), printable(detail)) from None


def parse_status(payload: bytes) -> Literal["online", "offline"] | None:
    """Retained status: `online`/`offline`; an empty payload (a cleared retain) is None."""
    if payload == b"":
        return None
    text = payload.decode("utf-8", errors="replace").strip()
    if text == "online":
        return "online"
    if text == "offline":
        return "offline"
    raise WireError("bad_status", f"status must be 'online' or 'offline', got {text[:40]!r}")


def encode_event(
    boot: int,
    seq: int,
    ts: datetime,
    type_: EventType | str,
    battery: int | None = None,
    rssi: int | None = None,
) -> bytes:
    """Serialise an event exactly as a sensor does (millisecond RFC 3339 with offset)."""
    if ts.tzinfo is None:
        raise ValueError("ts must be timezone-aware")
    body: dict[str, object] = {
        "boot": boot,
        "seq": seq,
        "ts": ts.isoformat(timespec="milliseconds"),
        "type": str(type_),
    }
    if battery is not None:
        body["battery"] = battery
    if rssi is not None:
        body["rssi"] = rssi
    return json.dumps(body, separators=(",", ":")).encode()
