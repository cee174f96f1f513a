"""A provisioned sensor publishes with its own credentials; the bridge stores each event
exactly once, dead-letters what breaks the contract, and keeps running."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.models import EventType
from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until


def _sensor(stack: Stack, prov: dict[str, Any], boot: int = 1) -> VirtualSensor:
    s = VirtualSensor.provisioned(prov, boot=boot)
    assert s.start(), f"sensor could not connect: {s.refused}"
    return s


def _sensor_state(api: httpx.Client, sensor_id: str) -> dict[str, Any]:
    r = api.get(f"/api/v1/sensors/{sensor_id}")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _new_sensor(stack: Stack, api: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    hh = stack.enrol(api)
    return hh, stack.provision(api, hh["household_id"])


def test_events_stored_once_and_listed_newest_first(stack: Stack) -> None:
    with stack.api() as api:
        _hh, prov = _new_sensor(stack, api)
        m = prov["mqtt"]
        assert m["port"] == stack.settings.mqtt_tls_port and m["tls"] and m["password"]
        assert m["ca_pem"].startswith("-----BEGIN CERTIFICATE-----")
        sensor = _sensor(stack, prov, boot=3)
        t0 = datetime.now(UTC) - timedelta(seconds=30)
        for i in range(30):
            sensor.publish(
                EventType.OPEN if i % 2 == 0 else EventType.CLOSE, t0 + timedelta(seconds=i)
            )
        sensor.battery = 77
        sensor.publish(EventType.HEARTBEAT, datetime.now(UTC)).wait_for_publish(5)
        wait_until(
            lambda: _sensor_state(api, prov["sensor_id"])["heartbeats"] == 1, what="heartbeat"
        )
        state = _sensor_state(api, prov["sensor_id"])
        assert state["events_stored"] == 30
        assert state["battery"] == 77
        assert state["status"] == "online"
        assert state["clock_skewed"] is False and state["clock_skew"] == 0.0

        seen: list[tuple[int, int]] = []
        cursor = None
        timestamps: list[str] = []
        while True:
            params: dict[str, Any] = {"limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = api.get(f"/api/v1/sensors/{prov['sensor_id']}/events", params=params).json()
            seen += [(e["boot"], e["seq"]) for e in page["data"]]
            timestamps += [e["ts"] for e in page["data"]]
            assert {"boot", "seq", "ts", "type"} <= set(page["data"][0])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 30 and len(set(seen)) == 30
        assert seen[0] == (3, 29)  # newest first
        parsed = [datetime.fromisoformat(t) for t in timestamps]
        assert parsed == sorted(parsed, reverse=True)
        # heartbeats refresh the sensor, they do not become event rows
        assert (
            stack.db_scalar(
                "SELECT COUNT(*) FROM events e JOIN sensors s USING (sensor_pk)"
                " WHERE s.sensor_id = ?",
                prov["sensor_id"],
            )
            == 30
        )
        sensor.stop()


def test_duplicates_dropped_and_counted_out_of_order_accepted(stack: Stack) -> None:
    with stack.api() as api:
        _hh, prov = _new_sensor(stack, api)
        sid = prov["sensor_id"]
        sensor = _sensor(stack, prov)
        topic = f"ansim/v1/sensors/{sid}/event"
        now = datetime.now(UTC)

        def body(seq: int, ts: datetime) -> bytes:
            return json.dumps(
                {"boot": 1, "seq": seq, "ts": ts.isoformat(), "type": "open"}
            ).encode()

        # late and out of order: 5, 3, 4 with timestamps in the same disorder
        for seq in (5, 3, 4):
            sensor.publish_raw(topic, body(seq, now - timedelta(seconds=10 - seq)))
        # the same message three times
        for _ in range(3):
            sensor.publish_raw(topic, body(9, now)).wait_for_publish(5)
        wait_until(lambda: _sensor_state(api, sid)["duplicates"] == 2, what="duplicates counted")
        state = _sensor_state(api, sid)
        assert state["events_stored"] == 4
        events = api.get(f"/api/v1/sensors/{sid}/events").json()["data"]
        assert [e["seq"] for e in events] == [9, 5, 4, 3]
        sensor.stop()


BAD_PAYLOADS: list[tuple[bytes, str]] = [
    (b"{not json", "bad_json"),
    (b"[1,2,3]", "bad_json"),
    (b'{"boot":"1","seq":1,"ts":"2026-11-21T23:14:05+09:00","type":"open"}', "invalid_field"),
    (b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05+09:00","type":"opened"}', "unknown_type"),
    (b'{"boot":1,"ts":"2026-11-21T23:14:05+09:00","type":"open"}', "missing_field"),
    (b'{"boot":1,"seq":1,"ts":"yesterday","type":"open"}', "invalid_field"),
    (b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05","type":"open"}', "invalid_field"),
    (
        b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05+09:00","type":"open","battery":150}',
        "invalid_field",
    ),
    (b"\xff\xfe\x00", "bad_encoding"),
]


def test_invalid_messages_dead_lettered_and_bridge_keeps_running(stack: Stack) -> None:
    with stack.api() as api:
        _hh, prov = _new_sensor(stack, api)
        sid = prov["sensor_id"]
        sensor = _sensor(stack, prov)
        topic = f"ansim/v1/sensors/{sid}/event"
        for payload, _reason in BAD_PAYLOADS:
            sensor.publish_raw(topic, payload)
        oversize = json.dumps(
            {
                "boot": 1,
                "seq": 1,
                "ts": datetime.now(UTC).isoformat(),
                "type": "open",
                "pad": "x" * 1100,
            }
        ).encode()
        sensor.publish_raw(topic, oversize)
        sensor.publish_raw(f"ansim/v1/sensors/{sid}/status", b"sleeping")
        sensor.publish_raw(f"ansim/v1/sensors/{sid}/config", b"{}")
        # and after all of that, a valid event is still stored
        sensor.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
        wait_until(
            lambda: _sensor_state(api, sid)["events_stored"] == 1, what="valid event after bad ones"
        )

        dl = api.get("/api/v1/dead-letters", params={"sensor_id": sid, "limit": 100}).json()
        reasons = sorted(d["reason"] for d in dl["data"])
        expected = sorted(
            [r for _p, r in BAD_PAYLOADS] + ["oversize", "bad_status", "unknown_topic"]
        )
        assert reasons == expected
        over = next(d for d in dl["data"] if d["reason"] == "oversize")
        assert over["payload_size"] == len(oversize) and over["detail"]
        metrics = httpx.get(f"{stack.base_url}/metrics").text
        assert 'ansim_dead_letters{reason="oversize"}' in metrics
        bridge_metrics = httpx.get(
            f"http://127.0.0.1:{stack.settings.bridge_metrics_port}/metrics"
        ).text
        assert 'ansim_bridge_dead_letters_total{reason="bad_json"}' in bridge_metrics
        sensor.stop()


def test_unknown_sensor_dead_lettered(stack: Stack) -> None:
    """A client the broker knows but the registry does not (e.g. created by hand)."""
    import asyncio

    from core.broker.dynsec import DynsecAdmin

    assert stack.creds is not None
    admin = DynsecAdmin(
        "127.0.0.1", stack.mqtt_port, stack.creds.admin_username, stack.creds.admin_password
    )
    admin.start()
    try:
        asyncio.run(admin.create_sensor("s-not-registered", "pw-unknown-1"))
        ghost = VirtualSensor("s-not-registered", "127.0.0.1", stack.mqtt_port, "pw-unknown-1")
        assert ghost.start()
        ghost.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
        with stack.api() as api:
            wait_until(
                lambda: api.get(
                    "/api/v1/dead-letters", params={"sensor_id": "s-not-registered"}
                ).json()["data"],
                what="unknown sensor dead letter",
            )
            dl = api.get("/api/v1/dead-letters", params={"sensor_id": "s-not-registered"}).json()[
                "data"
            ]
            assert {d["reason"] for d in dl} == {"unknown_sensor"}
        ghost.stop()
        asyncio.run(admin.delete_sensor("s-not-registered"))
    finally:
        admin.stop()


def test_clock_skew_flagged_and_receive_time_used(stack: Stack) -> None:
    with stack.api() as api:
        _hh, prov = _new_sensor(stack, api)
        sid = prov["sensor_id"]
        sensor = _sensor(stack, prov)
        before = datetime.now(UTC)
        sensor.publish(EventType.OPEN, before + timedelta(hours=1)).wait_for_publish(5)
        wait_until(
            lambda: _sensor_state(api, sid)["events_stored"] == 1, what="skewed event stored"
        )
        state = _sensor_state(api, sid)
        assert state["clock_skewed"] is True
        assert 3500 < state["clock_skew"] < 3700
        event = api.get(f"/api/v1/sensors/{sid}/events").json()["data"][0]
        assert event["clock_skewed"] is True
        assert abs((datetime.fromisoformat(event["ts"]) - before).total_seconds()) < 30
        assert datetime.fromisoformat(event["device_ts"]) > before + timedelta(minutes=59)
        sensor.stop()


def test_status_topic_tracks_online_offline(stack: Stack) -> None:
    with stack.api() as api:
        _hh, prov = _new_sensor(stack, api)
        sid = prov["sensor_id"]
        sensor = _sensor(stack, prov)
        wait_until(lambda: _sensor_state(api, sid)["status"] == "online", what="online")
        # power loss: no DISCONNECT, the broker publishes the Last Will
        sock = sensor.client.socket()
        sensor.client.loop_stop()
        assert sock is not None
        sock.close()
        wait_until(
            lambda: _sensor_state(api, sid)["status"] == "offline", timeout_s=100, what="last will"
        )
        assert _sensor_state(api, sid)["status_reason"] == "broker"
