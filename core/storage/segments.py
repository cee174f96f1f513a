"""Street segments, anonymous incidents and grade runs (SPEC "Segment grades", "Privacy").

* Import: `parse_segment_import` checks a GeoJSON FeatureCollection feature by feature
  (pure); `import_segments` upserts the valid ones and records what changed.
* Incidents: `sync_incidents` copies resolved alerts into the anonymous `incidents` table
  (no household id; located at the household's street segment), so that they keep
  counting after the household is erased.
* Recompute: `recompute_grades` takes the `grade_recompute` lease (a row in `locks`, so
  the API and the scheduler never recompute at once), grades every segment with
  `core.grading.grade_segments` off the event loop, and stores the current grades and,
  per run, only the segments whose grade changed.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import AnsimError
from core.geo import MAX_GRADE, MIN_GRADE, Segment, SegmentIndex
from core.grading import DEFAULT_K, GradeParams, Incident, SegmentGrade, grade_segments
from core.models import INCIDENT_KINDS
from core.storage.port import Conn, Store
from core.timeutil import from_us, to_us

RECOMPUTE_LOCK = "grade_recompute"
RECOMPUTE_LEASE_US = 15 * 60 * 1_000_000
"""A crashed recompute's lease expires after this; a live one finishes in seconds."""
STORED_CONTRIBUTIONS = 20
"""Heaviest incidents kept per segment (the count and weighted sum cover all of them)."""
MAX_REPORTED_PROBLEMS = 1000


class GradeSettings(BaseSettings):
    """Grading settings (`ANSIM_GRADE_…`); defaults are `GradeParams`' and docs/grading.md's."""

    model_config = SettingsConfigDict(env_prefix="ANSIM_GRADE_", extra="ignore")

    k: int = DEFAULT_K
    bandwidth_m: float = 150.0
    half_life_days: float = 180.0
    max_age_days: float = 730.0
    prior_households: float = 1.0
    thresholds: tuple[float, ...] = (0.3, 0.7, 1.2, 2.0)
    hysteresis: float = 0.2
    recompute_hour: int = 2
    recompute_minute: int = 0

    def params(self) -> GradeParams:
        return GradeParams(
            bandwidth_m=self.bandwidth_m,
            half_life_days=self.half_life_days,
            max_age_days=self.max_age_days,
            prior_households=self.prior_households,
            thresholds=tuple(self.thresholds),
            hysteresis=self.hysteresis,
        )


class RecomputeBusyError(AnsimError):
    """Another recompute holds the lease."""

    def __init__(self, holder: str, since_us: int) -> None:
        super().__init__(f"a recompute is already running (started by {holder})")
        self.holder = holder
        self.since_us = since_us


# --------------------------------------------------------------------------- import


@dataclass(frozen=True, slots=True)
class FeatureProblem:
    index: int
    segment_id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "segment_id": self.segment_id, "reason": self.reason}


@dataclass(slots=True)
class ParsedImport:
    features: int
    segments: list[Segment] = field(default_factory=list)
    problems: list[FeatureProblem] = field(default_factory=list)


class ImportDocumentError(AnsimError):
    """The body is not a GeoJSON FeatureCollection at all."""


def _coords(raw: Any) -> tuple[tuple[float, float], ...] | str:
    """LineString coordinates as (lon, lat) pairs, or the reason they are not valid."""
    if not isinstance(raw, list) or len(raw) < 2:
        return "a LineString needs at least two positions"
    out: list[tuple[float, float]] = []
    for pos in raw:
        if not isinstance(pos, list | tuple) or len(pos) < 2:
            return "every position must be [lon, lat]"
        lon, lat = pos[0], pos[1]
        if isinstance(lon, bool) or isinstance(lat, bool):
            return "coordinates must be numbers"
        if not isinstance(lon, int | float) or not isinstance(lat, int | float):
            return "coordinates must be numbers"
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return "coordinates must be finite"
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            return f"position [{lon}, {lat}] is outside lon -180..180 / lat -90..90"
        out.append((float(lon), float(lat)))
    if all(p == out[0] for p in out):
        return "a LineString needs two distinct positions"
    return tuple(out)


def parse_segment_import(doc: Any) -> ParsedImport:
    """Check SPEC's GeoJSON feature by feature. Pure.

    A feature is refused (with its reason) when it is not a Feature, its geometry is not
    a LineString with valid coordinates, `segment_id` is missing or empty, `base_grade` is
    not an integer 1..5, `dong` is not a string, or its id repeats an earlier feature's.
    Raises ImportDocumentError when the document is not a FeatureCollection.
    """
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise ImportDocumentError(
            'the body must be a GeoJSON object with "type": "FeatureCollection"'
        )
    features = doc.get("features")
    if not isinstance(features, list):
        raise ImportDocumentError('a FeatureCollection needs a "features" array')
    out = ParsedImport(features=len(features))
    seen: set[str] = set()
    for i, feat in enumerate(features):
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            out.problems.append(
                FeatureProblem(i, None, 'not a GeoJSON Feature ("type": "Feature")')
            )
            continue
        props = feat.get("properties")
        props = props if isinstance(props, dict) else {}
        sid = props.get("segment_id")
        sid_text = sid if isinstance(sid, str) and sid.strip() else None
        if isinstance(sid, int) and not isinstance(sid, bool):
            sid_text = str(sid)
        problem: str | None = None
        geom = feat.get("geometry")
        if sid is None or (isinstance(sid, str) and not sid.strip()):
            problem = "missing segment_id"
        elif sid_text is None:
            problem = "segment_id must be a string"
        elif len(sid_text) > 200:
            problem = "segment_id is longer than 200 characters"
        elif not isinstance(geom, dict) or geom.get("type") != "LineString":
            got = geom.get("type") if isinstance(geom, dict) else None
            problem = f"not a LineString (geometry type {got!r})"
        grade = props.get("base_grade")
        coords: tuple[tuple[float, float], ...] | str = ()
        if problem is None:
            if "base_grade" not in props:
                problem = "missing base_grade"
            elif isinstance(grade, bool) or not isinstance(grade, int | float):
                problem = f"base_grade must be an integer 1..5, got {grade!r}"
            elif grade != int(grade) or not MIN_GRADE <= grade <= MAX_GRADE:
                problem = f"base_grade {grade!r} is outside 1..5"
        if problem is None:
            dong = props.get("dong")
            if dong is not None and not isinstance(dong, str):
                problem = "dong must be a string"
        if problem is None:
            assert isinstance(geom, dict)
            coords = _coords(geom.get("coordinates"))
            if isinstance(coords, str):
                problem = f"invalid LineString: {coords}"
        if problem is None and sid_text in seen:
            problem = f"duplicate segment_id {sid_text!r}"
        if problem is not None:
            out.problems.append(FeatureProblem(i, sid_text, problem))
            continue
        assert sid_text is not None and not isinstance(coords, str)
        seen.add(sid_text)
        dong_v = props.get("dong")
        assert isinstance(grade, int | float)
        out.segments.append(Segment(sid_text, int(grade), coords, dong_v))
    return out


@dataclass(frozen=True, slots=True)
class ImportResult:
    import_id: int
    features: int
    added: int
    changed: int
    unchanged: int
    rejected: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coords_json(seg: Segment) -> str:
    return json.dumps([list(p) for p in seg.coords], separators=(",", ":"))


def _midpoint(seg: Segment) -> tuple[float, float]:
    """(lat, lon) of the middle vertex pair; street segments are 10 m, this is plenty."""
    n = len(seg.coords)
    a, b = seg.coords[(n - 1) // 2], seg.coords[n // 2]
    return round((a[1] + b[1]) / 2, 6), round((a[0] + b[0]) / 2, 6)


async def import_segments(
    conn: Conn,
    segments: Sequence[Segment],
    *,
    actor: str,
    now_us: int,
    rejected: int,
    features: int,
) -> ImportResult:
    """Upsert `segments` (inside the caller's write transaction). A segment whose base
    grade changes gets a row in `segment_base_changes`; segments not in the import stay."""
    existing: dict[str, tuple[int, str | None, str]] = {}
    async with conn.execute("SELECT segment_id, base_grade, dong, coords FROM segments") as cur:
        for r in await cur.fetchall():
            existing[r[0]] = (r[1], r[2], r[3])
    cur2 = await conn.execute(
        "INSERT INTO segment_imports (imported_us, actor, features, added, changed, unchanged,"
        " rejected) VALUES (?,?,?,0,0,0,?) RETURNING import_id",
        (now_us, actor, features, rejected),
    )
    import_id = int((await cur2.fetchone())[0])
    upserts: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    added = changed = unchanged = 0
    for seg in segments:
        coords = _coords_json(seg)
        old = existing.get(seg.segment_id)
        if old is None:
            added += 1
            history.append((import_id, seg.segment_id, None, seg.base_grade))
        elif old == (seg.base_grade, seg.dong, coords):
            unchanged += 1
            continue
        else:
            changed += 1
            if old[0] != seg.base_grade:
                history.append((import_id, seg.segment_id, old[0], seg.base_grade))
        lat, lon = _midpoint(seg)
        upserts.append(
            (seg.segment_id, seg.base_grade, seg.dong, coords, lat, lon, import_id, now_us)
        )
    await conn.executemany(
        "INSERT INTO segments (segment_id, base_grade, dong, coords, mid_lat, mid_lon,"
        " import_id, updated_us) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (segment_id) DO UPDATE"
        " SET base_grade = excluded.base_grade, dong = excluded.dong, coords = excluded.coords,"
        " mid_lat = excluded.mid_lat, mid_lon = excluded.mid_lon,"
        " import_id = excluded.import_id, updated_us = excluded.updated_us",
        upserts,
    )
    await conn.executemany(
        "INSERT INTO segment_base_changes (import_id, segment_id, old_base_grade,"
        " new_base_grade) VALUES (?,?,?,?) ON CONFLICT (segment_id, import_id) DO UPDATE"
        " SET old_base_grade = excluded.old_base_grade, new_base_grade = excluded.new_base_grade",
        history,
    )
    await conn.execute(
        "UPDATE segment_imports SET added = ?, changed = ?, unchanged = ? WHERE import_id = ?",
        (added, changed, unchanged, import_id),
    )
    return ImportResult(import_id, features, added, changed, unchanged, rejected)


async def segments_version(conn: Conn) -> int:
    """The id of the latest import (0 before any): the segment set changes only with it."""
    async with conn.execute("SELECT COALESCE(MAX(import_id), 0) FROM segment_imports") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def load_segments(conn: Conn) -> tuple[int, list[Segment]]:
    """(version, every segment in id order)."""
    version = await segments_version(conn)
    async with conn.execute(
        "SELECT segment_id, base_grade, coords, dong FROM segments ORDER BY segment_id"
    ) as cur:
        rows = await cur.fetchall()
    loads = json.loads
    segs = [
        Segment(r[0], int(r[1]), tuple((float(p[0]), float(p[1])) for p in loads(r[2])), r[3])
        for r in rows
    ]
    return version, segs


async def list_imports(conn: Conn, limit: int = 20) -> list[dict[str, Any]]:
    async with conn.execute(
        "SELECT import_id, imported_us, actor, features, added, changed, unchanged, rejected"
        " FROM segment_imports ORDER BY import_id DESC LIMIT ?",
        (limit,),
    ) as cur:
        rows = await cur.fetchall()
    keys = ("import_id", "imported_us", "actor", "features", "added", "changed", "unchanged",
            "rejected")  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def snap_unassigned_households(conn: Conn, index: SegmentIndex) -> int:
    """Tie enrolled households that have no segment yet (enrolled before any import) to
    their nearest segment within the snap limit. Returns how many were tied."""
    async with conn.execute(
        "SELECT household_id, lat, lon FROM households"
        " WHERE segment_id IS NULL AND unenrolled_us IS NULL"
    ) as cur:
        rows = await cur.fetchall()
    if not rows or len(index) == 0:
        return 0
    idx, _ = index.nearest_many([r[1] for r in rows], [r[2] for r in rows])
    updates = [
        (index.segment_ids[int(i)], r[0]) for r, i in zip(rows, idx.tolist(), strict=True) if i >= 0
    ]
    await conn.executemany("UPDATE households SET segment_id = ? WHERE household_id = ?", updates)
    return len(updates)


# ------------------------------------------------------------------------- incidents


async def sync_incidents(conn: Conn, now_us: int, household_id: str | None = None) -> int:
    """Copy resolved alerts of enrolled households, of the kinds that are about the street
    (`core.models.INCIDENT_KINDS`; the others never feed the grades, whatever their
    resolution), into the anonymous `incidents` table
    (inside the caller's write transaction). The copy keeps no household id; its location
    is the middle of the household's street segment, or — when it has none — the
    household's location rounded to 4 decimals. A changed resolution is updated.
    Returns the rows inserted or updated."""
    d = conn.dialect
    sql = (
        "INSERT INTO incidents (incident_id, source_key, segment_id, lat, lon, occurred_us,"
        " resolution, kind, recorded_us)"
        f" SELECT 'inc-' || {d.random_hex(8)}, a.alert_id,"
        " COALESCE(s.segment_id, a.segment_id, h.segment_id),"
        f" COALESCE(s.mid_lat, {d.round('h.lat', 4)}), COALESCE(s.mid_lon, {d.round('h.lon', 4)}),"
        " a.event_us, a.resolution, a.kind, ?"
        " FROM alerts a JOIN households h ON h.household_id = a.household_id"
        " LEFT JOIN segments s ON s.segment_id = COALESCE(a.segment_id, h.segment_id)"
        " WHERE a.state = 'resolved' AND a.resolution IN ('confirmed', 'false_alarm')"
        f" AND a.kind IN ({','.join('?' * len(INCIDENT_KINDS))})"
        " AND h.unenrolled_us IS NULL"
    )
    params: list[Any] = [now_us, *sorted(INCIDENT_KINDS)]
    if household_id is not None:
        sql += " AND a.household_id = ?"
        params.append(household_id)
    sql += (
        " ON CONFLICT (source_key) DO UPDATE SET resolution = excluded.resolution"
        " WHERE incidents.resolution IS DISTINCT FROM excluded.resolution"
    )
    cur = await conn.execute(sql, params)
    return max(cur.rowcount, 0)


async def load_incidents(conn: Conn, since_us: int = 0) -> list[Incident]:
    async with conn.execute(
        "SELECT incident_id, lat, lon, occurred_us, resolution, kind FROM incidents"
        " WHERE occurred_us >= ?",
        (since_us,),
    ) as cur:
        rows = await cur.fetchall()
    return [
        Incident.from_resolution(r[0], float(r[1]), float(r[2]), from_us(int(r[3])), r[4], r[5])
        for r in rows
    ]


async def households_per_segment(
    conn: Conn, segment_ids: Sequence[str] | None = None
) -> dict[str, int]:
    """Enrolled households behind each segment (all segments, or those given)."""
    sql = (
        "SELECT segment_id, COUNT(*) FROM households"
        " WHERE unenrolled_us IS NULL AND segment_id IS NOT NULL"
    )
    params: tuple[Any, ...] = ()
    if segment_ids is not None:
        sql += f" AND {conn.dialect.in_json_list('segment_id')}"
        params = (json.dumps(list(segment_ids)),)
    sql += " GROUP BY segment_id"
    async with conn.execute(sql, params) as cur:
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


# ------------------------------------------------------------------------ the lease


async def acquire_lock(
    conn: Conn, name: str, holder: str, now_us: int, lease_us: int
) -> tuple[bool, str, int]:
    """Take the named lease if free or expired (inside a write transaction).
    Returns (taken, current holder, since)."""
    await conn.execute(
        "INSERT INTO locks (name, holder, acquired_us, expires_us) VALUES (?,?,?,?)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
        " acquired_us = excluded.acquired_us, expires_us = excluded.expires_us"
        " WHERE locks.expires_us < excluded.acquired_us",
        (name, holder, now_us, now_us + lease_us),
    )
    async with conn.execute("SELECT holder, acquired_us FROM locks WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    return (row[0] == holder and int(row[1]) == now_us), str(row[0]), int(row[1])


async def release_lock(conn: Conn, name: str, holder: str) -> None:
    await conn.execute("DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))


# ------------------------------------------------------------------------ recompute


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


async def segment_exists(conn: Conn, segment_id: str) -> bool:
    async with conn.execute("SELECT 1 FROM segments WHERE segment_id = ?", (segment_id,)) as cur:
        return await cur.fetchone() is not None


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
