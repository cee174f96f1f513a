"""The simulator against the real stack (mosquitto, bridge, API, SQLite; replay mode):
a small fleet runs two simulated days at high speed, the report's counts agree with what
was stored, the seed makes runs repeatable, and every fault of the fault storm reaches the
system and is handled as SPEC says."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from core.wire import status_topic
from simulator.fleet import Fleet, SensorCredentials
from simulator.progress import Counters
from simulator.routines import ItemKind
from simulator.run import RunOptions, prepare, run_async
from simulator.truth import TruthRecord, read_truth
from tests.harness import ROOT, Stack, wait_until

START = "2026-11-16"  # a Monday


@pytest.fixture(scope="module")
def replay_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("sim-stack"), ANSIM_TIME_MODE="replay")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _settings(stack: Stack) -> Settings:
    return stack.settings.model_copy(update={"api_token": stack.operator_token})


def _options(tmp: Path, **kw: Any) -> RunOptions:
    base = RunOptions(
        households=10, days=2, speed=20_000, seed=7, start=START, progress=False,
        report=tmp / "report.json", truth=tmp / "truth.jsonl", settle_s=1.0,
    )  # fmt: skip
    return replace(base, **kw)


def _events(api: httpx.Client, sensor_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = api.get(f"/api/v1/sensors/{sensor_id}/events", params=params).json()
        out += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


def _unbound(records: list[TruthRecord]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        d = r.to_dict()
        for name in ("household_id", "sensor_id", "sent_at"):
            d.pop(name)
        for name in ("target_household_id", "target_sensor_id"):
            d["detail"].pop(name, None)
        out.append(d)
    return out


def test_small_fleet_counts_agree_and_seed_repeats(replay_stack: Stack, tmp_path: Path) -> None:
    opts = _options(tmp_path)
    report = asyncio.run(run_async(_settings(replay_stack), opts))

    assert report["sensors"] == 10 and report["sensors_not_connected"] == 0
    assert report["events_sent"] > 2000  # 10 sensors x 2 days of heartbeats and doors
    assert report["events_lost"] == 0 and report["events_unexpected"] == 0
    assert report["events_stored"] == report["events_sent"]
    assert report["all_acked"] and report["http_errors"] == 0
    assert report["mode_changes_sent"] > 10
    assert report["alerts_api"] == "ok"
    for key in (
        "incidents_injected", "incidents_detected", "false_alarms",
        "false_alarms_per_household_week", "alert_latency_p50_s", "alert_latency_p99_s",
    ):  # fmt: skip
        assert key in report
    assert json.loads(opts.report.read_text())["events_sent"] == report["events_sent"]  # type: ignore[union-attr]

    # the report's counts are what the database holds
    side = json.loads((tmp_path / "truth.jsonl.run.json").read_text())
    sensor_ids = [h["sensor_id"] for h in side["households"].values()]
    marks = ",".join("?" * len(sensor_ids))
    stored_rows = replay_stack.db_scalar(
        "SELECT COUNT(*) FROM events e JOIN sensors s USING (sensor_pk)"
        f" WHERE s.sensor_id IN ({marks})",
        *sensor_ids,
    )
    assert stored_rows == report["door_events_sent"] == report["door_events_stored"]

    # same seed: the same plan (every payload), the same ground truth; another seed: not
    again = asyncio.run(run_async(_settings(replay_stack), replace(opts, dry_run=True)))
    assert again["run"]["plan_digest"] == report["run"]["plan_digest"]
    other = asyncio.run(run_async(_settings(replay_stack), replace(opts, dry_run=True, seed=8)))
    assert other["run"]["plan_digest"] != report["run"]["plan_digest"]
    storm = replace(opts, scenario=ROOT / "scenarios" / "fault-storm.yaml")
    assert _unbound(prepare(storm).truth) == _unbound(prepare(storm).truth)

    # and the stored events of a sensor are exactly its planned door events
    key, first = next(iter(side["households"].items()))
    planned = [
        json.loads(p.payload or b"")
        for p in prepare(opts).plan()
        if p.household_key == key and p.counts_as_event and p.kind is not ItemKind.HEARTBEAT
    ]
    with replay_stack.api() as api:
        stored = _events(api, first["sensor_id"])
    assert sorted((e["boot"], e["seq"], e["type"]) for e in stored) == sorted(
        (p["boot"], p["seq"], p["type"]) for p in planned
    )


def test_fault_storm_reaches_the_system(replay_stack: Stack, tmp_path: Path) -> None:
    opts = _options(tmp_path, scenario=ROOT / "scenarios" / "fault-storm.yaml", seed=3)
    report = asyncio.run(run_async(_settings(replay_stack), opts))
    truth = read_truth(tmp_path / "truth.jsonl")
    kinds = {r.kind for r in truth}
    assert {
        "power_loss", "jamming", "dying_battery", "duplicate", "out_of_order", "clock_skew",
        "malformed", "oversize", "impersonation", "broker_disconnect",
    } <= kinds  # fmt: skip
    assert all(r.household_id and r.sensor_id for r in truth)
    # faults never cost a valid event, and none is stored twice
    assert report["events_lost"] == 0 and report["events_unexpected"] == 0

    with replay_stack.api() as api:
        for r in truth:
            if r.handling.startswith("dead_letter:"):
                reason = r.handling.split(":", 1)[1]
                page = api.get("/api/v1/dead-letters", params={"sensor_id": r.sensor_id}).json()
                reasons = {d["reason"] for d in page["data"]}
                assert reason in reasons, (r.record_id, r.kind, reasons)
        dups: dict[str, int] = {}
        for r in truth:
            if r.kind == "duplicate":
                assert r.sensor_id is not None
                dups[r.sensor_id] = dups.get(r.sensor_id, 0) + 1
        for sensor_id, n in dups.items():
            assert api.get(f"/api/v1/sensors/{sensor_id}").json()["duplicates"] >= n
        # a sensor publishing as another is refused by the broker: never stored for it
        impostors = [
            p
            for p in prepare(opts).plan()
            if p.kind is ItemKind.RAW and p.topic_key != p.household_key
        ]
        assert impostors
        side = json.loads((tmp_path / "truth.jsonl.run.json").read_text())
        for p in impostors:
            victim = side["households"][p.topic_key]["sensor_id"]
            body = json.loads(p.payload or b"")
            stored = {(e["boot"], e["seq"]) for e in _events(api, victim)}
            assert (body["boot"], body["seq"]) not in stored
    # after a power loss the sensor comes back as a new boot, seq from 0, and is stored;
    # (whether a short outage at this speed becomes a sensor_offline alert is the
    # backend's timer resolution: see test_power_loss_publishes_the_last_will for the Will)
    end = max(r.at for r in truth)
    with replay_stack.api() as api:
        for r in truth:
            if r.kind == "power_loss" and r.end_at is not None and r.end_at < end:
                assert r.sensor_id is not None
                boots = {e["boot"] for e in _events(api, r.sensor_id)}
                assert len(boots) >= 2 or not boots, (r.record_id, boots)
    assert report["duplicates_dropped"] >= sum(dups.values())


def test_power_loss_publishes_the_last_will(replay_stack: Stack) -> None:
    with replay_stack.api() as api:
        hh = replay_stack.enrol(api)
        prov = replay_stack.provision(api, hh["household_id"])
        sid = prov["sensor_id"]

        def status() -> str:
            return str(api.get(f"/api/v1/sensors/{sid}").json()["status"])

        async def scenario() -> None:
            fleet = Fleet(Counters())
            sensor = fleet.add(
                SensorCredentials("hh-00000", hh["household_id"], sid, "127.0.0.1",
                                  prov["mqtt"]["port"], prov["mqtt"]["password"],
                                  tls=True, ca_pem=prov["mqtt"]["ca_pem"])
            )  # fmt: skip
            assert await fleet.connect_all() == []
            await asyncio.to_thread(wait_until, lambda: status() == "online", 10, 0.05, "online")
            sensor.drop()  # no DISCONNECT: the broker publishes the Will
            await asyncio.to_thread(wait_until, lambda: status() == "offline", 10, 0.05, "will")
            assert not sensor.connected
            assert await sensor.start_connect()
            await asyncio.to_thread(wait_until, lambda: status() == "online", 10, 0.05, "back")
            await fleet.close()
            assert fleet.counters.acked == fleet.counters.published

        asyncio.run(scenario())
        assert status() == "offline"  # switched off properly: retained offline
        assert status_topic(sid).endswith("/status")
