"""Alerts: the queue, the lifecycle (acknowledge, escalate, resolve, a resident's answer),
the delivery log, and a live Server-Sent Events stream of alert changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from api.deps import CurrentPrincipal, DbDep, Operator, SettingsDep, ensure_household_access
from api.engine import run_engine
from api.params import cursor_int, decode_cursor, encode_cursor, id_header
from api.timefmt import fmt_us, now_us
from core.engine import AcknowledgeInput, EscalateInput, HelpInput, Input, ResolveInput
from core.models import (
    HIDDEN_FROM_RESIDENT,
    AlertKind,
    AlertState,
    NightWindow,
    Resolution,
    Role,
    is_incident,
)
from core.rules import AlertTransitionError, HelpStandsError, HouseholdState
from core.storage import alerts as alert_rows
from core.storage import households
from core.storage.alert_state import alert_view
from core.storage.outbox import list_notifications
from core.storage.tokens import Principal
from core.timeutil import from_us, rfc3339

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class AlertPublic(BaseModel):
    alert_id: str
    kind: AlertKind
    state: AlertState
    resolution: Resolution | None
    household_id: str
    sensor_id: str | None
    event_ts: str
    last_event_ts: str
    repeats: int
    reason: str
    escalated: bool
    escalated_at: str | None
    # when it escalates to the control centre by itself, while open and not yet escalated
    escalate_due_at: str | None = None
    created_at: str
    updated_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    resolved_at: str | None
    resolved_by: str | None
    segment_id: str | None
    # the resident answered "help": it stays with the control centre until an operator
    # resolves it (her own answers are refused from then on)
    help_requested: bool = False
    help_requested_at: str | None = None
    # resolved `confirmed` and of a kind about the street: it feeds the segment grades
    incident: bool = False


class AlertPage(BaseModel):
    data: list[AlertPublic]
    count: int
    next_cursor: str | None


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: Resolution


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Literal["it_was_me", "help"]


def _public(r: alert_rows.AlertRow, zone: str = "Asia/Seoul") -> AlertPublic:
    tz = ZoneInfo(zone)
    return AlertPublic(
        alert_id=r.alert_id,
        kind=AlertKind(r.kind),
        state=AlertState(r.state),
        resolution=Resolution(r.resolution) if r.resolution else None,
        household_id=r.household_id,
        sensor_id=r.sensor_id,
        event_ts=rfc3339(from_us(r.event_us).astimezone(tz)),
        last_event_ts=rfc3339(from_us(r.last_event_us).astimezone(tz)),
        repeats=r.repeats,
        reason=r.reason,
        escalated=r.escalated_us is not None,
        escalated_at=fmt_us(r.escalated_us, zone),
        escalate_due_at=(
            fmt_us(r.escalate_due_us, zone)
            if r.escalated_us is None and r.state == "open" and r.escalate_due_us
            else None
        ),
        created_at=fmt_us(r.created_us, zone) or "",
        updated_at=fmt_us(r.updated_us, zone) or "",
        acknowledged_at=fmt_us(r.acknowledged_us, zone),
        acknowledged_by=r.acknowledged_by,
        resolved_at=fmt_us(r.resolved_us, zone),
        resolved_by=r.resolved_by,
        segment_id=r.segment_id,
        help_requested=r.help_us is not None,
        help_requested_at=fmt_us(r.help_us, zone),
        incident=r.state == "resolved" and is_incident(r.kind, r.resolution),
    )


def _cursor(r: alert_rows.AlertRow) -> str:
    return encode_cursor(r.created_us, r.alert_id)


def _uncursor(cursor: str) -> tuple[int, str]:
    created, alert_id = decode_cursor(cursor, 2)
    return cursor_int(created), alert_id


@router.get("", response_model=AlertPage)
async def list_alerts(
    db: DbDep,
    principal: CurrentPrincipal,
    household_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: AlertKind | None = None,
    state: AlertState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the last page")] = None,
) -> AlertPage:
    """Newest first. Operators see all (filter by `household_id`); a resident her own."""
    if principal.role is Role.RESIDENT:
        if household_id is not None and household_id != principal.household_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "this token belongs to another household"
            )
        household_id = principal.household_id
    rows = await alert_rows.list_alerts(
        db.reader,
        limit=limit + 1,
        household_id=household_id,
        kind=str(kind) if kind else None,
        state=str(state) if state else None,
        before=_uncursor(cursor) if cursor else None,
        hide_kinds=HIDDEN_FROM_RESIDENT if principal.role is Role.RESIDENT else (),
    )
    page = rows[:limit]
    return AlertPage(
        data=[_public(r) for r in page],
        count=len(page),
        next_cursor=_cursor(page[-1]) if len(rows) > limit and page else None,
    )


async def _alert_for(db: DbDep, principal: Principal, alert_id: str) -> alert_rows.AlertRow:
    row = await alert_rows.get_alert(db.reader, alert_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id!r} not found")
    ensure_household_access(principal, row.household_id)
    if principal.role is Role.RESIDENT and row.kind in HIDDEN_FROM_RESIDENT:
        # a duress alert does not exist for her (whoever holds her phone)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id!r} not found")
    return row


@router.get("/stream", summary="Server-Sent Events of alert changes")
async def stream_alerts(
    request: Request,
    db: DbDep,
    principal: CurrentPrincipal,
    last_event_id: Annotated[
        int | None, id_header("Last-Event-ID", description="the last change's id seen")
    ],
) -> StreamingResponse:
    """`event: alert` with the alert as `data` on every change (raise, acknowledge,
    escalate, resolve); `id` is the change's sequence number, so a client that reconnects
    with `Last-Event-ID` misses nothing. A resident's stream carries only her household."""
    household = principal.household_id if principal.role is Role.RESIDENT else None
    after = (
        last_event_id
        if last_event_id is not None
        else await alert_rows.last_transition_id(db.reader)
    )

    async def events() -> AsyncIterator[bytes]:
        nonlocal after
        yield b": ansim alert stream\nretry: 2000\n\n"
        idle = 0.0
        while not await request.is_disconnected():
            changes = await alert_rows.transitions_since(
                db.reader, after, household, hide_kinds=HIDDEN_FROM_RESIDENT if household else ()
            )
            for ch in changes:
                after = ch["transition_id"]
                row = await alert_rows.get_alert(db.reader, ch["alert_id"])
                if row is None:
                    continue
                data = _public(row).model_dump(mode="json") | {"change": ch["action"]}
                yield f"id: {after}\nevent: alert\ndata: {json.dumps(data)}\n\n".encode()
            if changes:
                idle = 0.0
                continue
            await asyncio.sleep(0.25)
            idle += 0.25
            if idle >= 15:
                idle = 0.0
                yield b": keep-alive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{alert_id}")
async def get_alert(alert_id: str, db: DbDep, principal: CurrentPrincipal) -> dict[str, Any]:
    row = await _alert_for(db, principal, alert_id)
    history = await alert_rows.alert_history(db.reader, alert_id)
    for h in history:
        h["at"] = fmt_us(h.pop("at_us"))
    return _public(row).model_dump(mode="json") | {"history": history, "detail": row.detail}


def _household_state(hh: households.HouseholdRow | None, household_id: str) -> HouseholdState:
    if hh is None:
        return HouseholdState(household_id)
    return HouseholdState(
        household_id=household_id,
        timezone=hh.timezone,
        night_window=NightWindow.parse(hh.night_window),
    )


async def _transition(
    db: DbDep,
    settings: SettingsDep,
    principal: Principal,
    alert_id: str,
    action: Literal["acknowledge", "resolve", "escalate", "help"],
    resolution: Resolution | None = None,
    answer: str | None = None,
) -> AlertPublic:
    await _alert_for(db, principal, alert_id)
    at = from_us(now_us())
    by_resident = principal.role is Role.RESIDENT
    refused: HelpStandsError | None = None
    async with db.write() as conn:
        row = await alert_rows.get_alert(conn, alert_id)
        assert row is not None
        item: Input
        if action in ("escalate", "help"):
            if row.state == "resolved":
                raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} is resolved")
            item = (
                HelpInput(alert_id, row.household_id, principal.actor)
                if action == "help"
                else EscalateInput(
                    alert_id, row.household_id, principal.actor, f"escalated by {principal.actor}"
                )
            )
        elif action == "acknowledge":
            item = AcknowledgeInput(alert_view(row), principal.actor, at, by_resident)
        else:
            assert resolution is not None
            hh = await households.get_household(conn, row.household_id)
            item = ResolveInput(alert_view(row), resolution, principal.actor, at,
                                _household_state(hh, row.household_id), by_resident)  # fmt: skip
        try:
            done = await run_engine(conn, settings, row.household_id, [item])
        except AlertTransitionError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except HelpStandsError as exc:
            # nothing was decided; her answer is kept in the alert's history (the centre sees
            # she pressed it after asking for help: made to, or changed her mind)
            refused = exc
            await alert_rows.add_transition(
                conn, alert_id, now_us(), principal.actor, "refused", row.state, row.state,
                {"action": str(exc.action), "answer": answer or action,
                 "why": "help was asked: only an operator resolves it"},
            )  # fmt: skip
        if refused is None and (
            action == "escalate"
            and row.household_id in done.state.households  # unenrolled: left as it is
            and alert_id not in done.changes.escalated
        ):
            raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} is already escalated")
        updated = await alert_rows.get_alert(conn, alert_id)
    if refused is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, str(refused))
    assert updated is not None
    return _public(updated)


@router.post("/{alert_id}/ack", response_model=AlertPublic)
async def acknowledge(
    alert_id: str, db: DbDep, settings: SettingsDep, principal: CurrentPrincipal
) -> AlertPublic:
    return await _transition(db, settings, principal, alert_id, "acknowledge")


@router.post("/{alert_id}/resolve", response_model=AlertPublic)
async def resolve(
    alert_id: str, body: Resolve, db: DbDep, settings: SettingsDep, principal: CurrentPrincipal
) -> AlertPublic:
    """`false_alarm` or `confirmed`. A confirmed `intrusion`, `night_opening`, `help` or
    `duress` is an incident for the grades (`incident` in the answer); the other kinds are
    about the device or the door, and a `confirmed` on them is kept but never feeds the
    grades."""
    return await _transition(db, settings, principal, alert_id, "resolve", body.resolution)


@router.post("/{alert_id}/escalate", response_model=AlertPublic)
async def escalate(
    alert_id: str, db: DbDep, settings: SettingsDep, operator: Operator
) -> AlertPublic:
    """Hand the alert to the control centre now (it is also done automatically when an
    alert is not acknowledged within the escalation delay)."""
    return await _transition(db, settings, operator, alert_id, "escalate")


@router.post("/{alert_id}/answer", response_model=AlertPublic)
async def answer(
    alert_id: str, body: Answer, db: DbDep, settings: SettingsDep, principal: CurrentPrincipal
) -> AlertPublic:
    """The resident's answer: "it was me" resolves it as a false alarm (and teaches her
    routine); "help" escalates it to the control centre at once (told it is a help request
    even when it was escalated already). Once she asked for help her own answers are
    refused with 409 (kept in the alert's history): only an operator resolves it."""
    if body.answer == "it_was_me":
        return await _transition(
            db, settings, principal, alert_id, "resolve", Resolution.FALSE_ALARM, body.answer
        )
    return await _transition(db, settings, principal, alert_id, "help", answer=body.answer)


@router.get("/{alert_id}/notifications")
async def alert_notifications(alert_id: str, db: DbDep, _operator: Operator) -> dict[str, Any]:
    """The delivery log of one alert: every notification and every attempt."""
    if await alert_rows.get_alert(db.reader, alert_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id!r} not found")
    rows = await list_notifications(db.reader, 100, alert_id=alert_id)
    for r in rows:
        for key in ("created_us", "next_attempt_us", "delivered_us"):
            r[key.replace("_us", "_at")] = fmt_us(r.pop(key))
        for a in r["attempts_log"]:
            a["at"] = fmt_us(a.pop("at_us"))
    return {"data": rows, "count": len(rows)}
