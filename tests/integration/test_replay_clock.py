"""Replay mode against the real stack: one sensor whose clock says year 2999 cannot drag
the shared event clock with it — the other sensors do not go silent, no timer fires
early, and the far-ahead event is still stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.models import EventType
from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("replay-clock"), ANSIM_TIME_MODE="replay")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_one_far_ahead_sensor_does_not_move_the_event_clock(replay: Stack) -> None:
    sensors = []
    with replay.api() as api:
        for _ in range(3):
            hh = replay.enrol(api)
            sensors.append(VirtualSensor.provisioned(replay.provision(api, hh["household_id"])))
    good_a, good_b, bad = sensors
    for s in sensors:
        assert s.start()
    try:
        t0 = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
        for i, s in enumerate((good_a, good_b)):
            s.publish(EventType.HEARTBEAT, t0 + timedelta(seconds=i)).wait_for_publish(5)
        wait_until(lambda: replay.db_scalar("SELECT now_us FROM event_clock"), 10, what="clock")
        before = int(replay.db_scalar("SELECT now_us FROM event_clock"))
        far = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)
        for k in range(3):
            bad.publish(EventType.OPEN if k % 2 == 0 else EventType.CLOSE, far).wait_for_publish(5)
        good_a.publish(EventType.HEARTBEAT, t0 + timedelta(minutes=1)).wait_for_publish(5)
        with replay.api() as api:
            wait_until(
                lambda: api.get(f"/api/v1/sensors/{bad.sensor_id}/events").json()["data"],
                10,
                what="the far-ahead event stored",
            )
            time.sleep(1.5)  # several rules ticks
            clock = int(replay.db_scalar("SELECT now_us FROM event_clock"))
            assert before <= clock <= before + 120_000_000, (before, clock)
            offline = [
                a
                for a in api.get("/api/v1/alerts", params={"limit": 200}).json()["data"]
                if a["kind"] == "sensor_offline"
            ]
            assert offline == [], offline
            for s in (good_a, good_b):
                assert api.get(f"/api/v1/sensors/{s.sensor_id}").json()["status"] == "online"
    finally:
        for s in sensors:
            s.stop()
