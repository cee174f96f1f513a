"""Dead letters are bounded: per sensor and window only the first ANSIM_DEAD_LETTER_CAP_PER_SENSOR
are stored with their payload, the rest are counted; and the scheduler's dead_letter_purge
deletes what is older than the retention. Real mosquitto, bridge, API, scheduler and file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.dead_letter_cap import DeadLetterCap
from core.ingest import DeadLetter
from core.models import EventType
from core.storage.db import open_sqlite, transaction
from core.storage.dead_letters import store_dead_letters
from core.storage.sqlite import connect
from simulator.device import VirtualSensor
from tests.harness import Stack, wait_until

CAP = 50
DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def dstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # one window of ~31 years (epoch-aligned: 2001-09-09 .. 2033-05-18), so no window
    # boundary falls inside the test
    s = Stack(
        tmp_path_factory.mktemp("deadcap"),
        ANSIM_DEAD_LETTER_CAP_PER_SENSOR=str(CAP),
        ANSIM_DEAD_LETTER_CAP_WINDOW_S=str(10**9),
        ANSIM_DEAD_LETTER_RETENTION_DAYS="14",
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _sensor(stack: Stack, api: httpx.Client) -> VirtualSensor:
    hh = stack.enrol(api)
    prov = stack.provision(api, hh["household_id"])
    s = VirtualSensor.provisioned(prov)
    assert s.start(), f"sensor could not connect: {s.refused}"
    return s


def _stored(stack: Stack, sensor_id: str) -> int:
    n: int = stack.db_scalar("SELECT COUNT(*) FROM dead_letters WHERE sensor_id = ?", sensor_id)
    return n


def _events(stack: Stack, sensor_id: str) -> int:
    n: int = stack.db_scalar(
        "SELECT COUNT(*) FROM events JOIN sensors USING (sensor_pk) WHERE sensor_id = ?",
        sensor_id,
    )
    return n


def _bridge_metric(stack: Stack, outcome: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{stack.settings.bridge_metrics_port}/metrics").text
    line = f'ansim_bridge_dead_letter_outcomes_total{{outcome="{outcome}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


def test_flood_from_one_sensor_is_capped_and_counted(dstack: Stack) -> None:
    with dstack.api() as api:
        flood, quiet = _sensor(dstack, api), _sensor(dstack, api)
        topic = f"ansim/v1/sensors/{flood.sensor_id}/event"
        for i in range(500):
            bad = b"{not json " + b"x" * 500 if i % 2 else b'{"boot":1,"type":"open"}'
            info = flood.publish_raw(topic, bad)
        info.wait_for_publish(10)
        for _ in range(5):
            quiet.publish_raw(f"ansim/v1/sensors/{quiet.sensor_id}/event", b"[]")
        # the flood does not stop a valid event behind it
        flood.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(10)
        quiet.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(10)
        wait_until(
            lambda: _events(dstack, flood.sensor_id) == 1 and _events(dstack, quiet.sensor_id) == 1,
            20,
            what="the valid events after the flood",
        )

        assert _stored(dstack, flood.sensor_id) == CAP
        assert _stored(dstack, quiet.sensor_id) == 5  # another sensor keeps its own allowance
        body = api.get("/api/v1/dead-letters", params={"sensor_id": flood.sensor_id}).json()
        (tally,) = body["suppressed"]
        assert (tally["stored"], tally["suppressed"]) == (CAP, 450)
        assert tally["sensor_id"] == flood.sensor_id and tally["topic"] == topic
        assert tally["last_reason"] == "bad_json"  # the 500th was {not json ...
        assert tally["first_at"] <= tally["last_at"]
        assert body["suppressed_total"] == 450
        assert all(len(d["payload"].encode()) <= 4096 for d in body["data"])
        quiet_body = api.get("/api/v1/dead-letters", params={"sensor_id": quiet.sensor_id}).json()
        assert quiet_body["suppressed"] == [] and len(quiet_body["data"]) == 5
        assert _bridge_metric(dstack, "stored") == CAP + 5
        assert _bridge_metric(dstack, "suppressed") == 450

        # the count lives in the database: a restarted bridge does not grant a new allowance
        dstack.kill("bridge", 15)
        dstack.start_bridge()
        for _ in range(10):
            info = flood.publish_raw(topic, b"{")
        info.wait_for_publish(10)
        flood.publish(EventType.CLOSE, datetime.now(UTC)).wait_for_publish(10)
        wait_until(lambda: _events(dstack, flood.sensor_id) == 2, 30, what="event after restart")
        assert _stored(dstack, flood.sensor_id) == CAP
        body = api.get("/api/v1/dead-letters", params={"sensor_id": flood.sensor_id}).json()
        assert body["suppressed"][0]["suppressed"] == 460
        flood.stop()
        quiet.stop()


def _old_dead(sensor_id: str, received_us: int, i: int) -> DeadLetter:
    return DeadLetter(
        topic=f"ansim/v1/sensors/{sensor_id}/event",
        sensor_id=sensor_id,
        reason="bad_json",
        detail=f"old #{i}",
        payload=b"z" * 4096,
        payload_size=4096,
        received_us=received_us,
    )


async def _insert(stack: Stack, dead: list[DeadLetter]) -> None:
    conn = await connect(stack.settings.database)
    try:
        async with transaction(conn):
            await store_dead_letters(conn, dead, DeadLetterCap(cap=100_000, window_s=3600))
    finally:
        await conn.close()


def _wait_run(api: httpx.Client, request_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"/api/v1/scheduler/requests/{request_id}").json()
        return body if body["state"] == "done" else None

    result: dict[str, Any] = wait_until(done, 60, 0.2, what=f"request {request_id}")
    return result


def test_retention_job_deletes_old_dead_letters_and_tallies(dstack: Stack) -> None:
    now_us = time.time_ns() // 1000
    # 5,000 of 4 KiB older than 14 days (several purge batches), 30 just inside, 20 fresh
    old = [_old_dead("s-retention", now_us - 20 * DAY_US + i, i) for i in range(5000)]
    recent = [_old_dead("s-retention", now_us - 13 * DAY_US + i, i) for i in range(30)]
    fresh = [_old_dead("s-retention", now_us - 1000 + i, i) for i in range(20)]
    asyncio.run(_insert(dstack, old + recent + fresh))
    assert _stored(dstack, "s-retention") == 5050
    tallies = "SELECT COUNT(*) FROM dead_letter_tallies WHERE sensor_id = 's-retention'"
    assert dstack.db_scalar(tallies) == 3

    dstack._spawn("scheduler", "scheduler")
    try:
        with dstack.api() as api:
            wait_until(
                lambda: any(
                    j["job_id"] == "dead_letter_purge" and j["next_run_at"]
                    for j in api.get("/api/v1/scheduler/jobs").json()["data"]
                ),
                20,
                what="the scheduler to register dead_letter_purge",
            )
            r = api.post("/api/v1/scheduler/jobs/dead_letter_purge/run")
            assert r.status_code == 202, r.text
            run = _wait_run(api, r.json()["request_id"])["run"]
            assert run["outcome"] == "ok", run

            # a daily job missed today also runs once at scheduler start: count every run
            def finished() -> list[dict[str, Any]] | None:
                data: list[dict[str, Any]] = api.get(
                    "/api/v1/scheduler/jobs/dead_letter_purge/runs"
                ).json()["data"]
                return None if any(x["outcome"] == "running" for x in data) else data

            runs = wait_until(finished, 30, 0.2, what="every dead_letter_purge run to finish")
            assert all(x["outcome"] == "ok" for x in runs), runs
            assert sum(x["result"]["dead_letters"] for x in runs) == 5000
            assert sum(x["result"]["tallies"] for x in runs) == 1
            for x in runs:
                took = datetime.fromisoformat(x["finished_at"]) - datetime.fromisoformat(
                    x["started_at"]
                )
                print(
                    f"\n{x['trigger']}: purged {x['result']['dead_letters']} dead letters"
                    f" (4 KiB each) in {took.total_seconds() * 1e3:.0f} ms"
                )
    finally:
        dstack.kill("scheduler", 15)
    assert _stored(dstack, "s-retention") == 50
    assert (
        dstack.db_scalar(
            "SELECT COUNT(*) FROM dead_letters WHERE sensor_id = 's-retention' AND received_us < ?",
            now_us - 14 * DAY_US,
        )
        == 0
    )
    assert dstack.db_scalar(tallies) == 2  # the 20-day-old window's tally went with it


async def _store_twice_and_read(path: Path) -> tuple[list[Any], list[Any]]:
    conn = await open_sqlite(path)
    try:
        policy = DeadLetterCap(cap=2, window_s=3600)
        base = 1_800_000_000 * 1_000_000 - 1_800_000_000 * 1_000_000 % (3600 * 1_000_000)
        long = DeadLetter("ansim/v1/sensors/s-x/event", "s-x", "unknown_topic", "d" * 5000,
                          b"p" * 9000, 9000, base + 10)  # fmt: skip
        async with transaction(conn):
            first = await store_dead_letters(conn, [long, _old_dead("s-x", base + 20, 1)], policy)
        # a later batch: the window's allowance is used up; an older straggler does not
        # replace the last reason
        late = _old_dead("s-x", base + 30, 2)
        straggler = DeadLetter(late.topic, "s-x", "oversize", "older", b"", 0, base + 5)
        async with transaction(conn):
            second = await store_dead_letters(conn, [late, straggler], policy)
        assert (len(first.store), first.suppressed, len(second.store), second.suppressed) == (
            2, 0, 0, 2,
        )  # fmt: skip
        async with conn.execute(
            "SELECT length(payload), payload_size, length(detail) FROM dead_letters"
            " ORDER BY dead_letter_id"
        ) as cur:
            rows = list(await cur.fetchall())
        async with conn.execute(
            "SELECT stored, suppressed, first_us - ?, last_us - ?, last_reason, last_detail"
            " FROM dead_letter_tallies",
            (base, base),
        ) as cur:
            tallies = list(await cur.fetchall())
        return [tuple(r) for r in rows], [tuple(t) for t in tallies]
    finally:
        await conn.close()


def test_storage_cuts_payload_and_detail_and_tallies_across_batches(tmp_path: Path) -> None:
    rows, tallies = asyncio.run(_store_twice_and_read(tmp_path / "ansim.db"))
    assert rows == [(4096, 9000, 500), (4096, 4096, 6)]
    assert tallies == [(2, 2, 5, 30, "bad_json", "old #2")]
