"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from api.deps import DbDep, SettingsDep
from api.schemas import Health
from core.storage.alerts import count_alerts
from core.storage.dead_letters import count_dead_letters
from core.storage.outbox import count_notifications
from core.storage.sensors import count_sensors_by_status

router = APIRouter(tags=["health"])

SENSORS = Gauge("ansim_sensors", "Provisioned sensors by status", ["status"])
DEAD = Gauge("ansim_dead_letters", "Dead letters stored, by reason", ["reason"])
ALERTS = Gauge("ansim_alerts", "Alerts by kind and state", ["kind", "state"])
OUTBOX = Gauge("ansim_notifications", "Notifications by state", ["state"])


@router.get("/healthz", response_model=Health)
async def healthz(request: Request, db: DbDep, settings: SettingsDep) -> Health:
    try:
        async with db.reader.execute("SELECT 1") as cur:
            await cur.fetchone()
        db_ok = True
    except Exception:
        db_ok = False
    broker_ok = bool(request.app.state.broker_connected())
    return Health(
        status="ok" if db_ok and broker_ok else "degraded",
        database=db_ok,
        broker=broker_ok,
        time_mode=str(settings.time_mode),
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
