"""The simulator places households on the imported streets, wherever they are (issue 15,
item 8): a small district of eight streets in Busan, 325 km from the personas' own box
around Yeongdeungpo-gu, imported through the API; `ansim simulate`'s run enrols every
household on those streets (each within 50 m of a segment, tied to one of them), runs a
few simulated hours, and the same seed puts every household at the same spot again."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.geo import LocalProjection
from simulator.personas import build_fleet
from simulator.run import RunOptions, run_async
from tests.harness import Stack

# a small grid of streets around Seomyeon, Busan: (lat, lon) of its south-west corner
ORIGIN = (35.1570, 129.0590)
BUSAN = LocalProjection(lat0=ORIGIN[0], lon0=ORIGIN[1])
HOUSEHOLDS = 6


def _street(segment_id: str, *xy: tuple[float, float]) -> dict[str, Any]:
    """A LineString through points given in metres east/north of ORIGIN."""
    coords = []
    for x, y in xy:
        lat, lon = BUSAN.to_latlon(x, y)
        coords.append([round(lon, 7), round(lat, 7)])
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coords},
        "properties": {"segment_id": segment_id, "base_grade": 3, "dong": "Bujeon-dong"},
    }


DISTRICT: dict[str, Any] = {
    "type": "FeatureCollection",
    "features": [
        _street("bs-e0", (0, 0), (60, 0), (120, 0)),
        _street("bs-e1", (0, 120), (120, 120)),
        _street("bs-e2", (0, 240), (70, 245), (120, 240)),
        _street("bs-n0", (0, 0), (0, 120)),
        _street("bs-n1", (120, 0), (120, 120), (120, 240)),
        _street("bs-n2", (0, 120), (0, 240)),
        _street("bs-d0", (120, 240), (200, 320)),
        _street("bs-d1", (200, 320), (260, 320)),
    ],
}


@pytest.fixture(scope="module")
def busan_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("placing"), ANSIM_TIME_MODE="replay")
    try:
        s.start()
        with s.api() as api:
            r = api.post("/api/v1/segments/import", json=DISTRICT)
            assert r.status_code == 200, r.text
            assert r.json()["segments_total"] == len(DISTRICT["features"])
        yield s
    finally:
        s.stop()


def _distance_to_streets_m(lat: float, lon: float) -> float:
    """Metres from (lat, lon) to the nearest imported LineString (projected around Busan)."""
    px, py = BUSAN.to_xy(lat, lon)
    best = math.inf
    for feature in DISTRICT["features"]:
        pts = [BUSAN.to_xy(la, lo) for lo, la in feature["geometry"]["coordinates"]]
        for (ax, ay), (bx, by) in itertools.pairwise(pts):
            dx, dy = bx - ax, by - ay
            t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
            best = min(best, math.hypot(px - (ax + t * dx), py - (ay + t * dy)))
    return best


def _simulate(stack: Stack, tmp: Path, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A short run (6 households, 6 simulated hours); the report and, per household key,
    where she was enrolled and the segment she is tied to."""
    opts = RunOptions(
        households=HOUSEHOLDS, days=0.25, speed=20_000, seed=seed, start="2026-11-16",
        progress=False, report=tmp / "report.json", truth=tmp / "truth.jsonl", settle_s=0.5,
        catch_up_quiet_s=3.0,
    )  # fmt: skip
    settings = stack.settings.model_copy(update={"api_token": stack.operator_token})
    report = asyncio.run(run_async(settings, opts))
    side = json.loads((tmp / "truth.jsonl.run.json").read_text())
    homes: dict[str, Any] = {}
    for key, ids in side["households"].items():
        row = [
            stack.db_scalar(f"SELECT {col} FROM households WHERE household_id = ?",
                            ids["household_id"])
            for col in ("lat", "lon", "segment_id")
        ]  # fmt: skip
        homes[key] = (float(row[0]), float(row[1]), row[2])
    return report, homes


def test_households_live_on_a_district_far_from_the_default_box(
    busan_stack: Stack, tmp_path: Path
) -> None:
    # the personas' own spots are in Seoul: 300+ km from every street of this district,
    # which is what made enrolment fail before (422 "nearest street segment is ... away")
    for h in build_fleet(HOUSEHOLDS, 11):
        assert _distance_to_streets_m(h.lat, h.lon) > 300_000

    report, homes = _simulate(busan_stack, tmp_path / "a", seed=11)
    assert report["sensors"] == HOUSEHOLDS and report["sensors_not_connected"] == 0
    assert report["http_errors"] == 0 and report["all_acked"]
    assert report["events_sent"] > 0 and report["events_lost"] == 0
    assert report["run"]["placement"] == "streets"
    assert report["run"]["segments_read"] == len(DISTRICT["features"])

    imported = {f["properties"]["segment_id"] for f in DISTRICT["features"]}
    assert len(homes) == HOUSEHOLDS
    for key, (lat, lon, segment_id) in homes.items():
        assert _distance_to_streets_m(lat, lon) < 50, (key, lat, lon)
        assert segment_id in imported, (key, segment_id)
    # spread over the streets, not piled on one spot
    assert len({(lat, lon) for lat, lon, _ in homes.values()}) == HOUSEHOLDS

    # the same seed: every household at the same spot again; another seed: elsewhere
    again_report, again = _simulate(busan_stack, tmp_path / "b", seed=11)
    assert again_report["run"]["plan_digest"] == report["run"]["plan_digest"]
    assert again == homes
    _, other = _simulate(busan_stack, tmp_path / "c", seed=12)
    assert all(_distance_to_streets_m(lat, lon) < 50 for lat, lon, _ in other.values())
    assert {(lat, lon) for lat, lon, _ in other.values()} != {
        (lat, lon) for lat, lon, _ in homes.values()
    }
