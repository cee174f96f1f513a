"""Several schedulers on one PostgreSQL (issue 13 item 3): exactly one leads and runs the
jobs, the others stand by; after kill -9 of the leader a standby runs the next due job
within 30 s. Real scheduler processes, the project's own PostgreSQL, default lease."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.harness import ROOT, free_port, wait_until

SWEEP_S = 1  # offline_sweep every second: "the next due job" comes at once


def _lines(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"msg": line})
    return out


def _scalar(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


def _start(tmp_path: Path, url: str, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ANSIM_DATA_DIR": str(tmp_path / name),
        "ANSIM_DATABASE_URL": url,
        "ANSIM_INSTANCE_ID": name,
        "ANSIM_SCHEDULER_METRICS_PORT": str(free_port()),
        "ANSIM_OFFLINE_SWEEP_INTERVAL_S": str(SWEEP_S),
        "ANSIM_LOG_LEVEL": "INFO",
    }
    (tmp_path / name).mkdir()
    with open(tmp_path / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler"], env=env, cwd=ROOT, stdout=log, stderr=log
        )


def _said(path: Path, msg: str) -> bool:
    return any(r.get("msg") == msg for r in _lines(path))


def test_one_scheduler_leads_and_a_standby_takes_over_after_kill(
    tmp_path: Path, pg_url: str
) -> None:
    a = _start(tmp_path, pg_url, "sched-a")
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: _said(tmp_path / "sched-a.log", "scheduler started"), 30, what="a leads")
        b = _start(tmp_path, pg_url, "sched-b")
        wait_until(lambda: _said(tmp_path / "sched-b.log", "standing by"), 30, what="b stands by")
        time.sleep(3 * SWEEP_S)
        # only the leader runs jobs, and it is named where /healthz reads it
        assert not _said(tmp_path / "sched-b.log", "job done")
        assert _scalar(pg_url, "SELECT holder FROM locks WHERE name = 'scheduler'") == "sched-a"
        beat = _scalar(pg_url, "SELECT detail FROM service_heartbeats WHERE part = 'scheduler'")
        assert json.loads(str(beat))["leader"] == "sched-a"
        runs_before = int(str(_scalar(pg_url, "SELECT COUNT(*) FROM job_runs")))
        assert runs_before >= 2

        a.send_signal(signal.SIGKILL)
        a.wait(10)
        killed = time.monotonic()
        killed_us = time.time_ns() // 1000
        wait_until(
            lambda: (
                int(
                    str(
                        _scalar(
                            pg_url, f"SELECT COUNT(*) FROM job_runs WHERE started_us > {killed_us}"
                        )
                    )
                )
                > 0
            ),
            30,
            what="a job run by the standby after the leader's death",
        )
        took = time.monotonic() - killed
        assert took < 30, took
        assert _said(tmp_path / "sched-b.log", "leading: this scheduler runs the jobs")
        assert _scalar(pg_url, "SELECT holder FROM locks WHERE name = 'scheduler'") == "sched-b"
        # never two runs of one job at once: runs of each job do not overlap in time
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute(
                "SELECT job_id, started_us, finished_us FROM job_runs"
                " WHERE finished_us IS NOT NULL ORDER BY job_id, started_us"
            ).fetchall()
        for (j1, _s1, f1), (j2, s2, _f2) in itertools.pairwise(rows):
            if j1 == j2:
                assert s2 >= f1, (j1, f1, s2)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
