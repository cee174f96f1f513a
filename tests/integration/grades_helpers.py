"""Shared by the segment-grade integration tests: a small real piece of the generated demo
district, its own stack, and resolved alerts written straight into the `alerts` table."""

from __future__ import annotations

import sqlite3
import time
import uuid
from functools import lru_cache
from typing import Any

from core.district import generate_district, segments_to_feature_collection
from core.geo import DISTRICT_PROJECTION, Segment, SegmentIndex

CENTRE = (37.5172, 126.9072)  # (lat, lon), the harness' default enrolment location
HALF_SIDE_M = 400.0


@lru_cache(maxsize=1)
def district_subset() -> tuple[Segment, ...]:
    """The demo district's 10 m segments within 400 m of CENTRE (a 0.64 km² square)."""
    district = generate_district()
    index = SegmentIndex(district.segments)
    cx, cy = DISTRICT_PROJECTION.to_xy(*CENTRE)
    lat0, lon0 = DISTRICT_PROJECTION.to_latlon(cx - HALF_SIDE_M, cy - HALF_SIDE_M)
    lat1, lon1 = DISTRICT_PROJECTION.to_latlon(cx + HALF_SIDE_M, cy + HALF_SIDE_M)
    return tuple(district.segments[i] for i in index.query_bbox(lon0, lat0, lon1, lat1))


def subset_geojson() -> dict[str, Any]:
    return segments_to_feature_collection(district_subset())


def midpoint(seg: Segment) -> tuple[float, float]:
    """(lat, lon) of a segment's middle."""
    (lon0, lat0), (lon1, lat1) = seg.coords[0], seg.coords[-1]
    return (lat0 + lat1) / 2, (lon0 + lon1) / 2


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    x, y = DISTRICT_PROJECTION.to_xy(lat, lon)
    return DISTRICT_PROJECTION.to_latlon(x + east_m, y + north_m)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = DISTRICT_PROJECTION.to_xy(*a)
    bx, by = DISTRICT_PROJECTION.to_xy(*b)
    return float(((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5)


def insert_resolved_alert(
    db_path: Any, household_id: str, resolution: str, days_ago: float = 1.0
) -> str:
    """An alert resolved `confirmed` or `false_alarm`, as the alert API will store it."""
    alert_id = f"al-{uuid.uuid4().hex[:12]}"
    now_us = time.time_ns() // 1000
    event_us = now_us - int(days_ago * 86_400e6)
    values: dict[str, Any] = {
        "alert_id": alert_id, "household_id": household_id, "kind": "intrusion",
        "state": "resolved", "resolution": resolution, "event_us": event_us,
        "last_event_us": event_us, "reason": "test", "created_us": event_us,
        "updated_us": now_us, "resolved_us": now_us,
    }  # fmt: skip
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        # the alerts table is growing in parallel (issue 4): fill any other required column
        for _cid, name, type_, notnull, default, _pk in conn.execute("PRAGMA table_info(alerts)"):
            if notnull and default is None and name not in values:
                values[name] = event_us if "INT" in type_.upper() else f"{name}-{alert_id}"
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        conn.execute(f"INSERT INTO alerts ({cols}) VALUES ({marks})", list(values.values()))
        conn.commit()
    finally:
        conn.close()
    return alert_id
