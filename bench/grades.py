"""Grading benchmark (run by hand; prints its figures).

    .venv/bin/python bench/grades.py [--segments 60000] [--incidents 5000] [--households 10000]

1. Generating the demo district (~60,000 10 m segments) and its GeoJSON.
2. Building the in-memory SegmentIndex (STRtree).
3. A full recompute: every segment graded against `--incidents` confirmed incidents (plus
   25 % as many false alarms, which must not count) with `--households` enrolled
   households, ages spread over two years; median of `--repeat` runs, the second with the
   first's grades as `previous` (hysteresis path).
4. Bounding-box queries of 1 km² at random places in the district: median and p99.
5. Snapping households to their nearest segment (enrolment), per call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.district import generate_district  # noqa: E402
from core.geo import DISTRICT_PROJECTION, SegmentIndex  # noqa: E402
from core.grading import (  # noqa: E402
    DEFAULT_PARAMS,
    Incident,
    grade_segments,
    summarise_grades,
)

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=ZoneInfo("Asia/Seoul"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=60_000)
    ap.add_argument("--incidents", type=int, default=5_000)
    ap.add_argument("--households", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    now = NOW

    t = time.perf_counter()
    district = generate_district(target_segments=args.segments)
    t_gen = time.perf_counter() - t
    t = time.perf_counter()
    fc = district.feature_collection()
    t_fc = time.perf_counter() - t
    segments = district.segments
    print(f"district: {len(segments):,} segments generated in {t_gen:.2f} s")
    print(f"          GeoJSON FeatureCollection built in {t_fc:.2f} s ({len(fc['features']):,})")

    t = time.perf_counter()
    index = SegmentIndex(segments)
    print(f"index:    SegmentIndex (STRtree) built in {time.perf_counter() - t:.2f} s")

    # Households and incidents sit on or near streets; incidents cluster a little
    # around a few hundred hot spots, like real ones.
    homes = rng.integers(0, len(segments), args.households)
    households: dict[str, int] = {}
    for j in homes.tolist():
        sid = segments[j].segment_id
        households[sid] = households.get(sid, 0) + 1
    hot = index.midpoints_xy[rng.integers(0, len(segments), 300)]
    n_false = args.incidents // 4
    n_all = args.incidents + n_false
    centre = hot[rng.integers(0, len(hot), n_all)]
    xy = centre + rng.normal(0, 120, size=(n_all, 2))
    lats, lons = DISTRICT_PROJECTION.to_latlon_arrays(xy[:, 0], xy[:, 1])
    ages = rng.uniform(0, 730, n_all)
    incidents = [
        Incident(
            f"inc-{i}", lats[i], lons[i], now - timedelta(days=float(ages[i])), i < args.incidents
        )
        for i in range(n_all)
    ]

    runs = []
    previous: dict[str, int] = {}
    grades = []
    for _ in range(max(1, args.repeat)):
        t = time.perf_counter()
        grades = grade_segments(index, incidents, households, previous, DEFAULT_PARAMS, now)
        runs.append(time.perf_counter() - t)
        previous = {g.segment_id: g.grade for g in grades}
    t = time.perf_counter()
    grade_segments(list(segments), incidents, households, {}, DEFAULT_PARAMS, now)
    t_cold = time.perf_counter() - t
    summary = summarise_grades(grades)
    pairs = sum(len(g.contributions) for g in grades)
    print(
        f"recompute: {len(segments):,} segments, {args.incidents:,} confirmed incidents"
        f" (+{n_false:,} false alarms), {args.households:,} households:"
        f" median {statistics.median(runs):.2f} s over {len(runs)} runs"
        f" (from a prebuilt index); {t_cold:.2f} s including the index build"
    )
    print(
        f"           {pairs:,} incident-segment contributions;"
        f" {summary.above_base:,} segments above base; grades {summary.by_grade}"
    )

    # 1 km² boxes around random segment midpoints.
    times = []
    counts = []
    for j in rng.integers(0, len(segments), 500).tolist():
        cx, cy = index.midpoints_xy[j]
        lat0, lon0 = DISTRICT_PROJECTION.to_latlon(cx - 500, cy - 500)
        lat1, lon1 = DISTRICT_PROJECTION.to_latlon(cx + 500, cy + 500)
        t = time.perf_counter()
        ids = index.ids_in_bbox(lon0, lat0, lon1, lat1)
        times.append(time.perf_counter() - t)
        counts.append(len(ids))
    times_ms = sorted(x * 1000 for x in times)
    print(
        f"bbox 1 km²: median {statistics.median(times_ms):.2f} ms,"
        f" p99 {times_ms[int(0.99 * len(times_ms))]:.2f} ms,"
        f" median {int(statistics.median(counts)):,} segments per box (500 boxes)"
    )

    pts = index.midpoints_xy[rng.integers(0, len(segments), 2000)] + rng.normal(0, 20, (2000, 2))
    plats, plons = DISTRICT_PROJECTION.to_latlon_arrays(pts[:, 0], pts[:, 1])
    t = time.perf_counter()
    for la, lo in zip(plats.tolist(), plons.tolist(), strict=True):
        index.nearest(la, lo)
    per = (time.perf_counter() - t) / len(pts) * 1e6
    print(f"snap:     nearest segment within 50 m: {per:.0f} µs per household")


if __name__ == "__main__":
    main()
