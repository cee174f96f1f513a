"""Demo district: 10 m street segments with plausible base grades inside Yeongdeungpo-gu.

There is no open street network in the repository, so the demo (`ansim up --demo`), the
simulator and the benchmarks use a generated one: a street grid laid inside the real
administrative dong polygons (`core/data/yeongdeungpo_dongs.geojson`, KOSTAT 2013), cut
into ~10 m pieces and given CPTED-style base grades. Everything is seeded: the same seed
gives byte-identical output.

How the street grid is made (all in metres on `DISTRICT_PROJECTION`):

* **Water.** The district's northern boundary runs down the middle of the Han, and
  Yeouido is an island: no streets within `RIVER_HALF_WIDTH_M` of that boundary (river
  plus riverside park) nor within `CHANNEL_HALF_WIDTH_M` of Yeoui-dong's southern edge
  (the Saetgang channel). Both are approximations, good to a block.
* **Arterials (대로)** — one district-wide grid, spacing `ARTERIAL_SPACING_M`, tilted
  `GRID_ANGLE_DEG`, each line shifted by a random offset.
* **Collectors (로)** — per dong, a grid turned a few degrees from the arterials; every
  `COLLECTOR_EVERY`-th line of the dong grid.
* **Alleys (길)** — the other lines of the dong grid, jittered sideways and broken into
  blocks, some of which are missing (dead ends). Their spacing is solved for so that the
  whole district has about `target_segments` segments (~60 m, typical of old Seoul
  residential blocks). Alley or collector pieces that would run along an arterial are
  dropped.

Base grades (1 = safest … 5 = least safe): arterials ~1–2, collectors ~2–3, alleys ~3–5,
worse deeper inside a block (farther from an arterial), plus a smooth district-wide random
field, a per-dong offset and per-segment noise, rounded and clamped to 1..5.

Output is exactly SPEC's import format: a GeoJSON FeatureCollection of LineStrings with
properties `segment_id`, `base_grade` and `dong` (the dong's Korean name).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import shape

from core.geo import DISTRICT_PROJECTION, MAX_GRADE, MIN_GRADE, LocalProjection, Segment

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

DEFAULT_SEED = 20131
DEFAULT_TARGET_SEGMENTS = 60_000
SEGMENT_LENGTH_M = 10.0
MIN_PIECE_M = 5.0  # street stubs shorter than this are dropped
ARTERIAL_SPACING_M = 650.0
GRID_ANGLE_DEG = 8.0
DONG_ANGLE_JITTER_DEG = 12.0
COLLECTOR_EVERY = 3
ALLEY_JITTER = 0.2  # sideways jitter of an alley line, as a share of the alley spacing
ALLEY_BLOCK_M = 110.0
ALLEY_MISSING_SHARE = 0.12
PARALLEL_CLEARANCE_M = 15.0
RIVER_HALF_WIDTH_M = 600.0
CHANNEL_HALF_WIDTH_M = 150.0
ISLAND_DONG_CODES = frozenset({"1119054"})  # 여의동 (Yeouido)

DONGS_RESOURCE = "data/yeongdeungpo_dongs.geojson"


class RoadClass(enum.StrEnum):
    ARTERIAL = "arterial"
    COLLECTOR = "collector"
    ALLEY = "alley"


_CLASS_BASE_SCORE = {RoadClass.ARTERIAL: 1.35, RoadClass.COLLECTOR: 2.35, RoadClass.ALLEY: 3.35}
_CLASS_CODE = {RoadClass.ARTERIAL: 0, RoadClass.COLLECTOR: 1, RoadClass.ALLEY: 2}
_CLASSES = (RoadClass.ARTERIAL, RoadClass.COLLECTOR, RoadClass.ALLEY)


@dataclass(frozen=True, slots=True)
class Dong:
    """An administrative dong: code, names and its WGS84 polygon (a shapely geometry)."""

    code: str
    name: str
    name_eng: str
    polygon: Any


@dataclass(frozen=True, slots=True)
class District:
    """Generated segments; `road_classes[i]` is the road class of `segments[i]`."""

    segments: tuple[Segment, ...]
    road_classes: tuple[RoadClass, ...]

    def feature_collection(self) -> dict[str, Any]:
        return segments_to_feature_collection(self.segments)


def load_dongs(path: str | Path | None = None) -> list[Dong]:
    """The dong polygons: the packaged Yeongdeungpo-gu file, or a GeoJSON at `path`."""
    if path is None:
        text = resources.files("core").joinpath(DONGS_RESOURCE).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text)
    dongs = []
    for feature in data["features"]:
        props = feature["properties"]
        dongs.append(
            Dong(
                code=str(props["code"]),
                name=str(props["name"]),
                name_eng=str(props.get("name_eng", props["name"])),
                polygon=shape(feature["geometry"]),
            )
        )
    return dongs


def segments_to_feature_collection(segments: Sequence[Segment]) -> dict[str, Any]:
    """SPEC's segment import format for any segments."""
    features = []
    for s in segments:
        props: dict[str, Any] = {"segment_id": s.segment_id, "base_grade": s.base_grade}
        if s.dong is not None:
            props["dong"] = s.dong
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [list(p) for p in s.coords]},
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def generate_district_geojson(
    seed: int = DEFAULT_SEED, target_segments: int = DEFAULT_TARGET_SEGMENTS
) -> dict[str, Any]:
    """The demo district of Yeongdeungpo-gu as a GeoJSON FeatureCollection (SPEC format)."""
    return generate_district(seed=seed, target_segments=target_segments).feature_collection()


def generate_district(
    seed: int = DEFAULT_SEED,
    target_segments: int = DEFAULT_TARGET_SEGMENTS,
    dongs: Sequence[Dong] | None = None,
    projection: LocalProjection = DISTRICT_PROJECTION,
) -> District:
    """Generate ~`target_segments` 10 m segments inside `dongs` (default: Yeongdeungpo-gu)."""
    if target_segments < 1:
        raise ValueError("target_segments must be positive")
    dong_list = list(dongs) if dongs is not None else load_dongs()
    if not dong_list:
        raise ValueError("no dongs to generate streets in")
    rng = np.random.default_rng(seed)
    metric = [_project_geometry(d.polygon, projection) for d in dong_list]
    land = _land_polygons(dong_list, metric)
    total_land = float(sum(shapely.area(g) for g in land))
    if total_land <= 0:
        raise ValueError("the dongs have no land area left after the water mask")

    # Smaller districts (tests) get a proportionally coarser arterial grid.
    arterial_spacing = ARTERIAL_SPACING_M * max(
        1.0, math.sqrt(DEFAULT_TARGET_SEGMENTS / target_segments)
    )
    arterials = _arterial_lines(shapely.union_all(land), arterial_spacing, rng)
    arterial_len = float(shapely.length(arterials).sum()) if len(arterials) else 0.0
    # A square grid of spacing s covers 2·A/s metres of street in area A; the missing
    # alley blocks (share of the 2/3 alley lines) and dropped overlaps reduce that.
    wanted = max(target_segments * SEGMENT_LENGTH_M - arterial_len, 0.2 * target_segments)
    alley_share = 1 - 1 / COLLECTOR_EVERY
    fill = 1 - ALLEY_MISSING_SHARE * alley_share
    spacing = 2 * total_land * fill / wanted
    dong_seeds = rng.integers(0, 2**32, size=len(dong_list))
    grade_rng = np.random.default_rng(rng.integers(0, 2**32))

    def lay_out(s: float) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
        grids = [
            _dong_grid(land[i], s, np.random.default_rng(int(dong_seeds[i])))
            for i in range(len(dong_list))
        ]
        return _pieces(arterials, grids, land)

    # Calibrate once on the count: clipping, jitter, blocks and overlaps are not exact,
    # and the dong-grid count goes as 1/spacing.
    p0, p1, cls, owner = lay_out(spacing)
    n_grid = int(np.sum(cls != _CLASS_CODE[RoadClass.ARTERIAL]))
    n_art = len(cls) - n_grid
    if n_grid > 0 and target_segments > n_art:
        spacing *= n_grid / (target_segments - n_art)
        p0, p1, cls, owner = lay_out(spacing)
    mids = (p0 + p1) / 2

    grades = _base_grades(mids, cls, owner, arterials, len(dong_list), grade_rng)

    # Deterministic ids: per dong, in a stable geometric order.
    order = np.lexsort((np.round(mids[:, 0], 2), np.round(mids[:, 1], 2), owner))
    lat0, lon0 = projection.to_latlon_arrays(p0[order, 0], p0[order, 1])
    lat1, lon1 = projection.to_latlon_arrays(p1[order, 0], p1[order, 1])
    lon0, lat0, lon1, lat1 = (np.round(a, 7).tolist() for a in (lon0, lat0, lon1, lat1))
    owner_sorted = owner[order].tolist()
    grades_sorted = grades[order].tolist()
    cls_sorted = cls[order].tolist()
    counters = [0] * len(dong_list)
    segments = []
    for k, d in enumerate(owner_sorted):
        counters[d] += 1
        dong = dong_list[d]
        segments.append(
            Segment(
                segment_id=f"{dong.code}-{counters[d]:05d}",
                base_grade=int(grades_sorted[k]),
                coords=((lon0[k], lat0[k]), (lon1[k], lat1[k])),
                dong=dong.name,
            )
        )
    classes = tuple(_CLASSES[c] for c in cls_sorted)
    return District(segments=tuple(segments), road_classes=classes)


def _pieces(
    arterials: npt.NDArray[np.object_],
    grids: Sequence[tuple[FloatArray, FloatArray, IntArray]],
    land: Sequence[Any],
) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
    """All ~10 m pieces: (starts, ends, road class codes, dong positions)."""
    a_start, a_end = _line_ends(arterials)
    pieces = [
        _split(
            a_start,
            a_end,
            np.full(len(a_start), _CLASS_CODE[RoadClass.ARTERIAL], dtype=np.intp),
            np.full(len(a_start), -1, dtype=np.intp),
        )
    ]
    for i, (start, end, classes) in enumerate(grids):
        pieces.append(_split(start, end, classes, np.full(len(start), i, dtype=np.intp)))
    p0 = np.concatenate([p[0] for p in pieces])
    p1 = np.concatenate([p[1] for p in pieces])
    cls = np.concatenate([p[2] for p in pieces])
    owner = np.concatenate([p[3] for p in pieces])
    # Arterial pieces belong to the dong their midpoint falls in.
    mids = (p0 + p1) / 2
    is_art = owner < 0
    if is_art.any():
        owner[is_art] = _which_polygon(land, mids[is_art])
    keep = (owner >= 0) & ~_runs_along(p0, p1, mids, cls, arterials)
    return p0[keep], p1[keep], cls[keep], owner[keep]


def _project_geometry(geom: Any, projection: LocalProjection) -> Any:
    def to_xy(coords: FloatArray) -> FloatArray:
        xs, ys = projection.to_xy_arrays(coords[:, 1], coords[:, 0])
        return np.column_stack([xs, ys])

    return shapely.make_valid(shapely.transform(geom, to_xy))


def _land_polygons(dongs: Sequence[Dong], metric: Sequence[Any]) -> list[Any]:
    """Dong polygons minus the approximate Han river and Yeouido's Saetgang channel."""
    union = shapely.union_all(list(metric))
    polys = [p for p in shapely.get_parts(union) if shapely.area(p) > 0]
    if not polys:
        return list(metric)
    outline = max(polys, key=lambda p: float(shapely.area(p)))
    ring = cast(FloatArray, np.asarray(outline.exterior.coords)[:-1])
    north, east = int(np.argmax(ring[:, 1])), int(np.argmax(ring[:, 0]))
    lo, hi = min(north, east), max(north, east)
    arc_a = ring[lo : hi + 1]
    arc_b = np.concatenate([ring[hi:], ring[: lo + 1]])
    # The northern boundary (north-most to east-most vertex, the way that stays north)
    # runs mid-river.
    river_edge = arc_a if arc_a[:, 1].mean() >= arc_b[:, 1].mean() else arc_b
    water = [shapely.buffer(shapely.linestrings(river_edge), RIVER_HALF_WIDTH_M)]
    for dong, poly in zip(dongs, metric, strict=True):
        if dong.code in ISLAND_DONG_CODES:
            others = shapely.union_all([m for m in metric if m is not poly])
            shore = shapely.intersection(shapely.boundary(poly), shapely.buffer(others, 5.0))
            water.append(shapely.buffer(shore, CHANNEL_HALF_WIDTH_M))
    water_all = shapely.union_all(water)
    return [shapely.difference(p, water_all) for p in metric]


def _grid_lines(
    area: Any, angle_deg: float, spacing: float, offset: float
) -> tuple[FloatArray, FloatArray]:
    """Lines of a square grid (both directions) covering `area`'s bounding circle."""
    minx, miny, maxx, maxy = shapely.bounds(area)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    radius = math.hypot(maxx - minx, maxy - miny) / 2 + spacing
    starts, ends = [], []
    for turn in (0.0, 90.0):
        a = math.radians(angle_deg + turn)
        d = np.array([math.cos(a), math.sin(a)])
        n = np.array([-d[1], d[0]])
        k = np.arange(-math.ceil(radius / spacing), math.ceil(radius / spacing) + 1)
        offs = k * spacing + offset
        centre = np.array([cx, cy]) + offs[:, None] * n
        starts.append(centre - radius * d)
        ends.append(centre + radius * d)
    return np.concatenate(starts), np.concatenate(ends)


def _arterial_lines(land: Any, spacing: float, rng: np.random.Generator) -> npt.NDArray[np.object_]:
    start, end = _grid_lines(land, GRID_ANGLE_DEG, spacing, 0.0)
    # Shift each arterial sideways a little so the grid is not perfectly regular.
    d = end - start
    n = np.column_stack([-d[:, 1], d[:, 0]]) / np.linalg.norm(d, axis=1)[:, None]
    shift = rng.uniform(-0.12, 0.12, size=len(start))[:, None] * spacing * n
    lines = shapely.linestrings(np.stack([start + shift, end + shift], axis=1))
    clipped = shapely.intersection(lines, land)
    parts = shapely.get_parts(clipped)
    parts = parts[(shapely.get_type_id(parts) == 1) & ~shapely.is_empty(parts)]
    return cast(npt.NDArray[np.object_], parts[shapely.length(parts) >= MIN_PIECE_M])


def _dong_grid(
    land: Any, spacing: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Collector and alley runs inside one dong: (starts, ends, road class codes)."""
    angle = GRID_ANGLE_DEG + rng.uniform(-DONG_ANGLE_JITTER_DEG, DONG_ANGLE_JITTER_DEG)
    start, end = _grid_lines(land, angle, spacing, rng.uniform(0, spacing))
    m = len(start)
    half = m // 2
    k = np.concatenate([np.arange(half), np.arange(m - half)])
    phase = rng.integers(0, COLLECTOR_EVERY, size=2)
    phases = np.concatenate([np.full(half, phase[0]), np.full(m - half, phase[1])])
    collector = (k + phases) % COLLECTOR_EVERY == 0
    d = end - start
    length = np.linalg.norm(d, axis=1)
    unit = d / length[:, None]
    normal = np.column_stack([-unit[:, 1], unit[:, 0]])
    jitter = np.where(collector, 0.0, rng.uniform(-ALLEY_JITTER, ALLEY_JITTER, size=m))
    start = start + (jitter * spacing)[:, None] * normal
    end = end + (jitter * spacing)[:, None] * normal
    # Alleys are broken into blocks, some missing; collectors run through.
    run_start, run_end, run_cls = [], [], []
    for j in range(m):
        if collector[j]:
            run_start.append(start[j : j + 1])
            run_end.append(end[j : j + 1])
            run_cls.append(_CLASS_CODE[RoadClass.COLLECTOR])
            continue
        cuts = np.arange(rng.uniform(0, ALLEY_BLOCK_M), length[j], ALLEY_BLOCK_M)
        edges = np.concatenate([[0.0], cuts, [length[j]]])
        present = rng.random(len(edges) - 1) >= ALLEY_MISSING_SHARE
        a, b = edges[:-1][present], edges[1:][present]
        run_start.append(start[j] + a[:, None] * unit[j])
        run_end.append(start[j] + b[:, None] * unit[j])
        run_cls.extend([_CLASS_CODE[RoadClass.ALLEY]] * int(present.sum()))
    s = np.concatenate(run_start)
    e = np.concatenate(run_end)
    classes = np.asarray(run_cls, dtype=np.intp)
    lines = shapely.linestrings(np.stack([s, e], axis=1))
    clipped = shapely.intersection(lines, land)
    parts, src = shapely.get_parts(clipped, return_index=True)
    is_line = (shapely.get_type_id(parts) == 1) & ~shapely.is_empty(parts)
    parts, src = parts[is_line], src[is_line]
    ps, pe = _line_ends(parts)
    return ps, pe, classes[src]


def _line_ends(lines: npt.NDArray[np.object_]) -> tuple[FloatArray, FloatArray]:
    if len(lines) == 0:
        return np.empty((0, 2)), np.empty((0, 2))
    first = shapely.get_coordinates(shapely.get_point(lines, 0))
    last = shapely.get_coordinates(shapely.get_point(lines, -1))
    return cast(FloatArray, first), cast(FloatArray, last)


def _split(
    start: FloatArray, end: FloatArray, cls: IntArray, owner: IntArray
) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
    """Cut straight runs into equal pieces of about `SEGMENT_LENGTH_M`."""
    length = np.linalg.norm(end - start, axis=1)
    ok = length >= MIN_PIECE_M
    start, end, cls, owner, length = start[ok], end[ok], cls[ok], owner[ok], length[ok]
    n = np.maximum(1, np.rint(length / SEGMENT_LENGTH_M)).astype(np.intp)
    run = np.repeat(np.arange(len(n)), n)
    first = np.concatenate([[0], np.cumsum(n)[:-1]]) if len(n) else np.empty(0, np.intp)
    k = np.arange(int(n.sum())) - first[run]
    t0 = (k / n[run])[:, None]
    t1 = ((k + 1) / n[run])[:, None]
    d = end[run] - start[run]
    return start[run] + t0 * d, start[run] + t1 * d, cls[run], owner[run]


def _which_polygon(polys: Sequence[Any], points: FloatArray) -> IntArray:
    """Index of the polygon containing each point (−1 for none); first match wins."""
    out = np.full(len(points), -1, dtype=np.intp)
    for i, poly in enumerate(polys):
        todo = out < 0
        inside = shapely.contains_xy(poly, points[todo, 0], points[todo, 1])
        idx = np.flatnonzero(todo)[inside]
        out[idx] = i
    # Points on a shared boundary belong to no interior: give them the nearest polygon.
    rest = np.flatnonzero(out < 0)
    if len(rest):
        pts = shapely.points(points[rest])
        dist = np.stack([shapely.distance(pts, p) for p in polys])
        near = np.argmin(dist, axis=0)
        ok = dist[near, np.arange(len(rest))] < 1.0
        out[rest[ok]] = near[ok]
    return out


def _runs_along(
    p0: FloatArray,
    p1: FloatArray,
    mids: FloatArray,
    cls: IntArray,
    arterials: npt.NDArray[np.object_],
) -> npt.NDArray[np.bool_]:
    """Lower-class pieces that lie on an arterial and run parallel to it."""
    drop = np.zeros(len(p0), dtype=bool)
    lower = np.flatnonzero(cls != _CLASS_CODE[RoadClass.ARTERIAL])
    if len(arterials) == 0 or len(lower) == 0:
        return drop
    tree = shapely.STRtree(arterials)
    pairs = tree.query(
        shapely.points(mids[lower]), predicate="dwithin", distance=PARALLEL_CLEARANCE_M
    )
    if pairs.shape[1] == 0:
        return drop
    piece = lower[pairs[0]]
    a_start, a_end = _line_ends(arterials)
    ad = a_end[pairs[1]] - a_start[pairs[1]]
    pd = p1[piece] - p0[piece]
    cos = np.abs(np.sum(ad * pd, axis=1)) / (
        np.linalg.norm(ad, axis=1) * np.linalg.norm(pd, axis=1)
    )
    parallel = cos > math.cos(math.radians(25))
    drop[piece[parallel]] = True
    return drop


def _base_grades(
    mids: FloatArray,
    cls: IntArray,
    owner: IntArray,
    arterials: npt.NDArray[np.object_],
    n_dongs: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """CPTED-like base grades: road class, depth inside the block, smooth local variation."""
    base = np.array([_CLASS_BASE_SCORE[c] for c in _CLASSES])[cls]
    if len(arterials):
        tree = shapely.STRtree(arterials)
        _, dist = tree.query_nearest(shapely.points(mids), return_distance=True, all_matches=False)
        depth = np.minimum(np.asarray(dist, dtype=np.float64) / 300.0, 1.5)
    else:
        depth = np.ones(len(mids))
    # A smooth field: a few plane waves of 0.8–2.5 km wavelength.
    field = np.zeros(len(mids))
    for _ in range(6):
        wavelength = rng.uniform(800, 2500)
        theta = rng.uniform(0, 2 * math.pi)
        k = 2 * math.pi / wavelength
        phase = rng.uniform(0, 2 * math.pi)
        field += np.cos(k * (mids[:, 0] * math.cos(theta) + mids[:, 1] * math.sin(theta)) + phase)
    field *= 0.45 / math.sqrt(6 / 2)  # standard deviation ~0.45 grade
    dong_offset = rng.uniform(-0.35, 0.35, size=n_dongs)[owner]
    alley = cls == _CLASS_CODE[RoadClass.ALLEY]
    score = base + np.where(alley, 0.55, 0.2) * depth + field + dong_offset
    score += rng.normal(0, 0.3, size=len(mids))
    return cast(
        npt.NDArray[np.int64], np.clip(np.rint(score), MIN_GRADE, MAX_GRADE).astype(np.int64)
    )
