"""Checking a GeoJSON FeatureCollection of street segments, feature by feature (pure):
what `POST /segments/import` accepts, and why each rejected feature was rejected."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.errors import AnsimError
from core.geo import MAX_GRADE, MIN_GRADE, Segment

MAX_REPORTED_PROBLEMS = 1000


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
