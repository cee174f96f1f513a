"""parse_segment_import: every bad feature reported with its reason (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from core.segment_doc import ImportDocumentError, parse_segment_import

LINE = {"type": "LineString", "coordinates": [[126.9, 37.5], [126.9001, 37.5]]}


def _f(props: dict[str, Any], geom: Any = LINE) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geom, "properties": props}


@pytest.mark.parametrize(
    ("feature", "reason"),
    [
        (_f({"segment_id": "a", "base_grade": 3}, {"type": "Point", "coordinates": [1, 2]}),
         "not a LineString"),
        (_f({"segment_id": "a", "base_grade": 6}), "outside 1..5"),
        (_f({"segment_id": "a", "base_grade": 0}), "outside 1..5"),
        (_f({"segment_id": "a", "base_grade": 2.5}), "outside 1..5"),
        (_f({"segment_id": "a", "base_grade": True}), "integer"),
        (_f({"segment_id": "a"}), "missing base_grade"),
        (_f({"base_grade": 2}), "missing segment_id"),
        (_f({"segment_id": "  ", "base_grade": 2}), "missing segment_id"),
        (_f({"segment_id": "a", "base_grade": 2, "dong": 5}), "dong"),
        (_f({"segment_id": "a", "base_grade": 2}, {"type": "LineString", "coordinates": [[1, 2]]}),
         "two positions"),
        (_f({"segment_id": "a", "base_grade": 2},
            {"type": "LineString", "coordinates": [[1, 2], [1, 2]]}), "distinct"),
        (_f({"segment_id": "a", "base_grade": 2},
            {"type": "LineString", "coordinates": [[1, 200], [1, 2]]}), "outside"),
        (_f({"segment_id": "a", "base_grade": 2},
            {"type": "LineString", "coordinates": [["x", 2], [1, 2]]}), "numbers"),
        ({"type": "Point"}, "not a GeoJSON Feature"),
    ],
)  # fmt: skip
def test_bad_feature_reasons(feature: dict[str, Any], reason: str) -> None:
    parsed = parse_segment_import({"type": "FeatureCollection", "features": [feature]})
    assert parsed.segments == []
    assert len(parsed.problems) == 1 and reason in parsed.problems[0].reason


def test_good_features_and_duplicates() -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            _f({"segment_id": "a", "base_grade": 1, "dong": "여의동"}),
            _f({"segment_id": "b", "base_grade": 5.0}),
            _f({"segment_id": "a", "base_grade": 2}),
        ],
    }
    parsed = parse_segment_import(doc)
    assert [(s.segment_id, s.base_grade, s.dong) for s in parsed.segments] == [
        ("a", 1, "여의동"),
        ("b", 5, None),
    ]
    assert [(p.index, p.reason) for p in parsed.problems] == [(2, "duplicate segment_id 'a'")]


@pytest.mark.parametrize("doc", [None, [], {"type": "Feature"}, {"type": "FeatureCollection"}])
def test_not_a_feature_collection(doc: Any) -> None:
    with pytest.raises(ImportDocumentError):
        parse_segment_import(doc)
