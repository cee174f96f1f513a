"""Street segments and their grades (SPEC "Segment grades", "Privacy"), and the scheduler's
jobs. Operators only. Nothing here ever shows a household, an address or a location other
than the street segments' own geometry; a segment's incident detail is suppressed while
fewer than k enrolled households stand behind it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from api.deps import DbDep, Operator
from api.params import id_path
from api.segment_index import SegmentCacheDep, SegmentSnapshot
from api.timefmt import fmt_us, now_us
from core import segment_doc
from core.geo import Segment
from core.grading import detail_visible
from core.segment_doc import MAX_REPORTED_PROBLEMS, ImportDocumentError, ParsedImport
from core.storage import audit, leases, segment_import
from core.storage import grade_runs as grade_run_store
from core.storage import incidents as incident_store
from core.storage import jobs as job_store
from core.storage.grade_runs import GradeRow, RecomputeBusyError
from core.storage.port import Store

router = APIRouter(prefix="/api/v1", tags=["segments"])
log = logging.getLogger("ansim.api")

MAX_IMPORT_BYTES = 256 * 1024 * 1024
GEOJSON = "application/geo+json"
_UNPROCESSABLE = status.HTTP_422_UNPROCESSABLE_CONTENT

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "GeoJSON FeatureCollection of LineStrings with properties"
                    " segment_id, base_grade (1..5) and optionally dong",
                    "required": ["type", "features"],
                    "properties": {
                        "type": {"const": "FeatureCollection"},
                        "features": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}


def _k(request: Request) -> int:
    k: int = request.app.state.settings.grade_k
    return k


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    if len(parts) != 4:
        raise HTTPException(
            _UNPROCESSABLE,
            "bbox must be four comma-separated numbers: minlon,minlat,maxlon,maxlat",
        )
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise HTTPException(
            _UNPROCESSABLE,
            f"bbox has a value that is not a number: {text!r}",
        ) from None
    if not all(math.isfinite(v) for v in vals):
        raise HTTPException(_UNPROCESSABLE, "bbox values must be finite")
    min_lon, min_lat, max_lon, max_lat = vals
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise HTTPException(_UNPROCESSABLE, "bbox longitudes must be -180..180")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise HTTPException(_UNPROCESSABLE, "bbox latitudes must be -90..90")
    if min_lon > max_lon or min_lat > max_lat:
        raise HTTPException(
            _UNPROCESSABLE,
            "bbox must be minlon,minlat,maxlon,maxlat with min <= max",
        )
    return min_lon, min_lat, max_lon, max_lat


def _public(seg: Segment, row: GradeRow | None, households_behind: int, k: int) -> dict[str, Any]:
    """What may be published about a segment (k-anonymity on the incident detail)."""
    base = seg.base_grade
    if row is None:
        grade, before, score, count, contribs = base, base, 0.0, 0, []
        explanation = f"{base} -> {base} (base {base}): no confirmed incidents nearby"
    else:
        # a base grade re-imported after the last recompute keeps the step it had
        grade = min(5, base + max(0, row.grade - row.base_grade))
        before = row.base_grade if row.previous_grade is None else row.previous_grade
        score, count, contribs = row.score, row.incident_count, row.contributions
        explanation = row.explanation
    props: dict[str, Any] = {
        "segment_id": seg.segment_id,
        "dong": seg.dong,
        "base_grade": base,
        "grade": grade,
        "graded_run_id": None if row is None else row.run_id,
    }
    if detail_visible(households_behind, k):
        props.update(
            detail_suppressed=False,
            score=round(score, 4),
            incident_count=count,
            contributions=[{"incident_id": i, "weight": w} for i, w in contribs],
            explanation=explanation,
        )
    else:
        props.update(
            detail_suppressed=True,
            score=None,
            incident_count=None,
            contributions=None,
            explanation=(
                f"{before} -> {grade} (base {base}); incident detail suppressed: fewer than"
                f" {k} enrolled households behind this segment"
            ),
        )
    return props


async def _published(
    db: Store, snapshot: SegmentSnapshot, positions: list[int] | None, k: int
) -> list[tuple[Segment, dict[str, Any]]]:
    segs = snapshot.segments
    chosen = list(segs) if positions is None else [segs[i] for i in positions]
    ids = None if positions is None else [s.segment_id for s in chosen]
    rows = await grade_run_store.get_grade_rows(db.reader, ids)
    behind = await incident_store.households_per_segment(db.reader, ids)
    return [(s, _public(s, rows.get(s.segment_id), behind.get(s.segment_id, 0), k)) for s in chosen]


class _FeatureCache:
    """Each segment's published feature, serialised once and reused until the segments,
    the grades (a new recompute) or the enrolled households (k-anonymity) change. A 1 km²
    bbox then costs an index query and a string join instead of ~3,000 rows read,
    dicts built and JSON encoded."""

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.by_pos: dict[int, str] = {}

    async def get(
        self, db: Store, snapshot: SegmentSnapshot, positions: list[int], k: int
    ) -> list[str]:
        key = (snapshot.version, id(snapshot), k, *await grade_run_store.publish_version(db.reader))
        if key != self.key:
            self.key, self.by_pos = key, {}
        missing = [p for p in positions if p not in self.by_pos]
        for start in range(0, len(missing), 5000):
            chunk = missing[start : start + 5000]
            items = await _published(db, snapshot, chunk, k)
            for pos, (seg, props) in zip(chunk, items, strict=True):
                geometry = {"type": "LineString", "coordinates": [list(p) for p in seg.coords]}
                self.by_pos[pos] = json.dumps(
                    {"type": "Feature", "geometry": geometry, "properties": props},
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
        return [self.by_pos[p] for p in positions]


_FEATURES = _FeatureCache()


def _feature_collection(items: list[tuple[Segment, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [list(p) for p in s.coords]},
                "properties": props,
            }
            for s, props in items
        ],
    }


def _json(content: Any, media_type: str = "application/json", code: int = 200) -> Response:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=code, media_type=media_type)


# ---------------------------------------------------------------------------- import


@router.post(
    "/segments/import",
    openapi_extra=_IMPORT_BODY,
    responses={
        200: {"description": "imported: counts, and the refused features when skip_invalid"},
        400: {"description": "the body is not JSON"},
        413: {"description": "body too large"},
        422: {"description": "not a FeatureCollection, or invalid features (each with its reason)"},
    },
)
async def import_segments(
    request: Request,
    db: DbDep,
    operator: Operator,
    cache: SegmentCacheDep,
    skip_invalid: Annotated[
        bool, Query(description="import the valid features and report the others")
    ] = False,
) -> Response:
    """Import the CPTED base grades as SPEC's GeoJSON FeatureCollection of LineStrings.

    Every invalid feature is reported with its index, id and reason (not a LineString,
    base_grade outside 1..5, duplicate or missing segment_id, bad coordinates); by default
    nothing is stored then (422). A re-import replaces the base grades of the segments it
    contains (old ones kept in the history); segments not in it stay."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_IMPORT_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "import body is larger than 256 MB")
    raw = await request.body()
    if len(raw) > MAX_IMPORT_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "import body is larger than 256 MB")

    def parse() -> ParsedImport:
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not JSON: {exc}") from None
        try:
            return segment_doc.parse_segment_import(doc)
        except ImportDocumentError as exc:
            raise HTTPException(_UNPROCESSABLE, str(exc)) from None

    parsed = await asyncio.to_thread(parse)
    problems = [p.to_dict() for p in parsed.problems[:MAX_REPORTED_PROBLEMS]]
    if parsed.problems and not skip_invalid:
        return _json(
            {
                "detail": f"{len(parsed.problems)} of {parsed.features} features are invalid;"
                " nothing was imported",
                "rejected": len(parsed.problems),
                "errors": problems,
            },
            code=_UNPROCESSABLE,
        )
    if not parsed.segments:
        return _json(
            {"detail": "no valid features to import", "rejected": len(parsed.problems),
             "errors": problems},
            code=_UNPROCESSABLE,
        )  # fmt: skip
    now = now_us()
    async with db.write() as conn:
        result = await segment_import.import_segments(
            conn,
            parsed.segments,
            actor=operator.actor,
            now_us=now,
            rejected=len(parsed.problems),
            features=parsed.features,
        )
        await audit.record(conn, now, operator.actor, "segments.import", str(result.import_id),
                           result.to_dict())  # fmt: skip
    snapshot = await cache.rebuild(db, result.import_id)
    async with db.write() as conn:
        tied = await segment_import.snap_unassigned_households(conn, snapshot.index)
    log.info("segments imported", extra={**result.to_dict(), "households_tied": tied})
    return _json(
        {**result.to_dict(), "segments_total": len(snapshot.segments), "households_tied": tied,
         "errors": problems}
    )  # fmt: skip


# ---------------------------------------------------------------------- reading grades


@router.get(
    "/segments",
    responses={200: {"content": {GEOJSON: {}}, "description": "GeoJSON FeatureCollection"},
               422: {"description": "invalid bbox"}},
)  # fmt: skip
async def list_segments(
    request: Request,
    db: DbDep,
    operator: Operator,
    cache: SegmentCacheDep,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat (WGS84); all segments when absent",
            max_length=200,
        ),
    ] = None,
) -> Response:
    """Segments as GeoJSON: `base_grade`, adjusted `grade` and the explanation of each;
    incident detail only where at least k enrolled households stand behind the segment."""
    box = _parse_bbox(bbox) if bbox is not None else None
    k = _k(request)
    snapshot = await cache.get(db)
    positions = None if box is None else snapshot.index.query_bbox(*box).tolist()
    if positions is None:
        items = await _published(db, snapshot, positions, k)
        fc = _feature_collection(items)
        fc["k"] = k
        return _json(fc, GEOJSON)
    features = await _FEATURES.get(db, snapshot, positions, k)
    body = '{"type":"FeatureCollection","features":[' + ",".join(features) + f'],"k":{k}}}'
    return Response(body, media_type=GEOJSON)


@router.get("/segments/{segment_id}/history", responses={404: {"description": "no such segment"}})
async def segment_history(
    segment_id: str, request: Request, db: DbDep, operator: Operator
) -> dict[str, Any]:
    """Base-grade imports and recomputes that changed this segment, newest first.
    Explanations are suppressed while fewer than k households stand behind it."""
    if not await segment_import.segment_exists(db.reader, segment_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"segment {segment_id!r} not found")
    k = _k(request)
    behind = (await incident_store.households_per_segment(db.reader, [segment_id])).get(
        segment_id, 0
    )
    visible = detail_visible(behind, k)
    entries = await grade_run_store.segment_history(db.reader, segment_id)
    data = []
    for e in entries:
        item: dict[str, Any] = {
            "kind": e.kind,
            "at": fmt_us(e.at_us),
            "import_id" if e.kind == "import" else "run_id": e.ref_id,
            "before": e.before,
            "after": e.after,
        }
        if e.kind == "recompute":
            item["base_grade"] = e.base_grade
            if visible:
                item.update(score=e.score, incident_count=e.incident_count,
                            explanation=e.explanation)  # fmt: skip
            else:
                item.update(score=None, incident_count=None,
                            explanation=f"{e.before} -> {e.after}; incident detail suppressed:"
                            f" fewer than {k} enrolled households behind this segment")  # fmt: skip
        data.append(item)
    return {"segment_id": segment_id, "detail_suppressed": not visible, "data": data,
            "count": len(data)}  # fmt: skip


@router.post(
    "/grades/recompute",
    responses={409: {"description": "a recompute is running, or no segments are imported"}},
)
async def recompute(
    request: Request, db: DbDep, operator: Operator, cache: SegmentCacheDep
) -> dict[str, Any]:
    """Recompute every segment's adjusted grade now; answers the run's summary. Only one
    recompute runs at a time across the API and the scheduler (409 otherwise)."""
    snapshot = await cache.get(db)
    if not len(snapshot.index):
        raise HTTPException(status.HTTP_409_CONFLICT, "no segments imported yet")
    try:
        result = await grade_run_store.recompute_grades(
            db, snapshot.index, request.app.state.grade_params, datetime.now(UTC), operator.actor
        )
    except RecomputeBusyError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    now = now_us()
    async with db.write() as conn:
        await audit.record(conn, now, operator.actor, "grades.recompute", str(result.run_id),
                           {"raised": result.raised, "lowered": result.lowered})  # fmt: skip
    out = result.to_dict()
    out["as_of"] = fmt_us(result.as_of_us)
    return out


@router.get("/grades/runs")
async def grade_runs(
    db: DbDep, operator: Operator, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> dict[str, Any]:
    """Recompute history, newest first: who, when, parameters' summary and counts."""
    runs = await grade_run_store.list_grade_runs(db.reader, limit)
    for r in runs:
        for key in ("started", "finished", "as_of"):
            r[f"{key}_at"] = fmt_us(r.pop(f"{key}_us"))
    return {"data": runs, "count": len(runs)}


@router.get(
    "/grades/export",
    responses={200: {"content": {GEOJSON: {}, "text/csv": {}}}},
)
async def export_grades(
    request: Request,
    db: DbDep,
    operator: Operator,
    cache: SegmentCacheDep,
    format: Annotated[Literal["geojson", "csv"], Query()] = "geojson",
) -> Response:
    """Every segment's grades for planners, as GeoJSON or CSV (one row per segment, with
    the segment's midpoint); the same k-anonymity rule as GET /segments."""
    k = _k(request)
    snapshot = await cache.get(db)
    items = await _published(db, snapshot, None, k)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if format == "geojson":
        fc = _feature_collection(items)
        fc["k"] = k
        resp = _json(fc, GEOJSON)
        resp.headers["Content-Disposition"] = f'attachment; filename="grades-{stamp}.geojson"'
        return resp
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["segment_id", "dong", "base_grade", "grade", "detail_suppressed", "score",
                "incident_count", "mid_lon", "mid_lat", "graded_run_id"])  # fmt: skip
    for s, p in items:
        n = len(s.coords)
        a, b = s.coords[(n - 1) // 2], s.coords[n // 2]
        w.writerow([
            s.segment_id, s.dong or "", p["base_grade"], p["grade"],
            int(p["detail_suppressed"]), "" if p["score"] is None else p["score"],
            "" if p["incident_count"] is None else p["incident_count"],
            round((a[0] + b[0]) / 2, 6), round((a[1] + b[1]) / 2, 6),
            "" if p["graded_run_id"] is None else p["graded_run_id"],
        ])  # fmt: skip
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="grades-{stamp}.csv"'},
    )


# ------------------------------------------------------------------------- scheduler


def _job_run(run: job_store.JobRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    d = run.to_dict()
    d["started_at"] = fmt_us(d.pop("started_us"))
    d["finished_at"] = fmt_us(d.pop("finished_us"))
    return d


@router.get("/scheduler/jobs")
async def list_jobs(db: DbDep, operator: Operator) -> dict[str, Any]:
    """The deployment's periodic jobs: schedule, next run, last run and its result."""
    rows = await job_store.list_jobs(db.reader)
    data = [
        {
            "job_id": j.job_id,
            "description": j.description,
            "schedule": j.schedule,
            "next_run_at": fmt_us(j.next_run_us),
            "last_run": _job_run(j.last_run),
            "last_success_at": fmt_us(j.last_success_us),
            "pending_requests": j.pending_requests,
            "scheduler_updated_at": fmt_us(j.updated_us) if j.updated_us else None,
        }
        for j in rows
    ]
    # several schedulers: the one holding the lease runs the jobs (None: none leads now)
    leader = await leases.lock_holder(db.reader, leases.SCHEDULER_LEASE, now_us())
    return {"data": data, "count": len(data), "leader": leader}


@router.get("/scheduler/jobs/{job_id}/runs", responses={404: {"description": "no such job"}})
async def list_job_runs(
    job_id: str,
    db: DbDep,
    operator: Operator,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    if not await job_store.job_exists(db.reader, job_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id!r} not found")
    runs = [_job_run(r) for r in await job_store.list_runs(db.reader, job_id, limit)]
    return {"job_id": job_id, "data": runs, "count": len(runs)}


@router.post(
    "/scheduler/jobs/{job_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "no such job"}},
)
async def run_job(job_id: str, db: DbDep, operator: Operator) -> dict[str, Any]:
    """Ask the scheduler to run a job now; it picks the request up within seconds and the
    run appears in the job's runs (a recompute already running makes it `skipped`)."""
    if not await job_store.job_exists(db.reader, job_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id!r} not found")
    now = now_us()
    async with db.write() as conn:
        request_id = await job_store.request_run(conn, job_id, operator.actor, now)
        await audit.record(conn, now, operator.actor, "scheduler.run", job_id,
                           {"request_id": request_id})  # fmt: skip
    return {"request_id": request_id, "job_id": job_id, "state": "queued",
            "requested_at": fmt_us(now)}  # fmt: skip


@router.get("/scheduler/requests/{request_id}", responses={404: {"description": "no such request"}})
async def get_job_request(
    request_id: Annotated[int, id_path("request_id")], db: DbDep, operator: Operator
) -> dict[str, Any]:
    req = await job_store.get_request(db.reader, request_id)
    if req is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"request {request_id} not found")
    run = None
    if req["job_run_id"] is not None:
        runs = await job_store.list_runs(db.reader, req["job_id"], 200)
        run = next((r for r in runs if r.job_run_id == req["job_run_id"]), None)
    state = "queued" if req["picked_us"] is None else "running" if run is None or \
        run.outcome == "running" else "done"  # fmt: skip
    return {
        "request_id": req["request_id"],
        "job_id": req["job_id"],
        "state": state,
        "requested_at": fmt_us(req["requested_us"]),
        "requested_by": req["requested_by"],
        "picked_at": fmt_us(req["picked_us"]),
        "run": _job_run(run),
    }
