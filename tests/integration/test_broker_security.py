"""The broker enforces identities: own topic only, wrong passwords and retired sensors
refused, a retired sensor disconnected at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.models import EventType
from core.wire import encode_event
from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until


def _client(stack: Stack, username: str, password: str) -> tuple[mqtt.Client, dict[str, Any]]:
    seen: dict[str, Any] = {
        "connect": threading.Event(),
        "puback": {},
        "disconnected": threading.Event(),
    }
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    c.username_pw_set(username, password)

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        seen["rc"] = rc
        seen["connect"].set()

    def on_publish(_c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        seen["puback"][mid] = rc

    def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        seen["disconnect_rc"] = rc
        seen["disconnected"].set()

    c.on_connect, c.on_publish, c.on_disconnect = on_connect, on_publish, on_disconnect
    c.connect("127.0.0.1", stack.mqtt_port)
    c.loop_start()
    assert seen["connect"].wait(5)
    return c, seen


def _two_sensors(stack: Stack) -> list[dict[str, Any]]:
    with stack.api() as api:
        hh = stack.enrol(api)
        return [stack.provision(api, hh["household_id"]) for _ in range(2)]


def test_sensor_cannot_publish_under_another_sensors_topic(stack: Stack) -> None:
    a, b = _two_sensors(stack)
    client, seen = _client(stack, a["sensor_id"], a["mqtt"]["password"])
    assert not seen["rc"].is_failure
    payload = encode_event(1, 1, datetime.now(UTC), EventType.OPEN)
    info = client.publish(f"ansim/v1/sensors/{b['sensor_id']}/event", payload, qos=1)
    wait_until(lambda: info.mid in seen["puback"], what="PUBACK")
    assert seen["puback"][info.mid].value == 135  # Not authorized
    ok = client.publish(f"ansim/v1/sensors/{a['sensor_id']}/event", payload, qos=1)
    wait_until(lambda: ok.mid in seen["puback"], what="PUBACK")
    assert not seen["puback"][ok.mid].is_failure
    client.disconnect()
    client.loop_stop()
    with stack.api() as api:
        wait_until(
            lambda: api.get(f"/api/v1/sensors/{a['sensor_id']}").json()["events_stored"] == 1
        )
        assert api.get(f"/api/v1/sensors/{b['sensor_id']}").json()["events_stored"] == 0


def test_wrong_password_and_anonymous_refused(stack: Stack) -> None:
    a, _b = _two_sensors(stack)
    client, seen = _client(stack, a["sensor_id"], "not-the-password")
    assert seen["rc"].is_failure
    client.loop_stop()
    anon = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    result: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        result["rc"] = rc
        done.set()

    anon.on_connect = on_connect
    anon.connect("127.0.0.1", stack.mqtt_port)
    anon.loop_start()
    assert done.wait(5)
    assert result["rc"].is_failure
    anon.loop_stop()


def test_sensor_cannot_subscribe_to_other_sensors(stack: Stack) -> None:
    a, _b = _two_sensors(stack)
    client, _seen = _client(stack, a["sensor_id"], a["mqtt"]["password"])
    granted: dict[str, Any] = {}
    done = threading.Event()

    def on_subscribe(_c: Any, _u: Any, _mid: int, rcs: list[Any], _p: Any) -> None:
        granted["rcs"] = rcs
        done.set()

    client.on_subscribe = on_subscribe
    client.subscribe("ansim/v1/sensors/#", qos=1)
    assert done.wait(5)
    assert granted["rcs"][0].is_failure
    client.disconnect()
    client.loop_stop()


def test_retired_sensor_is_disconnected_and_refused(stack: Stack) -> None:
    a, _b = _two_sensors(stack)
    sid = a["sensor_id"]
    client, seen = _client(stack, sid, a["mqtt"]["password"])
    client.reconnect_delay_set(60, 120)  # do not let paho reconnect behind our back
    with stack.api() as api:
        r = api.delete(f"/api/v1/sensors/{sid}")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "retired"
        assert seen["disconnected"].wait(5), "the live connection was not dropped"
        client.loop_stop()
        again, seen2 = _client(stack, sid, a["mqtt"]["password"])
        assert seen2["rc"].is_failure
        again.loop_stop()
        state = api.get(f"/api/v1/sensors/{sid}").json()
        assert state["status"] == "retired" and state["retired_at"]
        assert api.delete(f"/api/v1/sensors/{sid}").status_code == 200  # idempotent
        audit = stack.db_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action='sensor.retire' AND target=?", sid
        )
        assert audit == 1


def test_virtual_sensor_helper_reports_refusal(stack: Stack) -> None:
    a, _b = _two_sensors(stack)
    s = VirtualSensor(a["sensor_id"], "127.0.0.1", stack.mqtt_port, "nope")
    assert not s.start(timeout_s=2)
    assert s.refused
    s.client.loop_stop()
