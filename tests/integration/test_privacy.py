"""Privacy end to end (SPEC "Privacy"): unenrolling erases personal data but its anonymous
incidents keep counting in the grades; raw events are purged by the scheduler's job,
which operators can list and run on demand."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from core.models import EventType
from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until
from tests.integration.grades_helpers import (
    CENTRE,
    distance_m,
    district_subset,
    insert_resolved_alert,
    midpoint,
    subset_geojson,
)


@pytest.fixture(scope="module")
def pstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("privacy"))
    try:
        s.start()
        with s.api() as api:
            r = api.post("/api/v1/segments/import", json=subset_geojson())
            assert r.status_code == 200, r.text
        yield s
    finally:
        s.stop()


def _props(api: httpx.Client, segment_id: str) -> dict[str, Any]:
    feats = api.get("/api/v1/segments").json()["features"]
    return next(f["properties"] for f in feats if f["properties"]["segment_id"] == segment_id)


def test_unenrol_erases_personal_data_but_keeps_the_grade_effect(pstack: Stack) -> None:
    home = min(district_subset(), key=lambda s: distance_m(midpoint(s), CENTRE))
    lat, lon = midpoint(home)
    with pstack.api() as api:
        hh = pstack.enrol(api, name="Kim Jiyeon", lat=lat, lon=lon,
                          webhook_url="http://127.0.0.1:9/hook")  # fmt: skip
        hid = hh["household_id"]
        prov = pstack.provision(api, hid)
        sensor = VirtualSensor.provisioned(prov, boot=1)
        assert sensor.start(), sensor.refused
        sensor.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
        sensor.stop()
        wait_until(lambda: pstack.db_scalar("SELECT COUNT(*) FROM events") >= 1, what="event")
        for _ in range(2):
            insert_resolved_alert(pstack.settings.database, hid, "confirmed", days_ago=3)
        assert api.post("/api/v1/grades/recompute").status_code == 200
        before = _props(api, home.segment_id)
        assert before["grade"] > before["base_grade"]

        r = api.delete(f"/api/v1/households/{hid}")
        assert r.status_code == 200, r.text
        assert r.json()["sensors_retired"] == [prov["sensor_id"]]
        assert api.delete(f"/api/v1/households/{hid}").json()["already"] is True
        assert api.delete("/api/v1/households/hh-nobody").status_code == 404

    # personal data gone
    conn = sqlite3.connect(pstack.settings.database, timeout=15)
    try:
        row = conn.execute(
            "SELECT name, lat, lon, webhook_url, webhook_secret, segment_id, unenrolled_us"
            " FROM households WHERE household_id = ?",
            (hid,),
        ).fetchone()
        assert row[:6] == ("", 0.0, 0.0, None, None, None) and row[6] is not None
        pk = conn.execute(
            "SELECT sensor_pk FROM sensors WHERE sensor_id = ?", (prov["sensor_id"],)
        ).fetchone()[0]
        assert (
            conn.execute("SELECT COUNT(*) FROM events WHERE sensor_pk = ?", (pk,)).fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "SELECT COUNT(*) FROM tokens WHERE household_id = ? AND revoked_us IS NULL", (hid,)
            ).fetchone()[0]
            == 0
        )
        # the anonymous incidents carry no household and no exact location
        cols = [r[1] for r in conn.execute("PRAGMA table_info(incidents)")]
        assert "household_id" not in cols
        n_inc = conn.execute(
            "SELECT COUNT(*) FROM incidents WHERE resolution = 'confirmed'"
        ).fetchone()[0]
        assert n_inc == 2
        assert (
            conn.execute(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'household.unenrol' AND target = ?",
                (hid,),
            ).fetchone()[0]
            == 1
        )
    finally:
        conn.close()
    with pstack.api(hh["token"]) as resident:
        assert resident.get(f"/api/v1/sensors/{prov['sensor_id']}").status_code == 401
    # the sensor's broker credentials stop working at once
    again = VirtualSensor.provisioned(prov, boot=2)
    assert not again.start(timeout_s=3)
    again.stop(graceful=False)

    with pstack.api() as api:
        # the incidents keep counting after the household is gone
        r = api.post("/api/v1/grades/recompute")
        assert r.status_code == 200 and r.json()["incidents_confirmed"] == 2
        after = _props(api, home.segment_id)
        assert after["grade"] >= before["grade"] > after["base_grade"]
        everything = (
            api.get("/api/v1/segments").text
            + api.get("/api/v1/grades/export", params={"format": "csv"}).text
        )
        for secret in ("Kim Jiyeon", hid, "127.0.0.1:9/hook", f"{lat:.7f}"):
            assert secret not in everything


def _wait_run(api: httpx.Client, request_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"/api/v1/scheduler/requests/{request_id}").json()
        return body if body["state"] == "done" else None

    result: dict[str, Any] = wait_until(done, 30, 0.2, what=f"request {request_id}")
    return result


def test_scheduler_jobs_listed_and_run_on_demand(pstack: Stack) -> None:
    now_us = time.time_ns() // 1000
    with pstack.api() as api:
        hh = pstack.enrol(api, lat=midpoint(district_subset()[0])[0],
                          lon=midpoint(district_subset()[0])[1])  # fmt: skip
        pk = pstack.provision(api, hh["household_id"])
    sensor_pk = pstack.db_scalar("SELECT sensor_pk FROM sensors WHERE sensor_id = ?",
                                 pk["sensor_id"])  # fmt: skip
    conn = sqlite3.connect(pstack.settings.database, timeout=15)
    try:  # one raw event 20 days old, one fresh
        for seq, age_days in ((1, 20), (2, 0)):
            t = now_us - age_days * 86_400_000_000
            conn.execute(
                "INSERT INTO events (sensor_pk, boot, seq, event_us, device_us, offset_min,"
                " received_us, type) VALUES (?,?,?,?,?,540,?,'open')",
                (sensor_pk, 1, seq, t, t, t),
            )
        conn.commit()
    finally:
        conn.close()

    pstack._spawn("scheduler", "scheduler")
    try:
        with pstack.api() as api:
            jobs = wait_until(
                lambda: [
                    j for j in api.get("/api/v1/scheduler/jobs").json()["data"] if j["next_run_at"]
                ],
                20,
                what="the scheduler to register its jobs",
            )
            ids = {j["job_id"] for j in jobs}
            assert {"grade_recompute", "retention_purge", "offline_sweep"} <= ids
            r = api.post("/api/v1/scheduler/jobs/retention_purge/run")
            assert r.status_code == 202, r.text
            run = _wait_run(api, r.json()["request_id"])["run"]
            assert run["trigger"] == "request" and run["outcome"] in ("ok", "skipped")
            assert wait_until(
                lambda: (
                    pstack.db_scalar("SELECT COUNT(*) FROM events WHERE sensor_pk = ?", sensor_pk)
                    == 1
                ),
                30,
                what="the old event to be purged",
            )
            r = api.post("/api/v1/scheduler/jobs/grade_recompute/run")
            run = _wait_run(api, r.json()["request_id"])["run"]
            assert run["outcome"] in ("ok", "skipped"), run
            runs = api.get("/api/v1/scheduler/jobs/grade_recompute/runs").json()["data"]
            assert any(x["outcome"] == "ok" and x["result"]["segments"] > 0 for x in runs) or \
                wait_until(lambda: any(
                    x["outcome"] == "ok" for x in
                    api.get("/api/v1/scheduler/jobs/grade_recompute/runs").json()["data"]
                ), 20)  # fmt: skip
            listed = {j["job_id"]: j for j in api.get("/api/v1/scheduler/jobs").json()["data"]}
            assert listed["grade_recompute"]["last_run"] is not None
            assert "02:00" in listed["grade_recompute"]["schedule"]
            assert api.post("/api/v1/scheduler/jobs/nope/run").status_code == 404
    finally:
        pstack.kill("scheduler", 15)
