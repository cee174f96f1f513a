"""The scheduler logs what changes (a request picked up, a job run with its result), not
each poll of the request table. A real scheduler process on a real database file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.harness import ROOT, free_port, wait_until


def _lines(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"msg": line})
    return out


def test_scheduler_logs_changes_not_polls(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ANSIM_DATA_DIR": str(tmp_path),
        "ANSIM_SCHEDULER_METRICS_PORT": str(free_port()),
        "ANSIM_SCHEDULER_REQUEST_POLL_S": "0.1",
        "ANSIM_OFFLINE_SWEEP_INTERVAL_S": "3600",
        "ANSIM_LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "scheduler.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler"], env=env, cwd=ROOT, stdout=log, stderr=log
        )
    try:
        wait_until(
            lambda: any(r.get("msg") == "scheduler started" for r in _lines(log_path)),
            30,
            what="scheduler started",
        )
        time.sleep(0.5)  # let the start-up catch-up runs finish
        at_start = len(_lines(log_path))
        time.sleep(3)  # ~30 polls of the request table
        quiet = _lines(log_path)[at_start:]
        assert quiet == [], quiet  # nothing changed, nothing logged

        with sqlite3.connect(tmp_path / "ansim.db") as db:
            db.execute(
                "INSERT INTO job_requests (job_id, requested_us, requested_by) VALUES (?,?,?)",
                ("retention_purge", time.time_ns() // 1000, "operator:tests"),
            )
        wait_until(
            lambda: any(
                r.get("msg") == "job done" and r.get("trigger") == "request"
                for r in _lines(log_path)
            ),
            10,
            what="the requested run logged",
        )
        time.sleep(1)
        after = _lines(log_path)[at_start:]
        msgs = [r.get("msg") for r in after]
        assert msgs.count("run request picked up") == 1, after
        done = [r for r in after if r.get("msg") == "job done"]
        assert len(done) == 1 and done[0]["job"] == "retention_purge"
        assert done[0]["outcome"] == "ok" and "result" in done[0]
        assert len(after) <= 4, after  # picked up, the job's own line, done
        assert not any("Running job" in str(m) or "executed" in str(m) for m in msgs)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0
