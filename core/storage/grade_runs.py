"""Grade runs: `recompute_grades` takes the `grade_recompute` lease (so the API and the
scheduler never recompute at once), grades every segment with
`core.grading.grade_segments` off the event loop, and stores the current grades and, per
run, only the segments whose grade changed; the runs' list and a segment's history."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from core.errors import AnsimError
from core.geo import MAX_GRADE, MIN_GRADE, SegmentIndex
from core.grading import GradeParams, SegmentGrade, grade_segments
from core.storage.incidents import households_per_segment, load_incidents, sync_incidents
from core.storage.leases import acquire_lock, release_lock
from core.storage.port import Conn, Store
from core.timeutil import to_us

RECOMPUTE_LOCK = "grade_recompute"
RECOMPUTE_LEASE_US = 15 * 60 * 1_000_000
"""A crashed recompute's lease expires after this; a live one finishes in seconds."""
STORED_CONTRIBUTIONS = 20
"""Heaviest incidents kept per segment (the count and weighted sum cover all of them)."""


class RecomputeBusyError(AnsimError):
    """Another recompute holds the lease."""

    def __init__(self, holder: str, since_us: int) -> None:
        super().__init__(f"a recompute is already running (started by {holder})")
        self.holder = holder
        self.since_us = since_us


@dataclass(frozen=True, slots=True)
class GradeRow:
    """A stored current grade (segments without a row have their base grade)."""

    segment_id: str
    run_id: int
    base_grade: int
    grade: int
    previous_grade: int | None
    score: float
    weighted_incidents: float
    household_exposure: float
    held: bool
    incident_count: int
    contributions_json: str
    explanation: str

    @property
    def contributions(self) -> list[tuple[str, float]]:
        """The heaviest incidents (id, weight); parsed only when asked (k-anonymity
        hides them on most segments)."""
        return [(str(i), float(w)) for i, w in json.loads(self.contributions_json)]


_GRADE_COLUMNS = (
    "segment_id, run_id, base_grade, grade, previous_grade, score, weighted_incidents,"
    " household_exposure, held, incident_count, contributions, explanation"
)


def _grade_row(r: Any) -> GradeRow:
    return GradeRow(
        segment_id=r[0],
        run_id=int(r[1]),
        base_grade=int(r[2]),
        grade=int(r[3]),
        previous_grade=None if r[4] is None else int(r[4]),
        score=float(r[5]),
        weighted_incidents=float(r[6]),
        household_exposure=float(r[7]),
        held=bool(r[8]),
        incident_count=int(r[9]),
        contributions_json=r[10],
        explanation=r[11],
    )


async def get_grade_rows(
    conn: Conn, segment_ids: Sequence[str] | None = None
) -> dict[str, GradeRow]:
    sql = f"SELECT {_GRADE_COLUMNS} FROM segment_grades"
    params: tuple[Any, ...] = ()
    if segment_ids is not None:
        sql += f" WHERE {conn.dialect.in_json_list('segment_id')}"
        params = (json.dumps(list(segment_ids)),)
    async with conn.execute(sql, params) as cur:
        return {r[0]: _grade_row(r) for r in await cur.fetchall()}


async def previous_grades(conn: Conn) -> dict[str, int]:
    async with conn.execute("SELECT segment_id, grade FROM segment_grades") as cur:
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


@dataclass(frozen=True, slots=True)
class RecomputeResult:
    run_id: int
    as_of_us: int
    segments: int
    raised: int
    lowered: int
    unchanged: int
    above_base: int
    by_grade: dict[int, int]
    incidents_confirmed: int
    incidents_ignored: int
    households: int
    seconds: float
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prepare_rows(
    grades: Sequence[SegmentGrade], run_id: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, Any]]:
    """Rows for `segment_grades` (only non-trivial grades) and `grade_changes` (only
    changed ones), and the summary counts. CPU work, run off the event loop."""
    current: list[tuple[Any, ...]] = []
    changes: list[tuple[Any, ...]] = []
    raised = lowered = unchanged = above = 0
    by_grade = dict.fromkeys(range(MIN_GRADE, MAX_GRADE + 1), 0)
    dumps = json.dumps
    for g in grades:
        by_grade[g.grade] += 1
        before = g.before
        if g.grade > before:
            raised += 1
        elif g.grade < before:
            lowered += 1
        else:
            unchanged += 1
        if g.grade > g.base_grade:
            above += 1
        if not g.contributions and g.grade == g.base_grade and not g.changed:
            continue
        text = g.explanation()
        top = [[i, round(w, 4)] for i, w in g.contributions[:STORED_CONTRIBUTIONS]]
        current.append(
            (g.segment_id, run_id, g.base_grade, g.grade, g.previous_grade, round(g.score, 6),
             round(g.weighted_incidents, 6), round(g.household_exposure, 6), int(g.held),
             len(g.contributions), dumps(top, separators=(",", ":")), text)
        )  # fmt: skip
        if g.changed:
            changes.append(
                (run_id, g.segment_id, g.base_grade, before, g.grade, round(g.score, 6),
                 len(g.contributions), text)
            )  # fmt: skip
    summary = {
        "segments": len(grades),
        "raised": raised,
        "lowered": lowered,
        "unchanged": unchanged,
        "above_base": above,
        "by_grade": by_grade,
    }
    return current, changes, summary


async def recompute_grades(
    db: Store,
    index: SegmentIndex,
    params: GradeParams,
    now: datetime,
    actor: str,
) -> RecomputeResult:
    """Recompute every segment's adjusted grade as of `now` and store it.

    Raises RecomputeBusyError while another process or request holds the lease."""
    started = time.perf_counter()
    now_us = to_us(now)
    holder = f"{actor}#{time.time_ns()}"
    wall_us = time.time_ns() // 1000
    params_doc = asdict(params)
    async with db.write() as conn:
        taken, who, since = await acquire_lock(
            conn, RECOMPUTE_LOCK, holder, wall_us, RECOMPUTE_LEASE_US
        )
        if not taken:
            raise RecomputeBusyError(who.split("#", 1)[0], since)
        cur = await conn.execute(
            "INSERT INTO grade_runs (started_us, as_of_us, actor, state, params)"
            " VALUES (?,?,?,'running',?) RETURNING run_id",
            (wall_us, now_us, actor, json.dumps(params_doc)),
        )
        run_id = int((await cur.fetchone())[0])
    try:
        async with db.write() as conn:
            await sync_incidents(conn, wall_us)
        since_us = now_us - int(params.max_age_days * 86_400 * 1_000_000) - 1
        incidents = await load_incidents(db.reader, since_us)
        households = await households_per_segment(db.reader)
        previous = await previous_grades(db.reader)

        def work() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, Any]]:
            grades = grade_segments(index, incidents, households, previous, params, now)
            return _prepare_rows(grades, run_id)

        current, changes, summary = await asyncio.to_thread(work)
        confirmed = sum(1 for i in incidents if i.confirmed)
        result = RecomputeResult(
            run_id=run_id,
            as_of_us=now_us,
            incidents_confirmed=confirmed,
            incidents_ignored=len(incidents) - confirmed,
            households=sum(households.values()),
            seconds=0.0,
            params=params_doc,
            **summary,
        )
        async with db.write() as conn:
            await conn.execute("DELETE FROM segment_grades")
            await conn.executemany(
                f"INSERT INTO segment_grades ({_GRADE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                current,
            )
            await conn.executemany(
                "INSERT INTO grade_changes (run_id, segment_id, base_grade, before_grade,"
                " after_grade, score, incident_count, explanation) VALUES (?,?,?,?,?,?,?,?)",
                changes,
            )
            seconds = round(time.perf_counter() - started, 3)
            result = RecomputeResult(**{**asdict(result), "seconds": seconds})
            await conn.execute(
                "UPDATE grade_runs SET state = 'done', finished_us = ?, summary = ?"
                " WHERE run_id = ?",
                (time.time_ns() // 1000, json.dumps(result.to_dict()), run_id),
            )
            await release_lock(conn, RECOMPUTE_LOCK, holder)
    except BaseException as exc:
        async with db.write() as conn:
            await conn.execute(
                "UPDATE grade_runs SET state = 'failed', finished_us = ?, error = ?"
                " WHERE run_id = ?",
                (time.time_ns() // 1000, repr(exc)[:500], run_id),
            )
            await release_lock(conn, RECOMPUTE_LOCK, holder)
        raise
    return result


async def list_grade_runs(conn: Conn, limit: int = 20) -> list[dict[str, Any]]:
    async with conn.execute(
        "SELECT run_id, started_us, finished_us, as_of_us, actor, state, summary, error"
        " FROM grade_runs ORDER BY run_id DESC LIMIT ?",
        (limit,),
    ) as cur:
        rows = await cur.fetchall()
    return [
        {
            "run_id": r[0],
            "started_us": r[1],
            "finished_us": r[2],
            "as_of_us": r[3],
            "actor": r[4],
            "state": r[5],
            "summary": None if r[6] is None else json.loads(r[6]),
            "error": r[7],
        }
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of a segment: a base grade import or a recompute that changed it."""

    kind: str  # "import" or "recompute"
    at_us: int
    ref_id: int
    before: int | None
    after: int
    base_grade: int | None
    score: float | None
    incident_count: int | None
    explanation: str | None


async def segment_history(conn: Conn, segment_id: str, limit: int = 200) -> list[HistoryEntry]:
    """A segment's base-grade imports and grade changes, newest first."""
    out: list[HistoryEntry] = []
    async with conn.execute(
        "SELECT c.import_id, i.imported_us, c.old_base_grade, c.new_base_grade"
        " FROM segment_base_changes c JOIN segment_imports i USING (import_id)"
        " WHERE c.segment_id = ? ORDER BY c.import_id DESC LIMIT ?",
        (segment_id, limit),
    ) as cur:
        for r in await cur.fetchall():
            out.append(HistoryEntry("import", r[1], r[0], r[2], r[3], r[3], None, None, None))
    async with conn.execute(
        "SELECT c.run_id, g.finished_us, c.before_grade, c.after_grade, c.base_grade, c.score,"
        " c.incident_count, c.explanation FROM grade_changes c JOIN grade_runs g USING (run_id)"
        " WHERE c.segment_id = ? ORDER BY c.run_id DESC LIMIT ?",
        (segment_id, limit),
    ) as cur:
        for r in await cur.fetchall():
            out.append(
                HistoryEntry("recompute", r[1] or 0, r[0], r[2], r[3], r[4], r[5], r[6], r[7])
            )
    out.sort(key=lambda e: e.at_us, reverse=True)
    return out[:limit]


async def publish_version(conn: Conn) -> tuple[int, ...]:
    """Changes whenever what `GET /segments` publishes may change: a finished recompute,
    or households enrolled, unenrolled or tied to segments (k-anonymity)."""
    async with conn.execute(
        "SELECT (SELECT COALESCE(MAX(run_id), 0) FROM grade_runs WHERE state = 'done'),"
        " (SELECT COUNT(*) FROM households WHERE unenrolled_us IS NULL),"
        " (SELECT COALESCE(MAX(created_us), 0) FROM households),"
        " (SELECT COALESCE(MAX(unenrolled_us), 0) FROM households),"
        " (SELECT COUNT(*) FROM households WHERE segment_id IS NOT NULL)"
    ) as cur:
        row = await cur.fetchone()
    return tuple(int(v) for v in (row or ()))
