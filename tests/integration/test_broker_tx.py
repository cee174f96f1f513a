"""Broker calls outside database transactions (issue 10 item 5), on a real stack of its own
(the broker is stopped here): provisioning commits `pending`, calls the broker, marks
`active`; a broker outage answers 503 and the same request again completes it; retiring
commits first (the bridge refuses the sensor at once), then deletes the broker client; the
scheduler's sweep completes what a crash left half done."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.broker.dynsec import DynsecAdmin
from core.models import EventType
from core.storage import sensors as sensor_store
from core.storage.db import transaction
from core.storage.sqlite import connect
from simulator.device import VirtualSensor
from tests.harness import Stack, schema_at, wait_until

PENDING_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def btx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("brokertx"),
        ANSIM_SENSOR_BROKER_SWEEP_INTERVAL_S="1",
        ANSIM_SENSOR_PENDING_TIMEOUT_S=str(PENDING_TIMEOUT_S),
        ANSIM_OFFLINE_SWEEP_INTERVAL_S="3600",
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _admin(stack: Stack) -> DynsecAdmin:
    assert stack.creds is not None
    admin = DynsecAdmin(
        "127.0.0.1", stack.mqtt_port, stack.creds.admin_username, stack.creds.admin_password,
        client_id="ansim-admin-tests",
    )  # fmt: skip
    admin.start()
    return admin


def _state(stack: Stack, sensor_id: str) -> tuple[Any, ...]:
    import sqlite3

    with sqlite3.connect(stack.settings.database, timeout=15) as db:
        row = db.execute(
            "SELECT broker_state, status, status_reason, retired_us FROM sensors"
            " WHERE sensor_id = ?",
            (sensor_id,),
        ).fetchone()
    return tuple(row) if row else ()


def _connect(prov: dict[str, Any], boot: int = 1) -> VirtualSensor:
    s = VirtualSensor.provisioned(prov, boot=boot)
    assert s.start(), f"sensor could not connect over TLS: {s.refused}"
    s.client.reconnect_delay_set(60, 120)  # no reconnect behind the test's back
    return s


def _refused(stack: Stack, sensor_id: str, password: str) -> bool:
    s = VirtualSensor(
        sensor_id, "127.0.0.1", stack.settings.mqtt_tls_port, password, tls=True,
        ca_pem=(stack.settings.tls_dir / "ca.pem").read_text(),
    )  # fmt: skip
    try:
        ok = s.start(timeout_s=3)
        return not ok and s.refused is not None
    finally:
        s.client.disconnect()
        s.client.loop_stop()


def _stored(api: httpx.Client, sensor_id: str) -> int:
    return int(api.get(f"/api/v1/sensors/{sensor_id}").json()["events_stored"])


def _db_run(stack: Stack, fn: Any) -> Any:
    async def go() -> Any:
        conn = await connect(stack.settings.database)
        try:
            async with transaction(conn):
                return await fn(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def _insert_pending(stack: Stack, sensor_id: str, household_id: str, at_us: int) -> None:
    async def ins(conn: Any) -> None:
        await sensor_store.insert_sensor(
            conn, sensor_id=sensor_id, household_id=household_id, mqtt_username=sensor_id,
            password_hash="x", now_us=at_us, broker_state="pending",
        )  # fmt: skip

    _db_run(stack, ins)


def test_provisioned_sensor_is_active_and_connects_over_tls(btx: Stack) -> None:
    with btx.api() as api:
        hh = btx.enrol(api)
        prov = btx.provision(api, hh["household_id"])
        sid = prov["sensor_id"]
        assert _state(btx, sid)[0] == "active"
        sensor = _connect(prov)
        sensor.publish(EventType.CLOSE, datetime.now(UTC)).wait_for_publish(5)
        wait_until(lambda: _stored(api, sid) == 1, what="the event stored")
        sensor.stop()


def test_broker_down_503_then_retry_completes(btx: Stack) -> None:
    sid = "door-btx-retry"
    with btx.api() as api:
        hh = btx.enrol(api)
        hid = hh["household_id"]
        btx.stop_broker()
        try:
            r = api.post(f"/api/v1/households/{hid}/sensors", json={"sensor_id": sid}, timeout=60)
            assert r.status_code == 503, r.text
            assert r.json()["detail"]
            assert _state(btx, sid)[0] == "pending"  # committed before the broker call
        finally:
            btx.start_broker()

        def retry() -> httpx.Response | None:
            r = api.post(f"/api/v1/households/{hid}/sensors", json={"sensor_id": sid}, timeout=60)
            return r if r.status_code == 201 else None

        # the API's admin connection comes back within paho's reconnect delay (≤ 5 s)
        prov = wait_until(retry, 40, every_s=1, what="the retry to succeed").json()
        assert prov["sensor_id"] == sid
        assert _state(btx, sid)[0] == "active"
        assert (
            btx.db_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'sensor.provision_retry'"
                " AND target = ?",
                sid,
            )
            >= 1
        )
        sensor = _connect(prov)
        sensor.publish(EventType.CLOSE, datetime.now(UTC)).wait_for_publish(5)
        wait_until(lambda: _stored(api, sid) == 1, 20, what="the event stored")
        sensor.stop()
        # a completed sensor is no longer retried: its id is taken
        again = api.post(f"/api/v1/households/{hid}/sensors", json={"sensor_id": sid})
        assert again.status_code == 409 and "taken" in again.json()["detail"]


def test_retry_after_the_broker_got_the_client_sets_its_password(btx: Stack) -> None:
    """A crash after the broker call, before `active`: the retry finds the broker client
    (with the sensor's own role) and sets a new password; the old one stops working."""
    sid = "door-btx-halfway"
    admin = _admin(btx)
    try:
        with btx.api() as api:
            hh = btx.enrol(api)
            _insert_pending(btx, sid, hh["household_id"], time.time_ns() // 1000)
            asyncio.run(admin.create_sensor(sid, "old-password-1"))
            r = api.post(
                f"/api/v1/households/{hh['household_id']}/sensors", json={"sensor_id": sid}
            )
            assert r.status_code == 201, r.text
            prov = r.json()
            assert _state(btx, sid)[0] == "active"
            assert _refused(btx, sid, "old-password-1")
            _connect(prov).stop()
            # a broker client that is not ours (no sensor role): 409, and no row is left
            asyncio.run(
                admin.acall(
                    [{"command": "createClient", "username": "door-btx-foreign", "password": "p"}]
                )
            )
            r = api.post(
                f"/api/v1/households/{hh['household_id']}/sensors",
                json={"sensor_id": "door-btx-foreign"},
            )
            assert r.status_code == 409 and "broker already has" in r.json()["detail"]
            assert _state(btx, "door-btx-foreign") == ()
            assert asyncio.run(admin.client_roles("door-btx-foreign")) == []
    finally:
        admin.stop()


def test_retire_cuts_the_connection_and_refuses_messages(btx: Stack) -> None:
    with btx.api() as api:
        hh = btx.enrol(api)
        prov = btx.provision(api, hh["household_id"])
        sid = prov["sensor_id"]
        sensor = _connect(prov)
        r = api.delete(f"/api/v1/sensors/{sid}")
        assert r.status_code == 200, r.text
        wait_until(lambda: not sensor.connected.is_set(), 5, what="the connection cut")
        assert _state(btx, sid)[:2] == ("deleted", "retired")
        assert _refused(btx, sid, prov["mqtt"]["password"])
        sensor.client.loop_stop()

        # a crash between the commit and the broker call: retired in the database, the
        # client still connected. Its messages are dead-lettered as retired at once, and
        # the scheduler's sweep deletes the client (the connection is cut).
        prov2 = btx.provision(api, hh["household_id"])
        sid2 = prov2["sensor_id"]
        live = _connect(prov2)
        _db_run(btx, lambda conn: sensor_store.retire_sensor(conn, sid2, time.time_ns() // 1000))
        assert _state(btx, sid2)[0] == "deleting"
        live.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)

        def dead() -> list[dict[str, Any]]:
            data: list[dict[str, Any]] = api.get(
                "/api/v1/dead-letters", params={"sensor_id": sid2}
            ).json()["data"]
            return data

        letters = wait_until(dead, 10, what="the retired sensor's message dead-lettered")
        assert {d["reason"] for d in letters} == {"retired_sensor"}
        assert _stored(api, sid2) == 0
        btx._spawn("scheduler", "scheduler")
        try:
            wait_until(lambda: not live.connected.is_set(), 30, what="the sweep cutting it off")
            wait_until(lambda: _state(btx, sid2)[0] == "deleted", 10, what="marked deleted")
            assert _refused(btx, sid2, prov2["mqtt"]["password"])
        finally:
            btx.kill("scheduler", 15)
            live.client.loop_stop()


def test_sweep_gives_up_stale_pending_sensors(btx: Stack) -> None:
    """Crashes during provisioning: one before the broker call, one after (the broker has
    its client). Pending for longer than the timeout: retired as provisioning_abandoned and
    the broker client deleted; a fresh pending one is left to its request."""
    admin = _admin(btx)
    try:
        with btx.api() as api:
            hh = btx.enrol(api)
            hid = hh["household_id"]
        old = time.time_ns() // 1000 - 3600 * 1_000_000
        _insert_pending(btx, "door-btx-crash-before", hid, old)
        _insert_pending(btx, "door-btx-crash-after", hid, old)
        _insert_pending(btx, "door-btx-fresh", hid, time.time_ns() // 1000)
        asyncio.run(admin.create_sensor("door-btx-crash-after", "pw-crash-1"))
        ghost = VirtualSensor("door-btx-crash-after", "127.0.0.1", btx.mqtt_port, "pw-crash-1")
        assert ghost.start()
        ghost.client.reconnect_delay_set(60, 120)
        btx._spawn("scheduler", "scheduler")
        try:
            for sid in ("door-btx-crash-before", "door-btx-crash-after"):
                wait_until(
                    lambda sid=sid: _state(btx, sid) and _state(btx, sid)[0] == "deleted",
                    30,
                    what=f"{sid} given up by the sweep",
                )
                assert _state(btx, sid)[1:3] == ("retired", "provisioning_abandoned")
            wait_until(lambda: not ghost.connected.is_set(), 10, what="the crashed one cut off")
            assert asyncio.run(admin.client_roles("door-btx-crash-after")) == []
            assert _state(btx, "door-btx-fresh")[0] == "pending"
            assert (
                btx.db_scalar(
                    "SELECT COUNT(*) FROM audit_log WHERE action = 'sensor.provision_abandoned'"
                )
                == 2
            )
            runs = btx.db_scalar(
                "SELECT COUNT(*) FROM job_runs WHERE job_id = 'sensor_broker_sweep'"
                " AND outcome = 'ok'"
            )
            assert runs >= 1
        finally:
            btx.kill("scheduler", 15)
            ghost.client.loop_stop()
    finally:
        admin.stop()


def test_migration_6_marks_existing_retired_sensors_deleted(tmp_path: Path) -> None:
    """From v5: live sensors are `active`, retired ones `deleted` (the old code deleted
    their broker client inside the transaction)."""
    import sqlite3

    path = tmp_path / "v5.db"
    with sqlite3.connect(path) as db:
        schema_at(db, 5)
        db.execute(
            "INSERT INTO households (household_id, name, lat, lon, timezone, night_window,"
            " mode_since_us, created_us) VALUES ('hh-1','x',37.5,126.9,'UTC','23:00-05:00',0,0)"
        )
        for sid, retired in (("s-live", None), ("s-gone", 5)):
            db.execute(
                "INSERT INTO sensors (sensor_id, household_id, mqtt_username, password_hash,"
                " created_us, retired_us) VALUES (?,?,?,?,?,?)",
                (sid, "hh-1", sid, "h", 1, retired),
            )

    async def upgrade() -> None:
        from core.storage.sqlite import migrate

        conn = await connect(path)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(upgrade())
    with sqlite3.connect(path) as db:
        got = dict(db.execute("SELECT sensor_id, broker_state FROM sensors").fetchall())
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 6
    assert got == {"s-live": "active", "s-gone": "deleted"}
