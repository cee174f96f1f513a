"""Street-segment geometry: a local metric projection for Seoul and a spatial index.

Pure: no I/O, no clock. Coordinates enter and leave as WGS84 degrees (GeoJSON order is
(lon, lat); function arguments name `lat` and `lon` explicitly); inside, everything is
in metres on a local plane so that distances, buffers and kernels are simple.

Projection
----------
`LocalProjection` is an equirectangular projection around a centre (φ0, λ0) that uses the
WGS84 ellipsoid's radii of curvature *at the centre*:

    x = N(φ0) · cos φ0 · (λ − λ0)        y = M(φ0) · (φ − φ0)

with M the meridional and N the prime-vertical radius. North–south distances are then
exact to ~1e-5; east–west distances are scaled by cos φ0 / cos φ, so the relative error
grows with the north–south offset from the centre as about tan φ0 · Δφ. Over
Yeongdeungpo-gu (±3.6 km north–south of `DISTRICT_PROJECTION`'s centre) that is at most
0.05 % of any distance: under 2.5 cm at the 50 m enrolment limit, under 0.5 m across a
kilometre. Away from Seoul, build a projection around the area of interest.

Index
-----
`SegmentIndex` holds the segments as metric LineStrings in a shapely STRtree and answers:
the nearest segment to a point (refusing points farther than `MAX_SNAP_DISTANCE_M`), the
segments in a lon/lat bounding box, and all (point, segment) pairs within a radius — the
last is what grading uses, vectorised over thousands of points at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree

from core.errors import AnsimError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

MAX_SNAP_DISTANCE_M = 50.0
"""A household farther than this from every segment is refused at enrolment."""

MIN_GRADE = 1
MAX_GRADE = 5

_WGS84_A = 6_378_137.0
_WGS84_F = 1 / 298.257223563
_WGS84_E2 = _WGS84_F * (2 - _WGS84_F)


class TooFarFromSegmentError(AnsimError):
    """A location is farther than the allowed distance from every street segment.

    `distance_m` is the distance to the nearest segment, or None when there is no
    segment at all (an empty index).
    """

    def __init__(self, lat: float, lon: float, distance_m: float | None, max_distance_m: float):
        where = (
            "no street segments are loaded"
            if distance_m is None
            else f"the nearest street segment is {distance_m:.0f} m away"
        )
        super().__init__(
            f"location ({lat:.6f}, {lon:.6f}) is not on a known street: {where} "
            f"(limit {max_distance_m:.0f} m)"
        )
        self.lat = lat
        self.lon = lon
        self.distance_m = distance_m
        self.max_distance_m = max_distance_m


@dataclass(frozen=True, slots=True)
class Segment:
    """A street segment as imported: `coords` are (lon, lat) pairs in GeoJSON order."""

    segment_id: str
    base_grade: int
    coords: tuple[tuple[float, float], ...]
    dong: str | None = None

    def __post_init__(self) -> None:
        if not self.segment_id:
            raise ValueError("segment_id must not be empty")
        if isinstance(self.base_grade, bool) or not isinstance(self.base_grade, int):
            raise ValueError(f"base_grade must be an integer, got {self.base_grade!r}")
        if not MIN_GRADE <= self.base_grade <= MAX_GRADE:
            raise ValueError(f"base_grade must be 1..5, got {self.base_grade}")
        if len(self.coords) < 2:
            raise ValueError(f"segment {self.segment_id} needs at least two points")


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Equirectangular projection to metres around (`lat0`, `lon0`); see the module doc."""

    lat0: float
    lon0: float
    metres_per_degree_lat: float = field(init=False, repr=False)
    metres_per_degree_lon: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        s2 = math.sin(math.radians(self.lat0)) ** 2
        w = math.sqrt(1 - _WGS84_E2 * s2)
        meridional = _WGS84_A * (1 - _WGS84_E2) / (w * w * w)
        prime_vertical = _WGS84_A / w
        per_rad = math.pi / 180
        object.__setattr__(self, "metres_per_degree_lat", meridional * per_rad)
        object.__setattr__(
            self,
            "metres_per_degree_lon",
            prime_vertical * math.cos(math.radians(self.lat0)) * per_rad,
        )

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (
            (lon - self.lon0) * self.metres_per_degree_lon,
            (lat - self.lat0) * self.metres_per_degree_lat,
        )

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        return (
            self.lat0 + y / self.metres_per_degree_lat,
            self.lon0 + x / self.metres_per_degree_lon,
        )

    def to_xy_arrays(
        self, lats: npt.ArrayLike, lons: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        la = np.asarray(lats, dtype=np.float64)
        lo = np.asarray(lons, dtype=np.float64)
        return (lo - self.lon0) * self.metres_per_degree_lon, (
            la - self.lat0
        ) * self.metres_per_degree_lat

    def to_latlon_arrays(
        self, xs: npt.ArrayLike, ys: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        x = np.asarray(xs, dtype=np.float64)
        y = np.asarray(ys, dtype=np.float64)
        return (
            self.lat0 + y / self.metres_per_degree_lat,
            self.lon0 + x / self.metres_per_degree_lon,
        )


DISTRICT_PROJECTION = LocalProjection(lat0=37.515, lon0=126.917)
"""Centred on Yeongdeungpo-gu (bounding box lon 126.8816–126.9525, lat 37.4822–37.5474)."""


@dataclass(frozen=True, slots=True)
class SegmentMatch:
    """The segment a point snaps to: its id, position in the index and distance."""

    segment_id: str
    index: int
    distance_m: float


class SegmentIndex:
    """Segments as metric LineStrings in an STRtree. Build once, query many times.

    Positions (`index`) follow the order of the segments given to the constructor.
    """

    def __init__(
        self, segments: Sequence[Segment], projection: LocalProjection = DISTRICT_PROJECTION
    ) -> None:
        self.projection = projection
        self.segment_ids: tuple[str, ...] = tuple(s.segment_id for s in segments)
        if len(set(self.segment_ids)) != len(self.segment_ids):
            raise ValueError("segment ids must be unique")
        self._position = {sid: i for i, sid in enumerate(self.segment_ids)}
        self.base_grades: npt.NDArray[np.int8] = np.fromiter(
            (s.base_grade for s in segments), dtype=np.int8, count=len(segments)
        )
        counts = np.fromiter((len(s.coords) for s in segments), dtype=np.intp, count=len(segments))
        flat = np.array(
            [pt for s in segments for pt in s.coords], dtype=np.float64, ndmin=2
        ).reshape(-1, 2)
        xs, ys = projection.to_xy_arrays(flat[:, 1], flat[:, 0])
        if len(segments):
            owners = np.repeat(np.arange(len(segments)), counts)
            lines = shapely.linestrings(xs, ys, indices=owners)
        else:
            lines = np.empty(0, dtype=object)
        self.lines: npt.NDArray[np.object_] = cast(npt.NDArray[np.object_], lines)
        mids = shapely.line_interpolate_point(self.lines, 0.5, normalized=True)
        self.midpoints_xy: FloatArray = cast(FloatArray, shapely.get_coordinates(mids))
        # First and last vertex: for straight (two-point) segments, distances are plain
        # numpy; bent ones fall back to shapely.
        first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        xy = np.column_stack([xs, ys])
        self.starts_xy: FloatArray = xy[first] if len(segments) else np.empty((0, 2))
        self.ends_xy: FloatArray = xy[first + counts - 1] if len(segments) else np.empty((0, 2))
        self.straight: npt.NDArray[np.bool_] = counts == 2
        self.tree = STRtree(self.lines)

    def __len__(self) -> int:
        return len(self.segment_ids)

    def position(self, segment_id: str) -> int:
        """Position of a segment in the index; KeyError for an unknown id."""
        return self._position[segment_id]

    def nearest(
        self, lat: float, lon: float, max_distance_m: float = MAX_SNAP_DISTANCE_M
    ) -> SegmentMatch | None:
        """The nearest segment within `max_distance_m`, or None. Ties go to the lower index."""
        idx, dist = self.nearest_many([lat], [lon], max_distance_m)
        if idx[0] < 0:
            return None
        i = int(idx[0])
        return SegmentMatch(self.segment_ids[i], i, float(dist[0]))

    def snap(
        self, lat: float, lon: float, max_distance_m: float = MAX_SNAP_DISTANCE_M
    ) -> SegmentMatch:
        """Like `nearest`, but raise `TooFarFromSegmentError` instead of returning None."""
        match = self.nearest(lat, lon, max_distance_m)
        if match is None:
            idx, dist = self.nearest_many([lat], [lon], None)
            raise TooFarFromSegmentError(
                lat, lon, None if idx[0] < 0 else float(dist[0]), max_distance_m
            )
        return match

    def nearest_many(
        self,
        lats: npt.ArrayLike,
        lons: npt.ArrayLike,
        max_distance_m: float | None = MAX_SNAP_DISTANCE_M,
    ) -> tuple[IntArray, FloatArray]:
        """Vectorised `nearest`: positions (−1 where none) and distances (NaN where none)."""
        xs, ys = self.projection.to_xy_arrays(lats, lons)
        xs, ys = np.atleast_1d(xs), np.atleast_1d(ys)
        out_idx = np.full(len(xs), -1, dtype=np.intp)
        out_dist = np.full(len(xs), np.nan, dtype=np.float64)
        if len(self) == 0 or len(xs) == 0:
            return out_idx, out_dist
        points = shapely.points(xs, ys)
        pairs, dist = cast(
            tuple[IntArray, FloatArray],
            self.tree.query_nearest(
                points, max_distance=max_distance_m, return_distance=True, all_matches=True
            ),
        )
        # With all_matches, ties appear as several pairs for one point: keep the lowest
        # segment position so that the answer does not depend on tree internals.
        order = np.lexsort((pairs[1], pairs[0]))
        src, seg, dist = pairs[0][order], pairs[1][order], dist[order]
        first = np.ones(len(src), dtype=bool)
        first[1:] = src[1:] != src[:-1]
        out_idx[src[first]] = seg[first]
        out_dist[src[first]] = dist[first]
        return out_idx, out_dist

    def query_bbox(
        self, min_lon: float, min_lat: float, max_lon: float, max_lat: float
    ) -> IntArray:
        """Positions (ascending) of the segments that intersect a lon/lat bounding box.

        The projection maps a lon/lat box to an exact rectangle, so the answer is exact.
        """
        if min_lon > max_lon or min_lat > max_lat:
            raise ValueError("bbox must be min_lon, min_lat, max_lon, max_lat with min <= max")
        x0, y0 = self.projection.to_xy(min_lat, min_lon)
        x1, y1 = self.projection.to_xy(max_lat, max_lon)
        hits = cast(IntArray, self.tree.query(shapely.box(x0, y0, x1, y1), predicate="intersects"))
        return np.sort(hits)

    def ids_in_bbox(
        self, min_lon: float, min_lat: float, max_lon: float, max_lat: float
    ) -> list[str]:
        """Segment ids in a lon/lat bounding box, in index order."""
        ids = self.segment_ids
        return [ids[i] for i in self.query_bbox(min_lon, min_lat, max_lon, max_lat)]

    def pairs_within(
        self, xs: npt.ArrayLike, ys: npt.ArrayLike, radius_m: float
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """All (point, segment) pairs with distance <= `radius_m`, points given in metres.

        Returns point positions, segment positions and distances, ordered by point then
        segment. Candidates come from a bounding-box query; exact distances follow.
        """
        x = np.atleast_1d(np.asarray(xs, dtype=np.float64))
        y = np.atleast_1d(np.asarray(ys, dtype=np.float64))
        if len(self) == 0 or len(x) == 0:
            empty = np.empty(0, dtype=np.intp)
            return empty, empty.copy(), np.empty(0, dtype=np.float64)
        r = float(radius_m)
        boxes = shapely.box(x - r, y - r, x + r, y + r)
        pairs = cast(IntArray, self.tree.query(boxes))
        order = np.lexsort((pairs[1], pairs[0]))
        src, seg = pairs[0][order], pairs[1][order]
        dist = self.distances(np.column_stack([x[src], y[src]]), seg)
        near = dist <= r
        return src[near], seg[near], dist[near]

    def distances(self, points_xy: FloatArray, seg: IntArray) -> FloatArray:
        """Distance in metres from each point (x, y) to the segment at the same row of `seg`."""
        a, b = self.starts_xy[seg], self.ends_xy[seg]
        ab = b - a
        ap = points_xy - a
        length2 = np.einsum("ij,ij->i", ab, ab)
        t = np.divide(
            np.einsum("ij,ij->i", ap, ab), length2, out=np.zeros(len(seg)), where=length2 > 0
        )
        closest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
        dist = np.hypot(*(points_xy - closest).T)
        bent = ~self.straight[seg]
        if bent.any():
            pts = shapely.points(points_xy[bent])
            dist[bent] = shapely.distance(pts, self.lines[seg[bent]])
        return cast(FloatArray, dist)
