"""Grades through the real API (run by hand; prints its figures).

    .venv/bin/python bench/grades_api.py [--incidents 5000] [--households 10000]

Starts a real stack (mosquitto, bridge, API under uvicorn, a SQLite file in a temporary
directory), then measures end to end over HTTP:

1. POST /api/v1/segments/import of the whole demo district (~60,000 segments; target
   < 30 s), and a re-import of the same file (nothing changes);
2. POST /api/v1/grades/recompute with `--households` enrolled households and
   `--incidents` confirmed incidents (+25 % false alarms) spread over two years
   (target < 5 s), the first run and a second (hysteresis path);
3. GET /api/v1/segments?bbox= of 1 km² at random places (target < 100 ms): median, p99.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.district import generate_district  # noqa: E402
from core.geo import DISTRICT_PROJECTION, Segment, SegmentIndex  # noqa: E402
from tests.harness import Stack  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=5_000)
    ap.add_argument("--households", type=int, default=10_000)
    ap.add_argument("--boxes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    district = generate_district()
    segs = district.segments
    body = json.dumps(district.feature_collection()).encode()
    print(f"district: {len(segs):,} segments, GeoJSON body {len(body) / 1e6:.1f} MB")

    with tempfile.TemporaryDirectory(prefix="ansim-bench-") as tmp:
        stack = Stack(Path(tmp), ANSIM_LOG_LEVEL="WARNING")
        stack.start()
        try:
            run(stack, segs, body, args, rng)
        finally:
            stack.stop()


def run(
    stack: Stack,
    segs: Sequence[Segment],
    body: bytes,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> None:
    api = httpx.Client(
        base_url=stack.base_url,
        headers={"Authorization": f"Bearer {stack.operator_token}"},
        timeout=120,
    )
    headers = {"Content-Type": "application/json"}
    t = time.perf_counter()
    r = api.post("/api/v1/segments/import", content=body, headers=headers)
    t_import = time.perf_counter() - t
    assert r.status_code == 200, r.text[:500]
    print(f"import:   {r.json()['added']:,} segments in {t_import:.2f} s (target < 30 s)")
    t = time.perf_counter()
    r = api.post("/api/v1/segments/import", content=body, headers=headers)
    print(
        f"          re-import of the same file: {time.perf_counter() - t:.2f} s"
        f" ({r.json()['unchanged']:,} unchanged)"
    )

    # Households and resolved alerts written directly (the enrolment API is per household).
    index = SegmentIndex(segs)
    now_us = time.time_ns() // 1000
    homes = rng.integers(0, len(segs), args.households)
    hot = index.midpoints_xy[rng.integers(0, len(segs), 300)]
    n_false = args.incidents // 4
    conn = sqlite3.connect(stack.settings.database, timeout=30)
    hh_rows = []
    for i, j in enumerate(homes.tolist()):
        x, y = index.midpoints_xy[j]
        lat, lon = DISTRICT_PROJECTION.to_latlon(x, y)
        hh_rows.append((f"hh-b{i}", "bench", lat, lon, "Asia/Seoul", "23:00-06:00",
                        segs[j].segment_id, now_us, now_us))  # fmt: skip
    conn.executemany(
        "INSERT INTO households (household_id, name, lat, lon, timezone, night_window,"
        " segment_id, mode_since_us, created_us) VALUES (?,?,?,?,?,?,?,?,?)",
        hh_rows,
    )
    # each alert belongs to a household near a hot spot
    home_xy = index.midpoints_xy[homes]
    cols = [r for r in conn.execute("PRAGMA table_info(alerts)")]
    alert_rows = []
    names: list[str] = []
    for i in range(args.incidents + n_false):
        c = hot[rng.integers(0, len(hot))] + rng.normal(0, 120, 2)
        k = int(np.argmin(np.hypot(*(home_xy - c).T)))
        ev = now_us - int(rng.uniform(0, 730) * 86_400e6)
        values = {
            "alert_id": f"al-b{i}", "household_id": f"hh-b{k}", "kind": "intrusion",
            "state": "resolved",
            "resolution": "confirmed" if i < args.incidents else "false_alarm",
            "event_us": ev, "last_event_us": ev, "reason": "bench", "created_us": ev,
            "updated_us": ev, "resolved_us": ev,
        }  # fmt: skip
        for _cid, name, type_, notnull, default, _pk in cols:
            if notnull and default is None and name not in values:
                values[name] = ev if "INT" in type_.upper() else f"{name}-{i}"
        names = list(values)
        alert_rows.append(tuple(values.values()))
    conn.executemany(
        f"INSERT INTO alerts ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
        alert_rows,
    )
    conn.commit()
    conn.close()
    print(
        f"data:     {args.households:,} households, {args.incidents:,} confirmed incidents"
        f" (+{n_false:,} false alarms) over two years"
    )

    for label in ("first", "second"):
        t = time.perf_counter()
        r = api.post("/api/v1/grades/recompute")
        took = time.perf_counter() - t
        assert r.status_code == 200, r.text[:500]
        s = r.json()
        print(
            f"recompute ({label}): {took:.2f} s end to end (server {s['seconds']:.2f} s;"
            f" target < 5 s): {s['segments']:,} segments, raised {s['raised']:,},"
            f" lowered {s['lowered']:,}, above base {s['above_base']:,}"
        )

    times, counts = [], []
    api.get("/api/v1/segments", params={"bbox": "126.90,37.51,126.901,37.511"})  # warm
    for j in rng.integers(0, len(segs), args.boxes).tolist():
        cx, cy = index.midpoints_xy[j]
        lat0, lon0 = DISTRICT_PROJECTION.to_latlon(cx - 500, cy - 500)
        lat1, lon1 = DISTRICT_PROJECTION.to_latlon(cx + 500, cy + 500)
        t = time.perf_counter()
        r = api.get("/api/v1/segments", params={"bbox": f"{lon0},{lat0},{lon1},{lat1}"})
        times.append((time.perf_counter() - t) * 1000)
        counts.append(len(r.json()["features"]))
    times.sort()
    print(
        f"bbox 1 km²: median {statistics.median(times):.1f} ms, p99"
        f" {times[int(0.99 * len(times))]:.1f} ms (target < 100 ms),"
        f" median {int(statistics.median(counts)):,} segments per box ({len(times)} boxes)"
    )
    t = time.perf_counter()
    r = api.get("/api/v1/grades/export", params={"format": "csv"})
    print(
        f"export:   CSV of {r.text.count(chr(10)) - 1:,} segments"
        f" in {time.perf_counter() - t:.2f} s"
    )


if __name__ == "__main__":
    main()
