"""Households: enrolment (operator) and sensor provisioning."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status

from api.deps import AdminDep, DbDep, Operator, SettingsDep
from api.schemas import (
    HouseholdCreate,
    HouseholdCreated,
    MqttCredentials,
    SensorCreate,
    SensorProvisioned,
)
from api.timefmt import now_us
from core.broker.dynsec import BrokerUnavailable, DynsecError
from core.credentials import hash_secret, new_id, new_password, new_token, new_webhook_secret
from core.models import Role
from core.storage import audit, households, sensors, tokens
from core.wire import event_topic, status_topic

router = APIRouter(prefix="/api/v1/households", tags=["households"])
log = logging.getLogger("ansim.api")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=HouseholdCreated)
async def enrol_household(body: HouseholdCreate, db: DbDep, operator: Operator) -> HouseholdCreated:
    """Enrol a household. The resident token and webhook secret are shown only here."""
    household_id = new_id("hh")
    token = new_token()
    webhook_secret = new_webhook_secret() if body.webhook_url else None
    now = now_us()
    async with db.write() as conn:
        await households.insert_household(
            conn,
            household_id=household_id,
            name=body.name,
            lat=body.lat,
            lon=body.lon,
            timezone=body.timezone,
            night_window=body.night_window,
            webhook_url=str(body.webhook_url) if body.webhook_url else None,
            webhook_secret=webhook_secret,
            segment_id=None,
            now_us=now,
        )
        await tokens.insert_token(
            conn, token, Role.RESIDENT, now, household_id=household_id, label="resident"
        )
        await audit.record(
            conn, now, operator.actor, "household.enrol", household_id,
            {"timezone": body.timezone, "night_window": body.night_window,
             "webhook": body.webhook_url is not None},
        )  # fmt: skip
    return HouseholdCreated(
        household_id=household_id,
        segment_id=None,
        token=token,
        webhook_secret=webhook_secret,
        timezone=body.timezone,
        night_window=body.night_window,
    )


@router.post(
    "/{household_id}/sensors",
    status_code=status.HTTP_201_CREATED,
    response_model=SensorProvisioned,
    responses={404: {"description": "no such household"}, 409: {"description": "id taken"},
               503: {"description": "broker unreachable"}},
)  # fmt: skip
async def provision_sensor(
    household_id: str,
    db: DbDep,
    admin: AdminDep,
    settings: SettingsDep,
    operator: Operator,
    body: SensorCreate | None = None,
) -> SensorProvisioned:
    """Create the sensor and its own broker credentials; the password is shown only here."""
    if await households.get_household(db.reader, household_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
    sensor_id = (body.sensor_id if body else None) or new_id("s")
    password = new_password()
    now = now_us()
    try:
        async with db.write() as conn:
            if await sensors.sensor_id_taken(conn, sensor_id):
                raise HTTPException(status.HTTP_409_CONFLICT, f"sensor id {sensor_id!r} is taken")
            await sensors.insert_sensor(
                conn,
                sensor_id=sensor_id,
                household_id=household_id,
                mqtt_username=sensor_id,
                password_hash=hash_secret(password),
                now_us=now,
            )
            await audit.record(conn, now, operator.actor, "sensor.provision", sensor_id,
                               {"household_id": household_id})  # fmt: skip
            # inside the transaction: if the broker refuses, nothing is stored
            await admin.create_sensor(sensor_id, password)
    except DynsecError as exc:
        log.error("broker refused provisioning", extra={"sensor_id": sensor_id, "error": str(exc)})
        if "already exists" in exc.error.lower():
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"broker already has {sensor_id!r}"
            ) from None
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"broker refused: {exc}") from None
    except BrokerUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    log.info("sensor provisioned", extra={"sensor_id": sensor_id, "household_id": household_id})
    return SensorProvisioned(
        sensor_id=sensor_id,
        household_id=household_id,
        mqtt=MqttCredentials(
            host=settings.sensor_mqtt_host,
            port=settings.mqtt_port,
            username=sensor_id,
            password=password,
            client_id=sensor_id,
            event_topic=event_topic(sensor_id),
            status_topic=status_topic(sensor_id),
        ),
    )
