"""Scoring hand-made ground truth against hand-made alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from core.models import AlertKind
from simulator.personas import SEOUL, build_fleet
from simulator.scenario import expand_scenario, household_weeks, parse_scenario
from simulator.scoring import matches, percentile, score_run
from simulator.truth import TruthRecord, bind_ids

T0 = datetime(2026, 11, 18, 2, 41, 7, tzinfo=SEOUL)


def rec(
    record_id: str,
    household: str,
    at: datetime,
    expected: AlertKind | None,
    explains: tuple[AlertKind, ...] = (),
    **kw: Any,
) -> TruthRecord:
    return TruthRecord(
        record_id=record_id,
        kind=kw.pop("kind", "night_intrusion"),
        household_key=household,
        at=at,
        expected_alert=expected,
        explains=explains,
        **kw,
    )


def alert(
    alert_id: str,
    kind: str,
    household: str,
    event_ts: datetime | None,
    created_at: datetime | None = None,
    sensor: str | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "kind": kind,
        "state": "open",
        "household_id": household,
        "sensor_id": sensor,
        "event_ts": None if event_ts is None else event_ts.isoformat(),
        "created_at": None if created_at is None else created_at.isoformat(),
    }


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def score(truth: list[TruthRecord], alerts: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"events_sent": 100, "events_stored": 100, "household_weeks": 10.0}
    return score_run(truth, alerts, **(args | kw))


def test_required_report_fields() -> None:
    report = score([], [])
    for name in (
        "events_sent",
        "events_stored",
        "events_lost",
        "incidents_injected",
        "incidents_detected",
        "false_alarms",
        "false_alarms_per_household_week",
        "alert_latency_p50_s",
        "alert_latency_p99_s",
    ):
        assert name in report
    assert report["incidents_injected"] == 0 and report["false_alarms"] == 0
    assert report["alert_latency_p50_s"] is None and report["detection_rate"] is None


def test_a_perfect_run() -> None:
    truth = [
        rec("i1", "hh-1", T0, AlertKind.INTRUSION, (AlertKind.NIGHT_OPENING,), due_s=30),
        rec("i2", "hh-2", T0 + s(3600), AlertKind.TAMPER, kind="tamper"),
        rec("f1", "hh-3", T0, None, kind="duplicate", handling="duplicate_dropped"),
    ]
    alerts = [
        alert("a1", "intrusion", "hh-1", T0, T0 + s(31)),
        alert("a2", "night_opening", "hh-1", T0, T0 + s(0.5)),  # explained, not a false alarm
        alert("a3", "tamper", "hh-2", T0 + s(3600), T0 + s(3602)),
    ]
    r = score(truth, alerts, events_sent=1000, events_stored=998)
    assert r["events_lost"] == 2 and r["events_unexpected"] == 0
    assert r["incidents_injected"] == 2
    assert r["incidents_detected"]["intrusion"] == 1 and r["incidents_detected"]["tamper"] == 1
    assert r["incidents_detected"]["night_opening"] == 0
    assert r["incidents_detected_total"] == 2 and r["detection_rate"] == 1.0
    assert r["false_alarms"] == 0 and r["false_alarms_per_household_week"] == 0.0
    assert r["alerts_total"] == 3 and r["alerts_explained"] == 3
    assert r["faults_injected"] == {"duplicate": 1}
    # latency: from when the alert was due (entry delay for the intrusion)
    assert r["alert_latency_p50_s"] == 1.0 and r["alert_latency_p99_s"] == 2.0
    assert r["incidents_by_kind"]["night_intrusion"]["latency_p50_s"] == 1.0


def test_false_alarms_wrong_household_wrong_kind_outside_window() -> None:
    truth = [rec("i1", "hh-1", T0, AlertKind.INTRUSION, due_s=30)]
    alerts = [
        alert("other-house", "intrusion", "hh-2", T0, T0 + s(31)),
        alert("wrong-kind", "tamper", "hh-1", T0, T0 + s(1)),
        alert("too-late", "intrusion", "hh-1", T0 + s(121), T0 + s(150)),
        alert("too-early", "intrusion", "hh-1", T0 - s(6), T0 - s(5)),
        alert("no-time", "intrusion", "hh-1", None, None),
        alert("routine", "night_opening", "hh-9", T0 + s(86400), T0 + s(86400)),
    ]
    r = score(truth, alerts, household_weeks=4.0)
    assert r["incidents_detected_total"] == 0 and r["incidents_missed"] == 1
    assert r["missed_record_ids"] == ["i1"]
    assert r["false_alarms"] == 6
    assert r["false_alarms_by_kind"] == {"intrusion": 4, "tamper": 1, "night_opening": 1}
    assert r["false_alarms_per_household_week"] == 1.5
    assert r["detection_rate"] == 0.0


def test_explained_but_not_the_expected_kind_is_no_detection() -> None:
    truth = [rec("i1", "hh-1", T0, AlertKind.INTRUSION, (AlertKind.NIGHT_OPENING,), due_s=30)]
    r = score(truth, [alert("a", "night_opening", "hh-1", T0 + s(1), T0 + s(1))])
    assert r["false_alarms"] == 0 and r["incidents_detected_total"] == 0
    assert r["incidents_by_kind"]["night_intrusion"] == {
        "injected": 1,
        "detected": 0,
        "missed": 1,
        "expected_alert": {"intrusion": 1},
        "latency_p50_s": None,
    }


def test_repeats_of_one_incident_are_counted_not_double_detected() -> None:
    truth = [rec("i1", "hh-1", T0, AlertKind.DOOR_LEFT_OPEN, due_s=600, match_to_s=1500)]
    alerts = [
        alert("a1", "door_left_open", "hh-1", T0, T0 + s(605)),
        alert("a2", "door_left_open", "hh-1", T0 + s(900), T0 + s(1200)),
    ]
    r = score(truth, alerts)
    assert r["incidents_detected_total"] == 1 and r["repeat_alerts"] == 1
    assert r["false_alarms"] == 0 and r["alert_latency_p50_s"] == 5.0


def test_bound_ids_match_by_household_or_sensor() -> None:
    truth = bind_ids(
        [
            rec("i1", "hh-00001", T0, AlertKind.TAMPER, kind="tamper"),
            rec("i2", "hh-00002", T0, AlertKind.SENSOR_OFFLINE, kind="power_loss",
                match_from_s=-660, match_to_s=3000),
        ],
        {"hh-00001": ("H-1", "s-1"), "hh-00002": ("H-2", "s-2")},
    )  # fmt: skip
    alerts = [
        alert("a1", "tamper", "H-1", T0 + s(1), T0 + s(1)),
        alert("a2", "sensor_offline", "someone-else", T0 + s(60), T0 + s(60), sensor="s-2"),
        alert("a3", "tamper", "hh-00001", T0, T0),  # the simulator key is not the real id
    ]
    r = score(truth, alerts)
    assert r["incidents_detected_total"] == 2
    assert r["false_alarm_ids"] == ["a3"]


def test_accelerated_runs_use_sent_at_and_speed() -> None:
    wall = datetime(2030, 1, 1, 12, 0, tzinfo=SEOUL)  # when the publisher sent it
    truth = [
        rec("i1", "hh-1", T0, AlertKind.INTRUSION, due_s=30, sent_at=wall),
        rec("i2", "hh-2", T0, AlertKind.SENSOR_OFFLINE, kind="power_loss", sent_at=wall,
            match_from_s=-660, match_to_s=3000),
        rec("i3", "hh-3", T0, AlertKind.TAMPER, kind="tamper"),  # no sent_at: no latency
    ]  # fmt: skip
    alerts = [
        # event time right; created 30 s/60 = 0.5 s due, alert at +0.7 s: 0.2 s latency
        alert("a1", "intrusion", "hh-1", T0, wall + s(0.7)),
        # event_ts is a receive (wall) time: matched on the wall clock instead
        alert("a2", "sensor_offline", "hh-2", wall + s(1), wall + s(1.5)),
        alert("a3", "tamper", "hh-3", T0, wall + s(9)),
    ]
    r = score(truth, alerts, speed=60.0)
    assert r["incidents_detected_total"] == 3 and r["false_alarms"] == 0
    assert r["latency_samples"] == 2
    assert r["alert_latency_p50_s"] == pytest.approx(0.2)
    assert r["alert_latency_p99_s"] == pytest.approx(1.5)


def test_early_alerts_are_counted_and_clamped() -> None:
    truth = [rec("i1", "hh-1", T0, AlertKind.INTRUSION, due_s=30)]
    r = score(truth, [alert("a", "intrusion", "hh-1", T0, T0 + s(2))])
    assert r["alerts_early"] == 1 and r["alert_latency_p50_s"] == 0.0


def test_matches_and_percentile_helpers() -> None:
    r = rec("i1", "hh-1", T0, AlertKind.TAMPER, kind="tamper")
    assert matches(alert("a", "tamper", "hh-1", T0 + s(10)), r)
    assert not matches(alert("a", "tamper", "hh-1", T0 + s(200)), r)
    zulu = {"kind": "tamper", "household_id": "hh-1", "event_ts": "2026-11-17T17:41:08Z"}
    assert matches(zulu, r)
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    samples = [float(x) for x in range(1, 101)]
    assert percentile(samples, 50) == 50.0 and percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0


def test_speed_must_be_positive_and_zero_weeks_gives_none() -> None:
    with pytest.raises(ValueError):
        score([], [], speed=0)
    assert (
        score([], [alert("a", "tamper", "x", T0)], household_weeks=0)[
            "false_alarms_per_household_week"
        ]
        is None
    )


def test_scenario_truth_with_ideal_alerts_scores_perfectly() -> None:
    start = datetime(2026, 11, 2, tzinfo=SEOUL)
    end = start + timedelta(days=14)
    fleet = build_fleet(10, 3)
    sc = parse_scenario(
        {
            "name": "mix",
            "incidents": [
                {"kind": "night_intrusion", "per_household_week": 0.5},
                {"kind": "tamper", "count": 3},
                {"kind": "door_left_open", "count": 2},
            ],
            "faults": [
                {"kind": "power_loss", "count": 2},
                {"kind": "dying_battery", "count": 1, "duration": "12h"},
                {"kind": "duplicate", "count": 5},
            ],
        }
    )
    truth = expand_scenario(sc, fleet, 3, start, end).truth()
    ideal = [
        alert(f"a-{r.record_id}", str(r.expected_alert), r.household_key, r.at,
              r.at + s(r.due_s + 1))
        for r in truth
        if r.expected_alert is not None
    ]  # fmt: skip
    hw = household_weeks(len(fleet), start, end)
    report = score_run(truth, ideal, events_sent=10, events_stored=10, household_weeks=hw)
    assert report["incidents_injected"] == len(ideal) > 5
    assert report["detection_rate"] == 1.0 and report["false_alarms"] == 0
    assert report["alert_latency_p50_s"] == 1.0 and report["alert_latency_p99_s"] == 1.0
    assert report["household_weeks"] == 20.0
