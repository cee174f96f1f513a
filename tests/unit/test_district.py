"""Demo district: size, format, geometry inside the real dongs, plausible grades, seeded."""

from __future__ import annotations

import json
import re
from collections import Counter
from statistics import mean

import numpy as np
import pytest
import shapely

from core.district import (
    DEFAULT_TARGET_SEGMENTS,
    District,
    RoadClass,
    generate_district,
    load_dongs,
    segments_to_feature_collection,
)
from core.geo import DISTRICT_PROJECTION, SegmentIndex


@pytest.fixture(scope="module")
def district() -> District:
    return generate_district()


def test_about_sixty_thousand_segments(district: District) -> None:
    n = len(district.segments)
    assert abs(n - DEFAULT_TARGET_SEGMENTS) / DEFAULT_TARGET_SEGMENTS < 0.03
    assert len(district.road_classes) == n
    assert len({s.segment_id for s in district.segments}) == n


def test_segments_are_about_ten_metres(district: District) -> None:
    a = np.array([s.coords[0] for s in district.segments])
    b = np.array([s.coords[-1] for s in district.segments])
    x0, y0 = DISTRICT_PROJECTION.to_xy_arrays(a[:, 1], a[:, 0])
    x1, y1 = DISTRICT_PROJECTION.to_xy_arrays(b[:, 1], b[:, 0])
    length = np.hypot(x1 - x0, y1 - y0)
    assert length.min() >= 4.9 and length.max() <= 15.1
    assert abs(float(np.median(length)) - 10.0) < 0.5


def test_every_segment_lies_in_its_dong(district: District) -> None:
    dongs = {d.name: d.polygon for d in load_dongs()}
    assert {s.dong for s in district.segments} == set(dongs)
    by_dong: dict[str, list[tuple[float, float]]] = {}
    for s in district.segments:
        assert s.dong is not None
        (lon0, lat0), (lon1, lat1) = s.coords
        by_dong.setdefault(s.dong, []).append(((lon0 + lon1) / 2, (lat0 + lat1) / 2))
    for name, mids in by_dong.items():
        pts = np.array(mids)
        near = shapely.dwithin(dongs[name], shapely.points(pts), 1e-5)  # ~1 m
        assert near.all(), name


def test_no_streets_in_the_han(district: District) -> None:
    index = SegmentIndex(district.segments)
    # Mid-river north of Yeouido, and mid-river north of Dangsan.
    for lat, lon in [(37.5365, 126.9300), (37.5420, 126.9050)]:
        assert index.nearest(lat, lon, max_distance_m=200.0) is None
    # A Yeongdeungpo station address and a Daerim alley are on a street.
    for lat, lon in [(37.5160, 126.9070), (37.4930, 126.8990)]:
        assert index.nearest(lat, lon) is not None


def test_main_roads_are_safer_than_alleys(district: District) -> None:
    grades: dict[RoadClass, list[int]] = {c: [] for c in RoadClass}
    for s, c in zip(district.segments, district.road_classes, strict=True):
        grades[c].append(s.base_grade)
    art, col, alley = (mean(grades[c]) for c in RoadClass)
    assert art < col < alley
    assert art < 2.0 and alley > 3.0
    counts = Counter(s.base_grade for s in district.segments)
    assert set(counts) == {1, 2, 3, 4, 5}
    assert all(counts[g] > 0.01 * len(district.segments) for g in counts)


def test_feature_collection_is_specs_import_format(district: District) -> None:
    fc = district.feature_collection()
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == len(district.segments)
    id_re = re.compile(r"^\d{7}-\d{5}$")
    for f in fc["features"][:2000]:
        assert f["type"] == "Feature"
        assert f["geometry"]["type"] == "LineString"
        coords = f["geometry"]["coordinates"]
        assert len(coords) == 2 and all(len(p) == 2 for p in coords)
        lon, lat = coords[0]
        assert 126.88 < lon < 126.96 and 37.48 < lat < 37.55
        assert set(f["properties"]) == {"segment_id", "base_grade", "dong"}
        assert id_re.match(f["properties"]["segment_id"])
        assert f["properties"]["base_grade"] in {1, 2, 3, 4, 5}
    json.dumps(fc, ensure_ascii=False)  # serialisable as is


def test_seeded_and_deterministic() -> None:
    a = generate_district(seed=7, target_segments=4000)
    b = generate_district(seed=7, target_segments=4000)
    c = generate_district(seed=8, target_segments=4000)
    assert a == b
    assert a.segments != c.segments
    assert abs(len(a.segments) - 4000) / 4000 < 0.05


def test_feature_collection_of_any_segments(district: District) -> None:
    seg = district.segments[0]
    fc = segments_to_feature_collection([seg])
    assert fc["features"][0]["properties"] == {
        "segment_id": seg.segment_id,
        "base_grade": seg.base_grade,
        "dong": seg.dong,
    }


def test_target_must_be_positive() -> None:
    with pytest.raises(ValueError):
        generate_district(target_segments=0)
