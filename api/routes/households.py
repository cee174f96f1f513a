"""Households: enrolment (operator) and sensor provisioning."""

from __future__ import annotations

import contextlib
import logging

from fastapi import APIRouter, HTTPException, status

from api.deps import AdminDep, DbDep, MaybeAdminDep, Operator, SettingsDep, TlsDep
from api.schemas import (
    HouseholdCreate,
    HouseholdCreated,
    MqttCredentials,
    SensorCreate,
    SensorProvisioned,
)
from api.segment_index import SegmentCacheDep
from api.timefmt import now_us
from core.broker.dynsec import BrokerUnavailable, DynsecAdmin, DynsecError
from core.credentials import hash_secret, new_id, new_password, new_token, new_webhook_secret
from core.geo import TooFarFromSegmentError
from core.models import Role
from core.notify import webhook_url_problem
from core.sensor_broker import finish_deletes
from core.storage import audit, households, sensors, tokens
from core.storage import incidents as incident_store
from core.wire import event_topic, status_topic

router = APIRouter(prefix="/api/v1/households", tags=["households"])
log = logging.getLogger("ansim.api")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=HouseholdCreated,
    responses={422: {"description": "invalid fields, or farther than 50 m from every street"}},
)
async def enrol_household(
    body: HouseholdCreate,
    db: DbDep,
    operator: Operator,
    segment_cache: SegmentCacheDep,
    settings: SettingsDep,
) -> HouseholdCreated:
    """Enrol a household. It is tied to its nearest street segment (within 50 m; refused
    with 422 when farther; `segment_id` is null while no segments are imported). The
    resident token and webhook secret are shown only here."""
    if body.webhook_url:
        problem = webhook_url_problem(str(body.webhook_url), settings.webhook_allow_http)
        if problem:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
    snapshot = await segment_cache.get(db)
    segment_id: str | None = None
    if len(snapshot.index):
        try:
            segment_id = snapshot.index.snap(body.lat, body.lon).segment_id
        except TooFarFromSegmentError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
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
            segment_id=segment_id,
            now_us=now,
            exit_delay_s=body.exit_delay_s,
        )
        await tokens.insert_token(
            conn, token, Role.RESIDENT, now, household_id=household_id, label="resident"
        )
        await audit.record(
            conn, now, operator.actor, "household.enrol", household_id,
            {"timezone": body.timezone, "night_window": body.night_window,
             "webhook": body.webhook_url is not None, "exit_delay_s": body.exit_delay_s},
        )  # fmt: skip
    return HouseholdCreated(
        household_id=household_id,
        segment_id=segment_id,
        token=token,
        webhook_secret=webhook_secret,
        timezone=body.timezone,
        night_window=body.night_window,
        exit_delay_s=body.exit_delay_s,
    )


@router.post(
    "/{household_id}/sensors",
    status_code=status.HTTP_201_CREATED,
    response_model=SensorProvisioned,
    responses={404: {"description": "no such household"}, 409: {"description": "id taken"},
               502: {"description": "broker refused: the sensor stays pending, retry"},
               503: {"description": "broker unreachable: the sensor stays pending, retry"}},
)  # fmt: skip
async def provision_sensor(
    household_id: str,
    db: DbDep,
    admin: AdminDep,
    settings: SettingsDep,
    tls: TlsDep,
    operator: Operator,
    body: SensorCreate | None = None,
) -> SensorProvisioned:
    """Create the sensor and its own broker credentials; the password is shown only here.
    The sensor is committed `pending` before the broker is asked: after a 502/503 the same
    request again (same `sensor_id`) completes it; one nobody retries is given up by the
    scheduler's sweep after ANSIM_SENSOR_PENDING_TIMEOUT_S."""
    if await households.get_household(db.reader, household_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
    sensor_id = (body.sensor_id if body else None) or new_id("s")
    password = new_password()
    now = now_us()
    # 1. the sensor as `pending`, committed before the broker is asked: no write transaction
    # waits on the broker, so the bridge's ingest goes on meanwhile. A retry of the same
    # request (same sensor_id, same household) takes over a sensor left `pending`.
    async with db.write() as conn:
        existing = await sensors.get_broker_state(conn, sensor_id)
        fresh = existing is None
        if existing is None:
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
        elif existing.broker_state != "pending" or existing.household_id != household_id:
            raise HTTPException(status.HTTP_409_CONFLICT, f"sensor id {sensor_id!r} is taken")
        else:
            await sensors.renew_pending(conn, sensor_id, hash_secret(password), now)
            await audit.record(conn, now, operator.actor, "sensor.provision_retry", sensor_id,
                               {"household_id": household_id})  # fmt: skip
    # 2. the broker, outside any transaction (idempotent for a sensor of ours)
    try:
        await admin.create_sensor(sensor_id, password)
    except DynsecError as exc:
        log.error("broker refused provisioning", extra={"sensor_id": sensor_id, "error": str(exc)})
        if "already exists" in exc.error.lower():
            # a broker client of that name that is not one of our sensors: the row goes
            async with db.write() as conn:
                await sensors.remove_pending(conn, sensor_id)
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"broker already has {sensor_id!r}"
            ) from None
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"broker refused: {exc}") from None
    except BrokerUnavailable as exc:
        # stays `pending`: the same request again completes it, or the sweep gives it up
        log.warning("provisioning left pending", extra={"sensor_id": sensor_id, "fresh": fresh})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    # 3. active, in a short transaction of its own
    async with db.write() as conn:
        active = await sensors.set_broker_state(conn, sensor_id, "pending", "active", now_us())
    if not active:  # the sweep gave it up meanwhile (pending longer than its timeout)
        with contextlib.suppress(DynsecError, BrokerUnavailable):
            await admin.delete_sensor(sensor_id)  # the client we just made, if it came last
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"provisioning of {sensor_id!r} was abandoned meanwhile"
        )
    log.info("sensor provisioned", extra={"sensor_id": sensor_id, "household_id": household_id})
    return SensorProvisioned(
        sensor_id=sensor_id,
        household_id=household_id,
        mqtt=MqttCredentials(
            host=settings.sensor_mqtt_host,
            port=settings.mqtt_tls_port,
            tls=True,
            ca_pem=tls.ca_pem(),
            server_name=settings.sensor_mqtt_host,
            username=sensor_id,
            password=password,
            client_id=sensor_id,
            event_topic=event_topic(sensor_id),
            status_topic=status_topic(sensor_id),
        ),
    )


@router.delete(
    "/{household_id}",
    responses={404: {"description": "no such household"},
               503: {"description": "broker unreachable"}},
)  # fmt: skip
async def unenrol_household(
    household_id: str, db: DbDep, admin: MaybeAdminDep, operator: Operator
) -> dict[str, object]:
    """Unenrol: erase the household's personal data (name, location, webhook), revoke its
    tokens, retire its sensors (their messages refused at once, then their broker
    credentials deleted; 503 when the broker is unreachable, and the retry or the scheduler's
    sweep deletes them) and delete its raw events. Its resolved alerts are first copied,
    anonymously, to the incidents that feed the grades, so its incident counts stay.
    Repeating the call is harmless."""
    state = await households.household_state(db.reader, household_id)
    if state is False:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"household {household_id!r} not found")
    if state is not None:
        await _delete_broker_clients(db, admin, household_id)  # what an outage left undone
        return {"household_id": household_id, "status": "unenrolled", "already": True}
    now = now_us()
    retired: list[str] = []
    # the database first, committed: its sensors are retired (the bridge refuses their
    # messages from here on) and `deleting` on the broker
    async with db.write() as conn:
        incidents = await incident_store.sync_incidents(conn, now, household_id)
        for row in await sensors.list_household_sensors(conn, household_id):
            if await sensors.retire_sensor(conn, row.sensor_id, now):
                retired.append(row.sensor_id)
        erased = await households.erase_household(conn, household_id, now)
        await audit.record(conn, now, operator.actor, "household.unenrol", household_id,
                           {"sensors_retired": retired, "incidents_kept": incidents,
                            "erased": erased})  # fmt: skip
    await _delete_broker_clients(db, admin, household_id)
    log.info("household unenrolled", extra={"household_id": household_id})
    return {
        "household_id": household_id,
        "status": "unenrolled",
        "already": False,
        "sensors_retired": retired,
        "incidents_kept": incidents,
        "erased": erased,
    }


async def _delete_broker_clients(db: DbDep, admin: DynsecAdmin | None, household_id: str) -> None:
    """After the commit: the broker clients of the household's retired sensors still
    `deleting` are deleted; 503 when the broker cannot be reached (the data is erased)."""
    todo = await sensors.household_deleting(db.reader, household_id)
    if not todo:
        return
    if admin is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "household unenrolled; the MQTT broker is unreachable, its sensors' broker "
            "credentials are deleted on retry or by the sweep",
        )
    try:
        await finish_deletes(db, admin, todo)
    except (DynsecError, BrokerUnavailable) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"broker: {exc}") from None
