"""Poison messages against the real stack (mosquitto, bridge, API, SQLite), in replay and
live time mode: whatever a sensor sends ends as a stored event or a dead letter with a
reason, never as a message that stalls ingest or a 500 on the API."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until
from tests.poison_payloads import EXTREME_TIMES, hostile_payloads

REASONS = {"bad_json", "bad_encoding", "invalid_field", "missing_field", "unknown_type",
           "oversize", "bad_status"}  # fmt: skip


@pytest.fixture(scope="module", params=["replay", "live"])
def mode_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp(f"poison-{request.param}"),
        ANSIM_TIME_MODE=request.param,
        # every hostile value is to be seen stored with its reason, none only counted
        ANSIM_DEAD_LETTER_CAP_PER_SENSOR="100000",
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _sensor(stack: Stack) -> tuple[str, VirtualSensor, httpx.Client]:
    api = stack.api()
    hh = stack.enrol(api)
    prov = stack.provision(api, hh["household_id"])
    sensor = VirtualSensor.provisioned(prov, boot=1)
    assert sensor.start(), f"sensor could not connect: {sensor.refused}"
    return prov["sensor_id"], sensor, api


def _event(seq: int, ts: datetime | str, type_: str = "open") -> bytes:
    text = ts if isinstance(ts, str) else ts.isoformat(timespec="milliseconds")
    return json.dumps({"boot": 1, "seq": seq, "ts": text, "type": type_}).encode()


def _all_events(api: httpx.Client, sensor_id: str, limit: int) -> list[dict[str, Any]]:
    """Every page of the sensor's event list; each page must answer 200."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = api.get(f"/api/v1/sensors/{sensor_id}/events", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return out
    raise AssertionError("the event list never ended")


def _stored_seqs(stack: Stack, sensor_id: str) -> set[int]:
    conn = sqlite3.connect(stack.settings.database, timeout=15)
    try:
        rows = conn.execute(
            "SELECT e.seq FROM events e JOIN sensors s USING (sensor_pk) WHERE s.sensor_id = ?",
            (sensor_id,),
        ).fetchall()
    finally:
        conn.close()
    return {int(r[0]) for r in rows}


def _dead_letters(stack: Stack, sensor_id: str) -> list[tuple[bytes, int, str, str]]:
    conn = sqlite3.connect(stack.settings.database, timeout=15)
    try:
        rows = conn.execute(
            "SELECT payload, payload_size, reason, detail FROM dead_letters WHERE sensor_id = ?",
            (sensor_id,),
        ).fetchall()
    finally:
        conn.close()
    return [(bytes(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


def test_live_extreme_times_keep_the_event_list(stack: Stack) -> None:
    """Issue 9 #2: after the most extreme times a sensor can write (stored as skewed, or
    dead-lettered), the sensor's event list answers 200 on every page, and a valid event
    sent afterwards is listed."""
    sid, sensor, api = _sensor(stack)
    topic = f"ansim/v1/sensors/{sid}/event"
    now = datetime.now(UTC)
    sensor.publish_raw(topic, _event(1, now - timedelta(seconds=5)))
    for i, ts in enumerate(EXTREME_TIMES):
        sensor.publish_raw(topic, _event(100 + i, ts))
    sensor.publish_raw(topic, _event(2, now)).wait_for_publish(5)
    wait_until(lambda: 2 in _stored_seqs(stack, sid), what="the valid event after the extremes")
    wait_until(
        lambda: (
            len(_stored_seqs(stack, sid)) + len(_dead_letters(stack, sid)) == len(EXTREME_TIMES) + 2
        ),
        what="every extreme time stored or dead-lettered",
    )
    for limit in (1, 3, 50):
        events = _all_events(api, sid, limit)
        assert {1, 2} <= {e["seq"] for e in events}
        for e in events:
            for key in ("ts", "device_ts", "received_at"):
                datetime.fromisoformat(e[key])
    # the two from the issue, by name: dead letters with the reason
    dead = {p: (reason, detail) for p, _n, reason, detail in _dead_letters(stack, sid)}
    for ts in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"):
        reason, detail = dead[_event(100 + EXTREME_TIMES.index(ts), ts)]
        assert reason == "invalid_field" and "out of range" in detail
    # an accepted extreme is stored as skewed, at the receive time
    skewed = [e for e in _all_events(api, sid, 50) if e["seq"] >= 100]
    assert skewed and all(e["clock_skewed"] for e in skewed)
    for path in (
        f"/api/v1/sensors/{sid}",
        "/api/v1/fleet",
        f"/api/v1/dead-letters?sensor_id={sid}",
    ):
        assert api.get(path).status_code == 200, path
    sensor.stop()
    api.close()


STATUS_POISON = [b"ONLINE", b"\xff\xfe", b"x" * 60_000, b"{}", b"online\x00", b"\\ud800"]


def test_every_hostile_value_ends_stored_or_dead_and_ingest_goes_on(mode_stack: Stack) -> None:
    """Issue 9 #1: one of every hostile value, then a valid event: the valid one is
    stored within 2 s, and each hostile one is a stored event or a dead letter with a
    reason. The bridge is the same process at the end (nothing crashed it)."""
    stack = mode_stack
    bridge = stack.procs["bridge"]
    sid, sensor, api = _sensor(stack)
    topic = f"ansim/v1/sensors/{sid}/event"
    hostile = hostile_payloads()
    for _label, payload in hostile:
        sensor.publish_raw(topic, payload)
    for payload in STATUS_POISON:
        sensor.publish_raw(f"ansim/v1/sensors/{sid}/status", payload)
    for _label, payload in hostile:  # and every one again: a redelivery changes nothing
        sensor.publish_raw(topic, payload)
    sensor.publish_raw(topic, _event(900, datetime.now(UTC) - timedelta(seconds=1)))
    valid = sensor.publish_raw(topic, _event(901, datetime.now(UTC)))
    valid.wait_for_publish(5)
    sent = time.monotonic()
    wait_until(lambda: 901 in _stored_seqs(stack, sid), 2.0, 0.02, "the valid event behind them")
    latency = time.monotonic() - sent
    print(f"\n[{stack.settings.time_mode}] valid event stored {latency * 1000:.0f} ms after"
          f" {2 * len(hostile) + len(STATUS_POISON)} hostile messages")  # fmt: skip
    assert 900 in _stored_seqs(stack, sid)

    # every dead letter, and every stored event, is there by now (same batches or earlier)
    dead = _dead_letters(stack, sid)
    stored = _stored_seqs(stack, sid)
    left: Counter[tuple[bytes, int]] = Counter((p, n) for p, n, _r, _d in dead)
    for reason_detail in ((r, d) for _p, _n, r, d in dead):
        assert reason_detail[0] in REASONS and reason_detail[1], reason_detail
    unaccounted = []
    for _round in range(2):
        for label, payload in hostile:
            key = (payload[:4096], len(payload))
            if left[key] > 0:
                left[key] -= 1
                continue
            try:
                seq = json.loads(payload)["seq"]
            except (ValueError, KeyError, TypeError):
                seq = None
            if not (isinstance(seq, int) and seq in stored):
                unaccounted.append(label)
    for payload in STATUS_POISON:
        key = (payload[:4096], len(payload))
        if left[key] > 0:
            left[key] -= 1
        else:
            unaccounted.append(f"status {payload[:20]!r}")
    assert not unaccounted, f"neither stored nor dead-lettered: {unaccounted}"
    assert sum(left.values()) == 0, f"dead letters nobody sent: {+left}"
    reasons = Counter(r for _p, _n, r, _d in dead)
    print(f"[{stack.settings.time_mode}] dead letters by reason: {dict(reasons)};"
          f" stored events: {len(stored)}")  # fmt: skip
    # the repeats are counted duplicates, not second rows
    state = api.get(f"/api/v1/sensors/{sid}").json()
    assert state["events_stored"] == len(stored)
    assert state["duplicates"] == len(stored) - 2
    # and the API still answers for this sensor: every page, the fleet, the dead letters
    for limit in (1, 7, 1000):
        assert {900, 901} <= {e["seq"] for e in _all_events(api, sid, limit)}
    assert api.get(f"/api/v1/sensors/{sid}").status_code == 200
    assert (
        api.get("/api/v1/fleet", params={"household_id": state["household_id"]}).status_code == 200
    )
    r = api.get("/api/v1/dead-letters", params={"sensor_id": sid, "limit": 1000})
    assert r.status_code == 200 and r.json()["count"] == len(dead)
    assert (
        api.get("/api/v1/alerts", params={"household_id": state["household_id"]}).status_code == 200
    )
    assert bridge.poll() is None and stack.procs["bridge"] is bridge, "the bridge died"
    assert "Traceback" not in (stack.data_dir / "bridge.log").read_text(errors="replace")
    sensor.stop()
    api.close()


def test_a_message_that_fails_at_storage_is_split_out_and_dead_lettered(
    mode_stack: Stack,
) -> None:
    """Issue 9 #1, the last line of defence: a message whose commit fails for a lasting
    reason (here a real SQLite trigger that aborts the insert of two of its rows, as a
    constraint or a bug would) must not hold back the batch it came in. The batch is split,
    the two are dead letters `storage_error` naming the exception, the rest are stored and
    acknowledged, and ingest goes on."""
    stack = mode_stack
    bridge = stack.procs["bridge"]
    sid, sensor, api = _sensor(stack)
    pk = stack.db_scalar("SELECT sensor_pk FROM sensors WHERE sensor_id = ?", sid)
    conn = sqlite3.connect(stack.settings.database, timeout=15, isolation_level=None)
    conn.execute(
        f"CREATE TRIGGER poison_{pk} BEFORE INSERT ON events"
        f" WHEN NEW.sensor_pk = {int(pk)} AND NEW.seq IN (7, 13)"
        " BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
    )
    try:
        topic = f"ansim/v1/sensors/{sid}/event"
        t0 = datetime.now(UTC) - timedelta(seconds=30)
        for seq in range(1, 21):
            sensor.publish_raw(topic, _event(seq, t0 + timedelta(seconds=seq)))
        sensor.publish_raw(topic, _event(21, datetime.now(UTC))).wait_for_publish(5)
        wait_until(lambda: 21 in _stored_seqs(stack, sid), 5, what="the event after the poison")
        assert _stored_seqs(stack, sid) == set(range(1, 22)) - {7, 13}
        dead = wait_until(lambda: len(_dead_letters(stack, sid)) == 2 and _dead_letters(stack, sid))
        assert sorted(json.loads(p)["seq"] for p, _n, _r, _d in dead) == [7, 13]
        for _p, _n, reason, detail in dead:
            assert reason == "storage_error"
            assert "IntegrityError" in detail and "poisoned row" in detail, detail
        state = api.get(f"/api/v1/sensors/{sid}").json()
        assert state["events_stored"] == 19 and state["duplicates"] == 0
        listed = api.get("/api/v1/dead-letters", params={"reason": "storage_error"}).json()
        assert {d["sensor_id"] for d in listed["data"]} == {sid}
        port = stack.settings.bridge_metrics_port
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "ansim_bridge_batch_splits_total 0.0" not in metrics
        assert 'ansim_bridge_dead_letters_total{reason="storage_error"} 2.0' in metrics
        # acknowledged: a restart of the bridge brings none of them back
        stack.kill("bridge", 15)
        stack.start_bridge()
        sensor.publish_raw(topic, _event(22, datetime.now(UTC))).wait_for_publish(5)
        wait_until(lambda: 22 in _stored_seqs(stack, sid), 15, what="the bridge back")
        assert len(_dead_letters(stack, sid)) == 2
        assert api.get(f"/api/v1/sensors/{sid}").json()["duplicates"] == 0
    finally:
        conn.execute(f"DROP TRIGGER IF EXISTS poison_{pk}")
        conn.close()
    assert bridge.returncode == 0, "the bridge had died before it was stopped"
    sensor.stop()
    api.close()
