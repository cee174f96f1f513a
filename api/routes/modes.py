"""Household state: the arming mode (with history) and a household's own view."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import CurrentPrincipal, DbDep, SettingsDep, ensure_household_access
from api.engine import run_engine
from api.routes.alerts import get_alert
from api.timefmt import fmt_us, now_us
from core.credentials import hash_pin, pin_matches
from core.engine import (
    AlertFolded,
    AlertRaised,
    DuressInput,
    HelpPressInput,
    Input,
    ModeChangeInput,
)
from core.models import Mode, TimeMode
from core.rules import ARMED_MODES
from core.settings import Settings
from core.storage import audit, households, modes, sensors
from core.timeutil import from_us, to_us

router = APIRouter(prefix="/api/v1/households", tags=["households"])


class ModeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode
    at: datetime | None = None
    # optional today; a disarm with her duress PIN raises a silent `duress` alert for the
    # control centre (the answer is the same as for any other disarm)
    pin: Annotated[str | None, Field(max_length=64)] = None

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
    # armed away/night: until when openings do not count (the resident view counts it down)
    exit_delay_until: str | None = None


class DuressPin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # 4 to 12 digits; null removes it
    pin: Annotated[str | None, Field(pattern=r"^[0-9]{4,12}$")]


class HouseholdUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # seconds after arming away/night during which openings do not count (null: the
    # service's ANSIM_EXIT_DELAY_S)
    exit_delay_s: Annotated[int | None, Field(ge=0, le=3600)]


def _exit_delay_s(hh: households.HouseholdRow, settings: Settings) -> int:
    return hh.exit_delay_s if hh.exit_delay_s is not None else settings.exit_delay_s


def _exit_delay_until(
    mode: Mode | str, armed_us: int, hh: households.HouseholdRow, settings: Settings
) -> str | None:
    """When the exit delay of an arming at `armed_us` ends (None: not armed, or no delay)."""
    delay = _exit_delay_s(hh, settings)
    if Mode(mode) not in ARMED_MODES or delay <= 0:
        return None
    return fmt_us(armed_us + delay * 1_000_000, hh.timezone)


@router.put("/{household_id}/mode", response_model=ModeState)
async def set_mode(
    household_id: str,
    body: ModeChange,
    db: DbDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> ModeState:
    """Arm or disarm. In `replay` mode `at` (RFC 3339) places the change on the event
    clock, and without `at` it goes right after the household's latest stored event (before
    any event when it has none), so it governs every message that arrives after it; in
    `live` mode the server's time is used."""
    ensure_household_access(principal, household_id)
    hh = await households.get_household(db.reader, household_id)
    if hh is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
    recorded = now_us()
    replay = settings.time_mode is TimeMode.REPLAY
    stored_pin = await households.duress_pin_hash(db.reader, household_id)
    duress = (
        body.pin is not None
        and stored_pin is not None
        and body.mode not in ARMED_MODES
        and await asyncio.to_thread(pin_matches, body.pin, stored_pin)  # scrypt: ~50 ms
    )
    at_us = to_us(body.at) if body.at is not None and replay else recorded
    async with db.write() as conn:
        if replay and body.at is None:  # on the event clock, never the wall clock
            at_us = await modes.replay_mode_time(conn, household_id)
        changed = await modes.set_mode(
            conn, household_id, str(body.mode), at_us, recorded, principal.actor
        )
        # the change is recorded first, so the loaded history holds it (and the engine adds
        # it once more: the same time and mode, no different verdict)
        inputs: list[Input] = [ModeChangeInput(household_id, body.mode, from_us(at_us))]
        if duress:  # the disarm happens all the same; only the control centre is told
            inputs.append(DuressInput(household_id, principal.actor, from_us(at_us)))
        await run_engine(conn, settings, household_id, inputs)
    return ModeState(
        household_id=household_id,
        mode=body.mode,
        since=fmt_us(at_us if changed else hh.mode_since_us, hh.timezone) or "",
        changed=changed,
        # every arming (even of the mode already set) starts the exit delay anew
        exit_delay_until=_exit_delay_until(body.mode, at_us, hh, settings),
    )


@router.put("/{household_id}/duress-pin", status_code=status.HTTP_204_NO_CONTENT)
async def set_duress_pin(
    household_id: str, body: DuressPin, db: DbDep, principal: CurrentPrincipal
) -> Response:
    """Set (or, with `null`, remove) the resident's duress PIN, stored only as a hash.
    Disarming with it (`PUT .../mode` with `pin`) disarms as usual and silently raises a
    `duress` alert for the control centre: nothing on her webhook, her list or her answer."""
    ensure_household_access(principal, household_id)
    pin_hash = None if body.pin is None else await asyncio.to_thread(hash_pin, body.pin)
    async with db.write() as conn:
        if not await households.set_duress_pin_hash(conn, household_id, pin_hash):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
        await audit.record(conn, now_us(), principal.actor, "household.duress_pin", household_id,
                           {"set": pin_hash is not None})  # fmt: skip
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{household_id}/help", status_code=status.HTTP_201_CREATED)
async def press_help(
    household_id: str, db: DbDep, settings: SettingsDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The help button, at any time (the resident, or an operator for her): a `help` alert,
    sent to her webhook and to the control centre at once. A press while one is still open
    folds into it (`repeats`). Only an operator resolves it. Answers the alert as
    `GET /api/v1/alerts/{id}` does."""
    ensure_household_access(principal, household_id)
    if await households.get_household(db.reader, household_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
    at = from_us(now_us())
    async with db.write() as conn:
        if settings.time_mode is TimeMode.REPLAY:  # on the event clock, as a mode change
            at = from_us(await modes.replay_mode_time(conn, household_id))
        done = await run_engine(
            conn, settings, household_id, [HelpPressInput(household_id, principal.actor, at)]
        )
        alert_id = next(
            (a.alert_id for a in done.changes.alerts if isinstance(a, AlertRaised | AlertFolded)),
            None,
        )
    if alert_id is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the help request was not recorded")
    return await get_alert(alert_id, db, principal)


@router.patch("/{household_id}")
async def update_household(
    household_id: str,
    body: HouseholdUpdate,
    db: DbDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """Change the household's own settings: `exit_delay_s` (null: the service's default)."""
    ensure_household_access(principal, household_id)
    async with db.write() as conn:
        if not await households.set_exit_delay(conn, household_id, body.exit_delay_s):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
        await audit.record(conn, now_us(), principal.actor, "household.update", household_id,
                           {"exit_delay_s": body.exit_delay_s})  # fmt: skip
    return await get_household(household_id, db, settings, principal)


@router.get("/{household_id}")
async def get_household(
    household_id: str, db: DbDep, settings: SettingsDep, principal: CurrentPrincipal
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
        "exit_delay_s": _exit_delay_s(hh, settings),
        # the last arming's (history is newest first); in the past once it is over
        "exit_delay_until": (
            _exit_delay_until(history[0][0], history[0][1], hh, settings) if history else None
        ),
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
