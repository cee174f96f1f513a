"""What the web console needs beyond the resource routes: who the caller is, the fleet
table and the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import CurrentPrincipal, DbDep, Operator, SettingsDep
from api.params import id_query
from api.timefmt import fmt_us
from core.models import Role
from core.storage import console as console_store
from core.storage import households

router = APIRouter(prefix="/api/v1", tags=["console"])


class WhoAmI(BaseModel):
    role: Role
    actor: str
    household_id: str | None
    household_name: str | None
    sensor_ids: list[str]
    # operators only: is a control-centre webhook configured (escalations go nowhere without)
    centre_webhook: bool | None = None


@router.get("/whoami", response_model=WhoAmI)
async def whoami(db: DbDep, principal: CurrentPrincipal, settings: SettingsDep) -> WhoAmI:
    """The caller's role, and for a resident her household and its sensors."""
    name: str | None = None
    sensor_ids: list[str] = []
    if principal.role is Role.RESIDENT and principal.household_id is not None:
        hh = await households.get_household(db.reader, principal.household_id)
        name = hh.name if hh else None
        fleet = await console_store.list_fleet(
            db.reader, console_store.FleetFilter(household_id=principal.household_id), 100
        )
        sensor_ids = [s.sensor_id for s in fleet]
    return WhoAmI(
        role=principal.role,
        actor=principal.actor,
        household_id=principal.household_id,
        household_name=name,
        sensor_ids=sensor_ids,
        centre_webhook=(
            bool(settings.centre_webhook_url) if principal.role is not Role.RESIDENT else None
        ),
    )


@router.get("/fleet")
async def fleet(
    *,
    db: DbDep,
    settings: SettingsDep,
    _operator: Operator,
    status: Literal["online", "offline", "unknown", "retired"] | None = None,
    low_battery: Annotated[
        bool, Query(description="only sensors under the low-battery threshold")
    ] = False,
    tamper: Annotated[bool | None, Query(description="a tamper event was seen")] = None,
    clock_skewed: bool | None = None,
    household_id: Annotated[str | None, Query(max_length=64)] = None,
    include_retired: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[int | None, id_query(minimum=0, description="next_cursor of the last page")],
) -> dict[str, Any]:
    """Every sensor with its health: status, battery, last seen, tamper, clock skew."""
    threshold = settings.battery_low_pct
    flt = console_store.FleetFilter(
        status=status,
        low_battery_below=threshold if low_battery else None,
        tamper=tamper,
        clock_skewed=clock_skewed,
        household_id=household_id,
        include_retired=include_retired,
    )
    rows = await console_store.list_fleet(db.reader, flt, limit + 1, cursor)
    page = rows[:limit]
    data = [
        {
            "sensor_id": r.sensor_id,
            "household_id": r.household_id,
            "household_name": r.household_name,
            "status": r.status,
            "status_reason": r.status_reason,
            "status_at": fmt_us(r.status_us, r.timezone or "UTC"),
            "last_seen": fmt_us(r.last_seen_us, r.timezone or "UTC"),
            "battery": r.battery,
            "battery_low": r.battery is not None and r.battery < threshold,
            "rssi": r.rssi,
            "clock_skew": r.clock_skew_s,
            "clock_skewed": r.clock_skewed,
            "tamper": r.last_tamper_us is not None,
            "last_tamper_at": fmt_us(r.last_tamper_us, r.timezone or "UTC"),
            "retired": r.retired_us is not None,
        }
        for r in page
    ]
    return {
        "data": data,
        "count": len(data),
        "next_cursor": page[-1].sensor_pk if len(rows) > limit and page else None,
        "summary": await console_store.summarise_fleet(db.reader, threshold),
        "battery_low_pct": threshold,
    }


@router.get("/audit")
async def audit_log(
    *,
    db: DbDep,
    settings: SettingsDep,
    _operator: Operator,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="prefix, e.g. `sensor.`")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, id_query(description="audit_id to continue below")],
) -> dict[str, Any]:
    """Who did what, newest first."""
    rows = await console_store.list_audit(db.reader, limit + 1, cursor, actor, action)
    page = rows[:limit]
    for r in page:
        r["at"] = fmt_us(r.pop("at_us"), settings.timezone)
    return {
        "data": page,
        "count": len(page),
        "next_cursor": page[-1]["audit_id"] if len(rows) > limit and page else None,
    }
