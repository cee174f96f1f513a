"""Request and response models: one per direction."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from core.models import SENSOR_ID_RE, NightWindow


class HouseholdCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    timezone: str = "Asia/Seoul"
    night_window: str = "23:00-06:00"
    webhook_url: AnyHttpUrl | None = None
    # after arming away/night, openings within this many seconds do not count (null: the
    # service's ANSIM_EXIT_DELAY_S)
    exit_delay_s: Annotated[int | None, Field(ge=0, le=3600)] = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Asia/Seoul)"
            ) from None
        return value

    @field_validator("night_window")
    @classmethod
    def _window(cls, value: str) -> str:
        return str(NightWindow.parse(value))


class HouseholdCreated(BaseModel):
    household_id: str
    segment_id: str | None
    token: str
    webhook_secret: str | None = None
    timezone: str
    night_window: str
    exit_delay_s: int | None = None


class SensorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sensor_id: str | None = Field(
        default=None, description="optional; generated when absent. Matches [a-z0-9][a-z0-9-]{2,63}"
    )

    @field_validator("sensor_id")
    @classmethod
    def _sensor_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not SENSOR_ID_RE.match(value):
            raise ValueError("sensor_id must match [a-z0-9][a-z0-9-]{2,63}")
        if value.startswith("ansim-"):
            raise ValueError("sensor ids starting with 'ansim-' are reserved for services")
        return value


class MqttCredentials(BaseModel):
    host: str
    port: int = Field(description="the TLS listener (ANSIM_MQTT_TLS_PORT)")
    tls: bool = True
    ca_pem: str | None = Field(
        description="PEM CA to verify the broker with; null: a public CA signed it"
    )
    server_name: str = Field(description="the name the broker's certificate is checked for")
    username: str
    password: str
    client_id: str
    event_topic: str
    status_topic: str


class SensorProvisioned(BaseModel):
    sensor_id: str
    household_id: str
    mqtt: MqttCredentials


class SensorPublic(BaseModel):
    sensor_id: str
    household_id: str
    status: Literal["unknown", "online", "offline", "retired"]
    status_reason: str | None
    status_changed_at: str | None
    last_seen: str | None
    battery: int | None
    rssi: int | None
    clock_skew: float | None = Field(
        description="device clock minus receive time, seconds (live mode; null in replay)"
    )
    clock_skewed: bool
    tamper: bool
    last_tamper_at: str | None
    created_at: str
    retired_at: str | None
    events_stored: int
    heartbeats: int
    duplicates: int


class SensorRetired(BaseModel):
    sensor_id: str
    status: Literal["retired"]
    retired_at: str


class EventPublic(BaseModel):
    boot: int
    seq: int
    ts: str = Field(description="event time (the device's, or the receive time when skewed)")
    device_ts: str
    received_at: str
    type: str
    battery: int | None
    rssi: int | None
    clock_skewed: bool


class EventPage(BaseModel):
    data: list[EventPublic]
    count: int
    next_cursor: str | None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    broker: bool
    time_mode: str
