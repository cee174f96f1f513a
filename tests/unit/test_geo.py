"""Geometry: projection accuracy, nearest segment with the 50 m limit, bbox, radius pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from core.errors import AnsimError
from core.geo import (
    DISTRICT_PROJECTION,
    MAX_SNAP_DISTANCE_M,
    LocalProjection,
    Segment,
    SegmentIndex,
    TooFarFromSegmentError,
)

P = DISTRICT_PROJECTION
A, F = 6_378_137.0, 1 / 298.257223563
E2 = F * (2 - F)


def _meridian_arc(lat1: float, lat2: float) -> float:
    """Exact WGS84 meridian arc length by numeric integration (Simpson, fine steps)."""
    phi = np.linspace(math.radians(lat1), math.radians(lat2), 2001)
    m = A * (1 - E2) / (1 - E2 * np.sin(phi) ** 2) ** 1.5
    h = (phi[-1] - phi[0]) / 2000
    return float(h / 3 * (m[0] + m[-1] + 4 * m[1:-1:2].sum() + 2 * m[2:-1:2].sum()))


def _parallel_arc(lat: float, dlon: float) -> float:
    """Length along a parallel: N(φ)·cos φ·Δλ (within mm of the geodesic at these lengths)."""
    phi = math.radians(lat)
    n = A / math.sqrt(1 - E2 * math.sin(phi) ** 2)
    return n * math.cos(phi) * math.radians(dlon)


@pytest.mark.parametrize("lat", [37.4822, 37.515, 37.5474])
def test_projection_error_is_below_a_twentieth_of_a_percent(lat: float) -> None:
    # North-south over 1 km and east-west over 1 km, anywhere in the district.
    dlat = 1000 / P.metres_per_degree_lat
    y0 = P.to_xy(lat, 126.9)[1]
    y1 = P.to_xy(lat + dlat, 126.9)[1]
    assert abs((y1 - y0) - _meridian_arc(lat, lat + dlat)) < 0.0005 * 1000
    dlon = 1000 / P.metres_per_degree_lon
    x0 = P.to_xy(lat, 126.9)[0]
    x1 = P.to_xy(lat, 126.9 + dlon)[0]
    true = _parallel_arc(lat, dlon)
    assert abs((x1 - x0) - true) / true < 0.0005


def test_projection_round_trips() -> None:
    proj = LocalProjection(37.5, 127.0)
    lat, lon = proj.to_latlon(*proj.to_xy(37.51, 126.93))
    assert lat == pytest.approx(37.51, abs=1e-12) and lon == pytest.approx(126.93, abs=1e-12)
    xs, ys = proj.to_xy_arrays([37.51, 37.49], [126.93, 127.02])
    lats, lons = proj.to_latlon_arrays(xs, ys)
    assert np.allclose(lats, [37.51, 37.49]) and np.allclose(lons, [126.93, 127.02])


def _seg(sid: str, x0: float, y0: float, x1: float, y1: float, base: int = 3) -> Segment:
    lat0, lon0 = P.to_latlon(x0, y0)
    lat1, lon1 = P.to_latlon(x1, y1)
    return Segment(sid, base, ((lon0, lat0), (lon1, lat1)))


def _latlon(x: float, y: float) -> tuple[float, float]:
    return P.to_latlon(x, y)


ROAD = [_seg(f"r{i}", 10.0 * i, 0.0, 10.0 * (i + 1), 0.0) for i in range(10)]


def test_nearest_finds_the_segment_and_its_distance() -> None:
    index = SegmentIndex(ROAD)
    m = index.nearest(*_latlon(35.0, 30.0))
    assert m is not None
    assert m.segment_id == "r3" and m.index == 3
    assert m.distance_m == pytest.approx(30.0, abs=0.01)


@pytest.mark.parametrize(("y", "found"), [(49.9, True), (50.1, False), (500.0, False)])
def test_the_50_m_limit(y: float, found: bool) -> None:
    index = SegmentIndex(ROAD)
    assert (index.nearest(*_latlon(55.0, y)) is not None) is found
    if not found:
        with pytest.raises(TooFarFromSegmentError) as err:
            index.snap(*_latlon(55.0, y))
        assert isinstance(err.value, AnsimError)
        assert err.value.distance_m == pytest.approx(y, abs=0.01)
        assert err.value.max_distance_m == MAX_SNAP_DISTANCE_M
        assert "not on a known street" in str(err.value)
    else:
        assert index.snap(*_latlon(55.0, y)).segment_id == "r5"


def test_the_limit_is_a_parameter() -> None:
    index = SegmentIndex(ROAD)
    assert index.nearest(*_latlon(55.0, 80.0), max_distance_m=100.0) is not None
    assert index.nearest(*_latlon(55.0, 20.0), max_distance_m=10.0) is None


def test_ties_go_to_the_lower_position() -> None:
    # Exactly on the shared end of r3 and r4.
    m = SegmentIndex(ROAD).nearest(*_latlon(40.0, 10.0))
    assert m is not None and m.segment_id == "r3"


def test_empty_index() -> None:
    index = SegmentIndex([])
    assert len(index) == 0
    assert index.nearest(37.5, 126.9) is None
    with pytest.raises(TooFarFromSegmentError) as err:
        index.snap(37.5, 126.9)
    assert err.value.distance_m is None
    assert index.ids_in_bbox(126.0, 37.0, 127.0, 38.0) == []


def test_nearest_many_matches_nearest() -> None:
    index = SegmentIndex(ROAD)
    pts = [(5.0, 3.0), (95.0, -20.0), (50.0, 70.0)]
    lats, lons = zip(*(_latlon(x, y) for x, y in pts), strict=True)
    idx, dist = index.nearest_many(lats, lons)
    assert idx.tolist() == [0, 9, -1]
    assert dist[:2] == pytest.approx([3.0, 20.0], abs=0.01)
    assert math.isnan(dist[2])


def _random_segments(n: int, seed: int) -> list[Segment]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x, y = rng.uniform(-2000, 2000, 2)
        a = rng.uniform(0, math.pi)
        if i % 7 == 0:  # some bent segments with three points
            pts = [(x, y), (x + 6 * math.cos(a), y + 6 * math.sin(a)), (x + 6, y + 9)]
        else:
            pts = [(x, y), (x + 10 * math.cos(a), y + 10 * math.sin(a))]
        coords = tuple((lon, lat) for lat, lon in (P.to_latlon(px, py) for px, py in pts))
        out.append(Segment(f"q{i}", 1 + i % 5, coords))
    return out


def test_bbox_query_is_exact() -> None:
    segments = _random_segments(3000, 1)
    index = SegmentIndex(segments)
    lat0, lon0 = P.to_latlon(-500.0, -400.0)
    lat1, lon1 = P.to_latlon(500.0, 600.0)
    got = index.ids_in_bbox(lon0, lat0, lon1, lat1)
    box = shapely.box(lon0, lat0, lon1, lat1)
    want = [s.segment_id for s in segments if shapely.intersects(box, shapely.LineString(s.coords))]
    assert got == want and len(want) > 50


def test_bbox_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="bbox"):
        SegmentIndex(ROAD).query_bbox(127.0, 37.0, 126.0, 38.0)


def test_pairs_within_match_brute_force() -> None:
    segments = _random_segments(1500, 2)
    index = SegmentIndex(segments)
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(-2000, 2000, 40), rng.uniform(-2000, 2000, 40)
    src, seg, dist = index.pairs_within(xs, ys, 150.0)
    got = set(zip(src.tolist(), seg.tolist(), strict=True))
    points = shapely.points(xs, ys)
    d_all = shapely.distance(points[:, None], index.lines[None, :])
    want = {(int(i), int(j)) for i, j in zip(*np.nonzero(d_all <= 150.0), strict=True)}
    assert got == want and len(want) > 40
    assert np.allclose(dist, d_all[src, seg])


def test_index_keeps_order_and_grades() -> None:
    index = SegmentIndex(ROAD)
    assert index.segment_ids == tuple(s.segment_id for s in ROAD)
    assert index.position("r7") == 7
    assert index.base_grades.tolist() == [3] * 10
    with pytest.raises(KeyError):
        index.position("nope")


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        SegmentIndex([ROAD[0], ROAD[0]])


@pytest.mark.parametrize(
    ("sid", "grade", "coords"),
    [
        ("", 3, ((126.9, 37.5), (126.91, 37.5))),
        ("a", 0, ((126.9, 37.5), (126.91, 37.5))),
        ("a", 6, ((126.9, 37.5), (126.91, 37.5))),
        ("a", True, ((126.9, 37.5), (126.91, 37.5))),
        ("a", 3, ((126.9, 37.5),)),
    ],
)
def test_segment_validation(sid: str, grade: int, coords: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError):
        Segment(sid, grade, coords)
