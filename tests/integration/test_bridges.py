"""Several bridges on one MQTT v5 shared subscription, on PostgreSQL (issue 13 item 1).

Real mosquitto, real PostgreSQL, real bridge processes. The same input — 100 sensors,
60 events each, openings in `away` households (intrusions) and pairs of messages sent out
of order — goes once to one bridge and once to two bridges sharing
`$share/ansim-bridges/ansim/v1/sensors/#`, one of which is killed with SIGKILL in the
middle of the stream and restarted in its slot. Every event is stored exactly once, and
the alerts (kind, household, the event that raised it) are the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.models import EventType
from core.pgserver import PostgresProcess
from simulator.device import VirtualSensor
from tests.harness import ROOT, Stack, free_port, wait_until
from tests.pgtools import create_database, drop_database

SENSORS = 100
PER_SENSOR = 60
AWAY_EVERY = 10  # every 10th household is away: its first opening is an intrusion


class Bridges(Stack):
    """The harness's stack with `n` bridge slots instead of one bridge."""

    def __init__(self, data_dir: Path, url: str, n: int) -> None:
        super().__init__(
            data_dir,
            ANSIM_DATABASE_URL=url,
            ANSIM_BRIDGES=str(n),
            ANSIM_ENTRY_DELAY_S="2",
            ANSIM_EXIT_DELAY_S="0",
            ANSIM_HEALTH_PARTS="notifier",
        )
        self.n = n
        self.slot_ports = [free_port() for _ in range(n)]

    def start_bridge(self) -> None:
        for slot in range(self.n):
            self.start_slot(slot)

    def start_slot(self, slot: int) -> None:
        # the metrics port of slot i is BRIDGE_METRICS_PORT + i: give each a free base
        env = {**os.environ, **self.env, "ANSIM_BRIDGE_SLOT": str(slot),
               "ANSIM_BRIDGE_METRICS_PORT": str(self.slot_ports[slot] - slot)}  # fmt: skip
        with open(self.data_dir / f"bridge-{slot}.log", "ab") as log:
            self.procs[f"bridge-{slot}"] = subprocess.Popen(
                [sys.executable, "-m", "broker_bridge"], env=env, stdout=log, stderr=log, cwd=ROOT
            )


def _rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql.replace("?", "%s"), params).fetchall())


def _plan() -> list[list[tuple[int, str]]]:
    """Per sensor, the (seq, type) of its messages in publishing order: open/close
    alternating, every 7th pair sent the wrong way round (seq n+1 before seq n)."""
    plans = []
    for _ in range(SENSORS):
        msgs = [(seq, "open" if seq % 2 == 0 else "close") for seq in range(PER_SENSOR)]
        for i in range(0, PER_SENSOR - 1, 14):
            msgs[i], msgs[i + 1] = msgs[i + 1], msgs[i]
        plans.append(msgs)
    return plans


def _run(stack: Bridges, url: str, kill_slot: int | None) -> set[tuple[str, str, int]]:
    sensors: list[VirtualSensor] = []
    with stack.api() as api:
        for i in range(SENSORS):
            hh = stack.enrol(api, name=f"hh-{i:03d}")
            if i % AWAY_EVERY == 0:
                r = api.put(f"/api/v1/households/{hh['household_id']}/mode", json={"mode": "away"})
                assert r.status_code == 200, r.text
            sensors.append(VirtualSensor.provisioned(stack.provision(api, hh["household_id"])))
    for s in sensors:
        s.client.max_inflight_messages_set(200)
        assert s.start(), s.refused
    plans = _plan()
    total = SENSORS * PER_SENSOR
    sent = 0
    infos = []
    # a sensor stamps `ts` when the door moves, in seq order; only the delivery of the
    # swapped pairs is out of order
    base = datetime.now(UTC)
    try:
        for step in range(PER_SENSOR):
            for s, plan in zip(sensors, plans, strict=True):
                seq, kind = plan[step]
                s.seq = seq
                infos.append(s.publish(EventType(kind), base + timedelta(milliseconds=50 * seq)))
                sent += 1
            if kill_slot is not None and step == PER_SENSOR // 2:
                stack.kill(f"bridge-{kill_slot}", signal.SIGKILL)
                time.sleep(1.0)  # messages for the dead slot pile up in its session
                stack.start_slot(kill_slot)
            time.sleep(0.05)
        for info in infos:
            info.wait_for_publish(30)
        assert sent == total

        def stored() -> bool:
            return _rows(url, "SELECT COUNT(*) FROM events")[0][0] >= total

        wait_until(stored, 120, what=f"{total} events stored")
        time.sleep(4)  # entry delays (2 s) run out; the ticker raises the intrusions
        n, distinct = _rows(
            url, "SELECT COUNT(*), COUNT(DISTINCT (sensor_pk, boot, seq)) FROM events"
        )[0]
        assert n == total and distinct == total, (n, distinct)
        alerts = _rows(
            url,
            "SELECT a.kind, h.name, e.seq FROM alerts a"
            " JOIN households h ON h.household_id = a.household_id"
            " JOIN sensors s ON s.sensor_id = a.sensor_id"
            " JOIN events e ON e.sensor_pk = s.sensor_pk AND e.event_us = a.event_us",
        )
        return {(k, name, int(seq)) for k, name, seq in alerts}
    finally:
        for s in sensors:
            s.stop()


@pytest.fixture
def databases(pg_server: PostgresProcess) -> Iterator[tuple[str, str]]:
    one, two = create_database(pg_server), create_database(pg_server)
    try:
        yield one, two
    finally:
        drop_database(pg_server, one)
        drop_database(pg_server, two)


def test_two_bridges_store_everything_once_and_raise_what_one_bridge_raises(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    one_url, two_url = databases
    single = Bridges(tmp_path / "one", one_url, 1).start()
    try:
        expected = _run(single, one_url, None)
    finally:
        single.stop()
    pair = Bridges(tmp_path / "two", two_url, 2).start()
    try:
        got = _run(pair, two_url, kill_slot=1)
        logs = [(tmp_path / "two" / f"bridge-{i}.log").read_text() for i in range(2)]
    finally:
        pair.stop()
    intrusions = {a for a in expected if a[0] == "intrusion"}
    assert len(intrusions) == SENSORS // AWAY_EVERY, sorted(expected)
    assert got == expected, (sorted(got - expected), sorted(expected - got))
    # both slots took part, on the shared subscription
    for log in logs:
        assert "$share/ansim-bridges/ansim/v1/sensors/#" in log
