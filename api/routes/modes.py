"""Household state: the arming mode (with history) and a household's own view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, field_validator

from api.deps import CurrentPrincipal, DbDep, SettingsDep, ensure_household_access
from api.engine import run_engine
from api.timefmt import fmt_us, now_us
from core.engine import ModeChangeInput
from core.models import Mode, TimeMode
from core.storage import households, modes, sensors
from core.timeutil import from_us, to_us

router = APIRouter(prefix="/api/v1/households", tags=["households"])


class ModeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode
    at: datetime | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("at must carry a UTC offset (RFC 3339)")
        return value


class ModeState(BaseModel):
    household_id: str
    mode: Mode
    since: str
    changed: bool


@router.put("/{household_id}/mode", response_model=ModeState)
async def set_mode(
    household_id: str,
    body: ModeChange,
    db: DbDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> ModeState:
    """Arm or disarm. In `replay` mode `at` (RFC 3339) places the change on the event
    clock; in `live` mode the server's time is used."""
    ensure_household_access(principal, household_id)
    hh = await households.get_household(db.reader, household_id)
    if hh is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
    recorded = now_us()
    at_us = (
        to_us(body.at)
        if body.at is not None and settings.time_mode is TimeMode.REPLAY
        else recorded
    )
    async with db.write() as conn:
        changed = await modes.set_mode(
            conn, household_id, str(body.mode), at_us, recorded, principal.actor
        )
        # the change is recorded first, so the loaded history holds it (and the engine adds
        # it once more: the same time and mode, no different verdict)
        await run_engine(
            conn, settings, household_id, [ModeChangeInput(household_id, body.mode, from_us(at_us))]
        )
    return ModeState(
        household_id=household_id,
        mode=body.mode,
        since=fmt_us(at_us if changed else hh.mode_since_us, hh.timezone) or "",
        changed=changed,
    )


@router.get("/{household_id}")
async def get_household(
    household_id: str, db: DbDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The household as its resident (or an operator) sees it: mode, sensors, settings."""
    ensure_household_access(principal, household_id)
    hh = await households.get_household(db.reader, household_id)
    if hh is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
    own = await sensors.list_household_sensors(db.reader, household_id)
    history = await modes.mode_history(db.reader, household_id, 20)
    return {
        "household_id": hh.household_id,
        "name": hh.name,
        "timezone": hh.timezone,
        "night_window": hh.night_window,
        "segment_id": hh.segment_id,
        "webhook": hh.webhook_url is not None,
        "mode": hh.mode,
        "mode_since": fmt_us(hh.mode_since_us, hh.timezone),
        "mode_history": [
            {"mode": m, "at": fmt_us(at, hh.timezone), "actor": actor} for m, at, actor in history
        ],
        "sensors": [
            {
                "sensor_id": s.sensor_id,
                "status": s.status,
                "battery": s.battery,
                "last_seen": fmt_us(s.last_seen_us, hh.timezone),
            }
            for s in own
        ],
        "created_at": fmt_us(hh.created_us, hh.timezone),
    }
