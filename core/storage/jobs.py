"""Scheduler bookkeeping: the deployment's jobs, every run, and on-demand run requests.

The scheduler process registers its jobs (`upsert_job`), records each run (`start_run`,
`finish_run`) and picks up requests that operators file through the API
(`request_run`, `take_requests`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.storage.port import Conn


@dataclass(frozen=True, slots=True)
class JobRun:
    job_run_id: int
    job_id: str
    trigger: str
    requested_by: str | None
    started_us: int
    finished_us: int | None
    outcome: str
    result: Any
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_run_id": self.job_run_id,
            "job_id": self.job_id,
            "trigger": self.trigger,
            "requested_by": self.requested_by,
            "started_us": self.started_us,
            "finished_us": self.finished_us,
            "outcome": self.outcome,
            "result": self.result,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    description: str
    schedule: str
    next_run_us: int | None
    updated_us: int
    last_run: JobRun | None
    last_success_us: int | None
    pending_requests: int


_RUN_COLUMNS = (
    "job_run_id, job_id, trigger, requested_by, started_us, finished_us, outcome, result, error"
)


def _run(r: Any) -> JobRun:
    return JobRun(
        job_run_id=int(r[0]),
        job_id=r[1],
        trigger=r[2],
        requested_by=r[3],
        started_us=int(r[4]),
        finished_us=None if r[5] is None else int(r[5]),
        outcome=r[6],
        result=None if r[7] is None else json.loads(r[7]),
        error=r[8],
    )


async def upsert_job(
    conn: Conn,
    job_id: str,
    description: str,
    schedule: str,
    next_run_us: int | None,
    now_us: int,
) -> None:
    await conn.execute(
        "INSERT INTO scheduler_jobs (job_id, description, schedule, next_run_us, updated_us)"
        " VALUES (?,?,?,?,?) ON CONFLICT (job_id) DO UPDATE SET"
        " description = excluded.description, schedule = excluded.schedule,"
        " next_run_us = excluded.next_run_us, updated_us = excluded.updated_us",
        (job_id, description, schedule, next_run_us, now_us),
    )


async def set_next_run(conn: Conn, job_id: str, next_run_us: int | None, now_us: int) -> None:
    await conn.execute(
        "UPDATE scheduler_jobs SET next_run_us = ?, updated_us = ? WHERE job_id = ?",
        (next_run_us, now_us, job_id),
    )


async def job_exists(conn: Conn, job_id: str) -> bool:
    async with conn.execute("SELECT 1 FROM scheduler_jobs WHERE job_id = ?", (job_id,)) as cur:
        return await cur.fetchone() is not None


async def list_jobs(conn: Conn) -> list[JobRow]:
    async with conn.execute(
        "SELECT j.job_id, j.description, j.schedule, j.next_run_us, j.updated_us,"
        " (SELECT MAX(job_run_id) FROM job_runs r WHERE r.job_id = j.job_id),"
        " (SELECT MAX(finished_us) FROM job_runs r WHERE r.job_id = j.job_id"
        "  AND r.outcome = 'ok'),"
        " (SELECT COUNT(*) FROM job_requests q WHERE q.job_id = j.job_id"
        "  AND q.picked_us IS NULL)"
        " FROM scheduler_jobs j ORDER BY j.job_id"
    ) as cur:
        rows = await cur.fetchall()
    out = []
    for r in rows:
        last = None
        if r[5] is not None:
            async with conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE job_run_id = ?", (r[5],)
            ) as cur:
                row = await cur.fetchone()
            last = None if row is None else _run(row)
        out.append(
            JobRow(
                job_id=r[0],
                description=r[1],
                schedule=r[2],
                next_run_us=r[3],
                updated_us=int(r[4]),
                last_run=last,
                last_success_us=None if r[6] is None else int(r[6]),
                pending_requests=int(r[7]),
            )
        )
    return out


async def list_runs(conn: Conn, job_id: str, limit: int = 20) -> list[JobRun]:
    async with conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE job_id = ? ORDER BY job_run_id DESC LIMIT ?",
        (job_id, limit),
    ) as cur:
        return [_run(r) for r in await cur.fetchall()]


async def last_success_us(conn: Conn, job_id: str) -> int | None:
    async with conn.execute(
        "SELECT MAX(started_us) FROM job_runs WHERE job_id = ? AND outcome = 'ok'", (job_id,)
    ) as cur:
        row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def request_run(conn: Conn, job_id: str, requested_by: str, now_us: int) -> int:
    cur = await conn.execute(
        "INSERT INTO job_requests (job_id, requested_us, requested_by) VALUES (?,?,?)"
        " RETURNING request_id",
        (job_id, now_us, requested_by),
    )
    return int((await cur.fetchone())[0])


async def get_request(conn: Conn, request_id: int) -> dict[str, Any] | None:
    async with conn.execute(
        "SELECT request_id, job_id, requested_us, requested_by, picked_us, job_run_id"
        " FROM job_requests WHERE request_id = ?",
        (request_id,),
    ) as cur:
        r = await cur.fetchone()
    if r is None:
        return None
    keys = ("request_id", "job_id", "requested_us", "requested_by", "picked_us", "job_run_id")
    return dict(zip(keys, r, strict=True))


async def take_requests(conn: Conn, now_us: int) -> list[tuple[int, str, str]]:
    """Claim every pending request (inside a write transaction): (request_id, job_id, by)."""
    async with conn.execute(
        "UPDATE job_requests SET picked_us = ? WHERE picked_us IS NULL"
        " RETURNING request_id, job_id, requested_by",
        (now_us,),
    ) as cur:
        rows = await cur.fetchall()
    return sorted((int(r[0]), r[1], r[2]) for r in rows)


async def start_run(
    conn: Conn,
    job_id: str,
    trigger: str,
    requested_by: str | None,
    now_us: int,
    request_id: int | None = None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO job_runs (job_id, trigger, requested_by, started_us) VALUES (?,?,?,?)"
        " RETURNING job_run_id",
        (job_id, trigger, requested_by, now_us),
    )
    run_id = int((await cur.fetchone())[0])
    if request_id is not None:
        await conn.execute(
            "UPDATE job_requests SET job_run_id = ? WHERE request_id = ?", (run_id, request_id)
        )
    return run_id


async def finish_run(
    conn: Conn,
    job_run_id: int,
    outcome: str,
    now_us: int,
    result: Any = None,
    error: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE job_runs SET outcome = ?, finished_us = ?, result = ?, error = ?"
        " WHERE job_run_id = ?",
        (outcome, now_us, None if result is None else json.dumps(result), error, job_run_id),
    )
