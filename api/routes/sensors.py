"""Sensors: state, stored events, retirement."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import CurrentPrincipal, DbDep, MaybeAdminDep, Operator, ensure_household_access
from api.params import cursor_int, decode_cursor, encode_cursor
from api.schemas import EventPage, EventPublic, SensorPublic, SensorRetired
from api.timefmt import fmt_us, now_us
from core.broker.dynsec import BrokerUnavailable, DynsecError
from core.sensor_broker import finish_deletes
from core.storage import audit, events, households, sensors
from core.storage.sensors import SensorRow
from core.timeutil import from_us, rfc3339

router = APIRouter(prefix="/api/v1/sensors", tags=["sensors"])
log = logging.getLogger("ansim.api")


async def _sensor_for(db: DbDep, principal: CurrentPrincipal, sensor_id: str) -> SensorRow:
    row = await sensors.get_sensor(db.reader, sensor_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"sensor {sensor_id!r} not found")
    ensure_household_access(principal, row.household_id)
    return row


async def _zone(db: DbDep, household_id: str) -> str:
    hh = await households.get_household(db.reader, household_id)
    return hh.timezone if hh else "UTC"


@router.get("/{sensor_id}", response_model=SensorPublic)
async def get_sensor(sensor_id: str, db: DbDep, principal: CurrentPrincipal) -> SensorPublic:
    row = await _sensor_for(db, principal, sensor_id)
    zone = await _zone(db, row.household_id)
    return SensorPublic(
        sensor_id=row.sensor_id,
        household_id=row.household_id,
        status=row.status,  # type: ignore[arg-type]
        status_reason=row.status_reason,
        status_changed_at=fmt_us(row.status_us, zone),
        last_seen=fmt_us(row.last_seen_us, zone),
        battery=row.battery,
        rssi=row.rssi,
        clock_skew=None if row.clock_skew_s is None else round(row.clock_skew_s, 1),
        clock_skewed=row.clock_skewed,
        tamper=row.last_tamper_us is not None,
        last_tamper_at=fmt_us(row.last_tamper_us, zone),
        created_at=fmt_us(row.created_us, zone) or "",
        retired_at=fmt_us(row.retired_us, zone),
        events_stored=row.events_stored,
        heartbeats=row.heartbeats,
        duplicates=row.duplicates,
    )


def _decode_cursor(cursor: str) -> tuple[int, int, int]:
    event_us, boot, seq = decode_cursor(cursor, 3)
    return cursor_int(event_us), cursor_int(boot, 0), cursor_int(seq, 0)


@router.get("/{sensor_id}/events", response_model=EventPage)
async def list_sensor_events(
    sensor_id: str,
    db: DbDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the last page")] = None,
) -> EventPage:
    """Stored door events, newest first (heartbeats refresh the sensor, they are not events)."""
    row = await _sensor_for(db, principal, sensor_id)
    before = _decode_cursor(cursor) if cursor else None
    rows = await events.list_events(db.reader, row.sensor_pk, limit + 1, before)
    page, more = rows[:limit], len(rows) > limit
    data = [
        EventPublic(
            boot=e.boot,
            seq=e.seq,
            ts=rfc3339(from_us(e.event_us, e.offset_min)),
            device_ts=rfc3339(from_us(e.device_us, e.offset_min)),
            received_at=rfc3339(from_us(e.received_us, e.offset_min)),
            type=e.type,
            battery=e.battery,
            rssi=e.rssi,
            clock_skewed=e.skewed,
        )
        for e in page
    ]
    last = page[-1] if page else None
    next_cursor = encode_cursor(last.event_us, last.boot, last.seq) if more and last else None
    return EventPage(data=data, count=len(data), next_cursor=next_cursor)


@router.delete(
    "/{sensor_id}",
    response_model=SensorRetired,
    responses={404: {"description": "no such sensor"},
               503: {"description": "retired, but the broker is unreachable: retry"}},
)  # fmt: skip
async def retire_sensor(
    sensor_id: str, db: DbDep, admin: MaybeAdminDep, operator: Operator
) -> SensorRetired:
    """Retire: committed first (the bridge refuses the sensor's messages from then on), then
    its broker credentials are deleted and the sensor disconnected. When the broker cannot be
    reached the answer is 503 and the sensor stays retired; a retry, or the scheduler's sweep,
    deletes the credentials. Repeating the call is harmless."""
    row = await sensors.get_sensor(db.reader, sensor_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"sensor {sensor_id!r} not found")
    now = now_us()
    async with db.write() as conn:
        changed = await sensors.retire_sensor(conn, sensor_id, now)
        if changed:
            await audit.record(conn, now, operator.actor, "sensor.retire", sensor_id,
                               {"household_id": row.household_id})  # fmt: skip
        state = await sensors.get_broker_state(conn, sensor_id)
    if state is not None and state.broker_state == "deleting":
        if admin is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "sensor retired; the MQTT broker is unreachable, its credentials are deleted "
                "on retry or by the sweep",
            )
        try:
            await finish_deletes(db, admin, [sensor_id])
        except (DynsecError, BrokerUnavailable) as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"broker: {exc}") from None
    retired_us = now if changed else (row.retired_us or now)
    log.info("sensor retired", extra={"sensor_id": sensor_id})
    return SensorRetired(sensor_id=sensor_id, status="retired", retired_at=fmt_us(retired_us) or "")
