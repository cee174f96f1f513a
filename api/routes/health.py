"""Health of every part (database, broker, bridge, notifier, scheduler) and Prometheus
metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import BaseModel

from api.deps import DbDep, SettingsDep
from core.settings import Settings
from core.storage import heartbeats
from core.storage.alerts import count_alerts
from core.storage.dead_letters import count_dead_letters
from core.storage.outbox import count_notifications
from core.storage.sensors import count_sensors_by_status

router = APIRouter(tags=["health"])

SENSORS = Gauge("ansim_sensors", "Provisioned sensors by status", ["status"])
DEAD = Gauge("ansim_dead_letters", "Dead letters stored, by reason", ["reason"])
ALERTS = Gauge("ansim_alerts", "Alerts by kind and state", ["kind", "state"])
OUTBOX = Gauge("ansim_notifications", "Notifications by state", ["state"])


class PartHealth(BaseModel):
    status: Literal["ok", "degraded", "down", "stale"]
    age_s: float | None = None  # seconds since the part's last heartbeat (services only)
    reason: str | None = None  # why it is not ok
    leader: str | None = None  # the scheduler: which of several leads (holds the lease)


class Health(BaseModel):
    """200 when every part is ok, else 503 with the failing parts named in `failing`."""

    status: Literal["ok", "degraded", "failing"]
    failing: list[str]
    degraded: list[str] = []  # up, but behind: still 200
    time_mode: str
    parts: dict[str, PartHealth]


async def _broker_reachable(request: Request, settings: Settings) -> str | None:
    """None when the broker answers (the API's admin session is up, or a TCP connect to
    the MQTT port succeeds within a second), else the reason."""
    if request.app.state.broker_connected():
        return None
    try:
        _r, w = await asyncio.wait_for(
            asyncio.open_connection(settings.mqtt_host, settings.mqtt_port), 1.0
        )
    except (OSError, TimeoutError) as exc:
        return f"cannot connect to {settings.mqtt_host}:{settings.mqtt_port}: {exc!r}"[:200]
    w.close()
    with contextlib.suppress(OSError):
        await w.wait_closed()
    return None


def _service(
    beat: heartbeats.Heartbeat | None, now_us: int, stale_s: float, behind_s: float
) -> PartHealth:
    if beat is None:
        return PartHealth(status="down", reason="no heartbeat ever written")
    age = round(max(0, now_us - beat.at_us) / 1e6, 1)
    try:
        detail = json.loads(beat.detail) if beat.detail else {}
    except ValueError:
        detail = {}
    if not isinstance(detail, dict):
        detail = {}
    leader = detail.get("leader") if isinstance(detail.get("leader"), str) else None
    if detail.get("state") == "stopped":
        return PartHealth(status="down", age_s=age, reason="stopped", leader=leader)
    if age > stale_s:
        return PartHealth(status="stale", age_s=age, reason=f"silent for more than {stale_s:g} s")
    if detail.get("connected") is False:
        return PartHealth(status="down", age_s=age, reason="not connected to the broker")
    stalled = detail.get("stalled_s")
    if isinstance(stalled, int | float) and stalled > stale_s:
        return PartHealth(
            status="down", age_s=age, reason=f"messages waiting, none processed for {stalled:g} s"
        )
    oldest = detail.get("oldest_pending_s")
    if isinstance(oldest, int | float) and oldest > behind_s:
        return PartHealth(
            status="degraded",
            age_s=age,
            reason=f"oldest unacknowledged message waiting {oldest:g} s",
        )
    return PartHealth(status="ok", age_s=age, leader=leader)


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "a part is down or silent"}},
)
async def healthz(request: Request, db: DbDep, settings: SettingsDep) -> JSONResponse:
    parts: dict[str, PartHealth] = {}
    beats: dict[str, heartbeats.Heartbeat] | None = None
    try:
        beats = await heartbeats.read_all(db.reader)
        parts["database"] = PartHealth(status="ok")
    except Exception as exc:
        parts["database"] = PartHealth(status="down", reason=repr(exc)[:200])
    problem = await _broker_reachable(request, settings)
    parts["broker"] = (
        PartHealth(status="down", reason=problem) if problem else PartHealth(status="ok")
    )
    now_us = time.time_ns() // 1000
    names = [p.strip() for p in settings.health_parts.split(",") if p.strip()]
    # several bridges: every slot must be alive (a dead slot's messages wait for it)
    names = [n for p in names for n in (settings.bridge_parts() if p == "bridge" else [p])]
    for name in names:
        if beats is None:
            parts[name] = PartHealth(status="down", reason="database unreadable")
        else:
            parts[name] = _service(
                beats.get(name), now_us, settings.health_stale_s, settings.health_behind_s
            )
    failing = [name for name, part in parts.items() if part.status not in ("ok", "degraded")]
    degraded = [name for name, part in parts.items() if part.status == "degraded"]
    body = Health(
        status="failing" if failing else "degraded" if degraded else "ok",
        failing=failing,
        degraded=degraded,
        time_mode=str(settings.time_mode),
        parts=parts,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=503 if failing else 200,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/metrics", include_in_schema=True, response_class=Response)
async def metrics(db: DbDep) -> Response:
    for state, n in (await count_sensors_by_status(db.reader)).items():
        SENSORS.labels(state).set(n)
    for reason, n in (await count_dead_letters(db.reader)).items():
        DEAD.labels(reason).set(n)
    for (kind, state), n in (await count_alerts(db.reader)).items():
        ALERTS.labels(kind, state).set(n)
    for state, n in (await count_notifications(db.reader)).items():
        OUTBOX.labels(state).set(n)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
