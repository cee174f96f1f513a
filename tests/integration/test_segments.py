"""Segment grades end to end (SPEC "Segment grades"): import, enrolment on the nearest
segment, confirmed incidents raising grades after a recompute, k-anonymity, export."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Stack
from tests.integration.grades_helpers import (
    CENTRE,
    distance_m,
    district_subset,
    insert_resolved_alert,
    midpoint,
    offset,
    subset_geojson,
)


@pytest.fixture(scope="module")
def gstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("grades"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _features(api: httpx.Client, **params: Any) -> dict[str, dict[str, Any]]:
    r = api.get("/api/v1/segments", params=params)
    assert r.status_code == 200, r.text
    return {f["properties"]["segment_id"]: f for f in r.json()["features"]}


def test_bad_imports_report_every_feature_and_store_nothing(gstack: Stack) -> None:
    good = subset_geojson()["features"][0]
    bad = {
        "type": "FeatureCollection",
        "features": [
            good,
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.9, 37.5]},
             "properties": {"segment_id": "p1", "base_grade": 3}},
            {**good, "properties": {"segment_id": "g9", "base_grade": 9}},
            {**good, "properties": {"segment_id": "g0", "base_grade": 0}},
            {**good, "properties": {"segment_id": "gx", "base_grade": "high"}},
            good,  # duplicate id
            {**good, "properties": {"base_grade": 2}},
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[1, 2]]},
             "properties": {"segment_id": "short", "base_grade": 2}},
        ],
    }  # fmt: skip
    with gstack.api() as api:
        # before any import, enrolment is allowed and ties to no segment
        early = gstack.enrol(api, lat=midpoint(district_subset()[0])[0],
                             lon=midpoint(district_subset()[0])[1])  # fmt: skip
        assert early["segment_id"] is None
        r = api.post("/api/v1/segments/import", json=bad)
        assert r.status_code == 422, r.text
        body = r.json()
        reasons = {e["index"]: e["reason"] for e in body["errors"]}
        assert body["rejected"] == 7 and 0 not in reasons
        assert "not a LineString" in reasons[1]
        assert "outside 1..5" in reasons[2] and "outside 1..5" in reasons[3]
        assert "integer" in reasons[4]
        assert "duplicate segment_id" in reasons[5]
        assert "missing segment_id" in reasons[6]
        assert "two positions" in reasons[7]
        assert _features(api) == {}
        for doc in ({"type": "Feature"}, [1, 2], {"type": "FeatureCollection"}):
            r = api.post("/api/v1/segments/import", json=doc)
            assert r.status_code == 422 and r.json()["detail"], r.text
        r = api.post("/api/v1/segments/import", content=b"{not json")
        assert r.status_code == 400 and "not JSON" in r.json()["detail"]
        # skip_invalid imports the good one and still reports the others
        r = api.post("/api/v1/segments/import", params={"skip_invalid": "true"}, json=bad)
        assert r.status_code == 200, r.text
        assert r.json()["added"] == 1 and r.json()["rejected"] == 7
        assert len(r.json()["errors"]) == 7
        # the import ties households enrolled earlier to their nearest segment
        assert r.json()["households_tied"] == 1
        tied = gstack.db_scalar(
            "SELECT segment_id FROM households WHERE household_id = ?", early["household_id"]
        )
        assert tied == good["properties"]["segment_id"]


def test_grades_end_to_end(gstack: Stack) -> None:
    segs = district_subset()
    assert len(segs) > 500
    by_id = {s.segment_id: s for s in segs}
    with gstack.api() as api:
        t = time.perf_counter()
        r = api.post("/api/v1/segments/import", json=subset_geojson())
        assert r.status_code == 200, r.text
        assert time.perf_counter() - t < 10
        imp = r.json()
        assert imp["added"] + imp["unchanged"] + imp["changed"] == len(segs)
        assert imp["segments_total"] == len(segs)

        # the segment nearest the centre: households there, incidents there
        home = min(segs, key=lambda s: distance_m(midpoint(s), CENTRE))
        h_lat, h_lon = offset(*midpoint(home), 0.0, 0.0)
        hh1 = gstack.enrol(api, lat=h_lat, lon=h_lon)
        assert hh1["segment_id"] == home.segment_id

        # far from every street: refused with a clear reason
        far = offset(*CENTRE, 0.0, 5000.0)
        r = api.post("/api/v1/households", json={"name": "far", "lat": far[0], "lon": far[1]})
        assert r.status_code == 422, r.text
        assert "not on a known street" in r.json()["detail"] and "limit 50 m" in r.json()["detail"]

        # a household ~300 m away with only false alarms
        away = max(
            (s for s in segs if 280 < distance_m(midpoint(s), midpoint(home)) < 350),
            key=lambda s: s.segment_id,
        )
        hh_fa = gstack.enrol(api, lat=midpoint(away)[0], lon=midpoint(away)[1])
        assert hh_fa["segment_id"] == away.segment_id
        db = gstack.settings.database
        for _ in range(2):
            insert_resolved_alert(db, hh1["household_id"], "confirmed", days_ago=2)
        for _ in range(6):
            insert_resolved_alert(db, hh_fa["household_id"], "false_alarm", days_ago=1)
        insert_resolved_alert(db, hh_fa["household_id"], "confirmed", days_ago=1000)  # too old

        r = api.post("/api/v1/grades/recompute")
        assert r.status_code == 200, r.text
        summary = r.json()
        assert summary["segments"] == len(segs)
        assert summary["incidents_confirmed"] == 2 and summary["raised"] > 0
        assert summary["run_id"] >= 1 and summary["seconds"] < 10

        feats = _features(api)
        assert len(feats) == len(segs)
        p_home = feats[home.segment_id]["properties"]
        assert p_home["grade"] > p_home["base_grade"] == home.base_grade
        # false alarms never count; segments far from the confirmed incidents stay
        p_away = feats[away.segment_id]["properties"]
        assert p_away["grade"] == p_away["base_grade"]
        for sid, f in feats.items():
            if distance_m(midpoint(by_id[sid]), midpoint(home)) > 160:
                assert f["properties"]["grade"] == f["properties"]["base_grade"], sid
            assert f["properties"]["grade"] >= f["properties"]["base_grade"]

        # one household behind the segment: detail suppressed (k = 3)
        assert p_home["detail_suppressed"] is True
        assert p_home["contributions"] is None and p_home["score"] is None
        assert "suppressed" in p_home["explanation"]
        text = r.text + api.get("/api/v1/segments").text
        for secret in (hh1["household_id"], hh_fa["household_id"], "Test household",
                       f"{h_lat:.6f}"):  # fmt: skip
            assert secret not in text

        # with three households behind it, the detail is shown
        for _ in range(2):
            assert gstack.enrol(api, lat=h_lat, lon=h_lon)["segment_id"] == home.segment_id
        p_home = _features(api)[home.segment_id]["properties"]
        assert p_home["detail_suppressed"] is False
        assert p_home["incident_count"] == 2 and len(p_home["contributions"]) == 2
        assert all(c["incident_id"].startswith("inc-") for c in p_home["contributions"])
        assert p_home["explanation"].startswith(f"{home.base_grade} -> {p_home['grade']}")
        assert hh1["household_id"] not in str(p_home)

        # history: the import and the recompute that changed it
        hist = api.get(f"/api/v1/segments/{home.segment_id}/history").json()
        kinds = [e["kind"] for e in hist["data"]]
        assert kinds == ["recompute", "import"], hist
        assert hist["data"][0]["after"] == p_home["grade"]
        assert api.get("/api/v1/segments/nope/history").status_code == 404

        # more households behind the incidents = more exposure: the rate, and grades, drop
        # a little but the home segment stays raised; with nothing new, a further recompute
        # changes nothing
        again = api.post("/api/v1/grades/recompute").json()
        assert again["raised"] == 0
        p_home = _features(api)[home.segment_id]["properties"]
        assert p_home["grade"] > p_home["base_grade"]
        again = api.post("/api/v1/grades/recompute").json()
        assert again["raised"] == 0 and again["lowered"] == 0
        runs = api.get("/api/v1/grades/runs").json()["data"]
        assert [r["state"] for r in runs[:2]] == ["done", "done"]

        # re-import with a changed base grade: replaced, the old one in the history
        fc = subset_geojson()
        for f in fc["features"]:
            if f["properties"]["segment_id"] == away.segment_id:
                f["properties"]["base_grade"] = 5 if away.base_grade != 5 else 4
        r = api.post("/api/v1/segments/import", json=fc)
        assert r.status_code == 200 and r.json()["changed"] == 1, r.text
        p_away = _features(api)[away.segment_id]["properties"]
        assert p_away["base_grade"] != away.base_grade
        hist = api.get(f"/api/v1/segments/{away.segment_id}/history").json()["data"]
        assert hist[0]["kind"] == "import" and hist[0]["before"] == away.base_grade


def test_bbox_filter_and_validation(gstack: Stack) -> None:
    segs = district_subset()
    with gstack.api() as api:
        if gstack.db_scalar("SELECT COUNT(*) FROM segments") < len(segs):
            api.post("/api/v1/segments/import", json=subset_geojson())
        lat0, lon0 = offset(*CENTRE, -100, -100)
        lat1, lon1 = offset(*CENTRE, 100, 100)
        t = time.perf_counter()
        r = api.get("/api/v1/segments", params={"bbox": f"{lon0},{lat0},{lon1},{lat1}"})
        assert r.status_code == 200 and time.perf_counter() - t < 1
        assert r.headers["content-type"].startswith("application/geo+json")
        got = r.json()["features"]
        assert 0 < len(got) < len(segs)
        for f in got:
            lons = [p[0] for p in f["geometry"]["coordinates"]]
            lats = [p[1] for p in f["geometry"]["coordinates"]]
            assert max(lons) >= lon0 and min(lons) <= lon1
            assert max(lats) >= lat0 and min(lats) <= lat1
        for bad in ("1,2,3", "a,b,c,d", "126.9,37.5,126.8,37.6", "200,0,201,1", "0,-95,1,0",
                    "nan,1,2,3", "1,2,3,4,5"):  # fmt: skip
            r = api.get("/api/v1/segments", params={"bbox": bad})
            assert r.status_code == 422 and r.json()["detail"], (bad, r.text)


def test_export_csv_and_geojson(gstack: Stack) -> None:
    with gstack.api() as api:
        if not gstack.db_scalar("SELECT COUNT(*) FROM segment_grades"):
            api.post("/api/v1/grades/recompute")
        n = gstack.db_scalar("SELECT COUNT(*) FROM segments")
        r = api.get("/api/v1/grades/export", params={"format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == n
        assert {"segment_id", "base_grade", "grade", "detail_suppressed"} <= set(rows[0])
        assert any(int(x["grade"]) > int(x["base_grade"]) for x in rows)
        r = api.get("/api/v1/grades/export", params={"format": "geojson"})
        assert r.status_code == 200 and len(r.json()["features"]) == n
        assert "attachment" in r.headers["content-disposition"]
        assert api.get("/api/v1/grades/export", params={"format": "xls"}).status_code == 422


def test_one_recompute_at_a_time_and_operator_only(gstack: Stack) -> None:
    conn = sqlite3.connect(gstack.settings.database, timeout=15)
    now_us = time.time_ns() // 1000
    try:
        conn.execute(
            "INSERT INTO locks (name, holder, acquired_us, expires_us) VALUES (?,?,?,?)",
            ("grade_recompute", "scheduler#1", now_us, now_us + 60_000_000),
        )
        conn.commit()
        with gstack.api() as api:
            r = api.post("/api/v1/grades/recompute")
            assert r.status_code == 409 and "already running" in r.json()["detail"], r.text
        conn.execute("DELETE FROM locks")
        conn.commit()
    finally:
        conn.close()
    with gstack.api() as api:
        assert api.post("/api/v1/grades/recompute").status_code == 200
        hh = gstack.enrol(api, lat=midpoint(district_subset()[0])[0],
                          lon=midpoint(district_subset()[0])[1])  # fmt: skip
    with gstack.api(hh["token"]) as resident:
        for method, path in (("GET", "/api/v1/segments"), ("POST", "/api/v1/grades/recompute"),
                             ("GET", "/api/v1/grades/export"), ("GET", "/api/v1/scheduler/jobs"),
                             ("POST", "/api/v1/segments/import")):  # fmt: skip
            assert resident.request(method, path).status_code == 403, path
