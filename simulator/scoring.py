"""Scoring a run: ground truth against the alerts the backend raised. Pure.

Matching rule
-------------
An alert is tied to a ground-truth record when all three hold:

1. **same household**: the alert's `household_id` equals the record's `household_id`
   (or its `sensor_id` the record's `sensor_id`); a record not yet bound to real ids
   compares its `household_key` instead (hand-made truth in tests);
2. **a kind the record explains**: `alert.kind` is in `record.explains` (which always
   holds `record.expected_alert`);
3. **in the window**: `alert.event_ts` lies in `[at + match_from_s, at + match_to_s]`
   (event time); or, when the record carries `sent_at` (the wall-clock time the publisher
   sent the trigger) and the alert `created_at`, `created_at` lies in
   `[sent_at + match_from_s / speed - 5 s, sent_at + match_to_s / speed + 60 s]` (wall
   time; for alerts whose `event_ts` is a receive time in accelerated runs).

A record with an `expected_alert` is an *incident*; it is **detected** when at least one
tied alert has exactly that kind. Every alert tied to no record is a **false alarm**. One
alert may explain several records; extra alerts of the expected kind for the same record
are counted as `repeat_alerts` (the SPEC folds repeats into one alert).

**Latency** of a detected incident: the earliest tied alert of the expected kind,
`created_at − reference`, where the reference is when the alert became due:
`sent_at + due_s / speed` when the publisher stamped `sent_at`, else `at + due_s` (valid
only in real-time runs, `speed == 1`; otherwise that incident has no latency sample).
`due_s` is the wait SPEC allows (entry delay, door-open limit, missed heartbeats).
Percentiles are nearest-rank over the samples, negative samples counted as 0 and reported
in `alerts_early`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.models import AlertKind
from simulator.truth import TruthRecord

MATCHING_RULE = (
    "alert ↔ record: same household (household_id, sensor_id, or household_key for unbound "
    "truth), alert.kind in record.explains, and event_ts within [at+match_from_s, "
    "at+match_to_s] (or created_at within the same window around sent_at, scaled by speed). "
    "Detected: a tied alert of the expected kind. False alarm: an alert tied to no record. "
    "Latency: created_at of the first tied expected alert minus (sent_at + due_s/speed), "
    "or minus (at + due_s) in real-time runs."
)
WALL_EARLY_S = 5.0
WALL_LATE_S = 60.0


@dataclass(frozen=True, slots=True)
class _Alert:
    index: int
    alert_id: str
    kind: str
    household_id: str | None
    sensor_id: str | None
    event_ts: datetime | None
    created_at: datetime | None


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _alerts(raw: Iterable[Mapping[str, Any]]) -> list[_Alert]:
    return [
        _Alert(
            index=i,
            alert_id=str(a.get("alert_id", i)),
            kind=str(a.get("kind", "")),
            household_id=_opt(a.get("household_id")),
            sensor_id=_opt(a.get("sensor_id")),
            event_ts=_parse_time(a.get("event_ts")),
            created_at=_parse_time(a.get("created_at")),
        )
        for i, a in enumerate(raw)
    ]


def _same_household(alert: _Alert, record: TruthRecord) -> bool:
    if record.household_id is None and record.sensor_id is None:
        return alert.household_id == record.household_key
    if record.household_id is not None and alert.household_id == record.household_id:
        return True
    return record.sensor_id is not None and alert.sensor_id == record.sensor_id


def _lookup_keys(record: TruthRecord) -> set[str]:
    if record.household_id is None and record.sensor_id is None:
        return {record.household_key}
    return {k for k in (record.household_id, record.sensor_id) if k is not None}


def _in_window(alert: _Alert, record: TruthRecord, speed: float) -> bool:
    if alert.event_ts is not None:
        lo = record.at + timedelta(seconds=record.match_from_s)
        hi = record.at + timedelta(seconds=record.match_to_s)
        if lo <= alert.event_ts <= hi:
            return True
    if record.sent_at is not None and alert.created_at is not None:
        lo = record.sent_at + timedelta(seconds=record.match_from_s / speed - WALL_EARLY_S)
        hi = record.sent_at + timedelta(seconds=record.match_to_s / speed + WALL_LATE_S)
        return lo <= alert.created_at <= hi
    return False


def matches(alert: Mapping[str, Any], record: TruthRecord, speed: float = 1.0) -> bool:
    """Whether `record` explains `alert` under the matching rule above."""
    a = _alerts([alert])[0]
    return (
        _same_household(a, record)
        and a.kind in {str(k) for k in record.explains}
        and _in_window(a, record, speed)
    )


def percentile(samples: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0-100); None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _latency(record: TruthRecord, created_at: datetime | None, speed: float) -> float | None:
    if created_at is None:
        return None
    if record.sent_at is not None:
        due = record.sent_at + timedelta(seconds=record.due_s / speed)
    elif speed == 1.0:
        due = record.at + timedelta(seconds=record.due_s)
    else:
        return None
    return (created_at - due).total_seconds()


def score_run(
    truth: Sequence[TruthRecord],
    alerts: Iterable[Mapping[str, Any]],
    *,
    events_sent: int,
    events_stored: int,
    household_weeks: float,
    speed: float = 1.0,
) -> dict[str, Any]:
    """The report of a run (see the module docstring for the matching rule)."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    parsed = _alerts(alerts)
    by_household: dict[str, list[TruthRecord]] = {}
    for r in truth:
        for key in _lookup_keys(r):
            by_household.setdefault(key, []).append(r)

    tied: dict[str, list[_Alert]] = {r.record_id: [] for r in truth}
    false_alarms: list[_Alert] = []
    for a in parsed:
        candidates = {
            id(r): r
            for key in (a.household_id, a.sensor_id)
            if key is not None
            for r in by_household.get(key, [])
        }
        hit = False
        for r in candidates.values():
            if (
                _same_household(a, r)
                and a.kind in {str(k) for k in r.explains}
                and _in_window(a, r, speed)
            ):
                tied[r.record_id].append(a)
                hit = True
        if not hit:
            false_alarms.append(a)

    incidents = [r for r in truth if r.expected_alert is not None]
    detected_by_alert: Counter[str] = Counter({str(k): 0 for k in AlertKind})
    per_kind: dict[str, dict[str, Any]] = {}
    latencies: list[float] = []
    missed: list[str] = []
    repeats = 0
    kind_latencies: dict[str, list[float]] = {}
    for r in incidents:
        assert r.expected_alert is not None
        stats = per_kind.setdefault(
            r.kind, {"injected": 0, "detected": 0, "missed": 0, "expected_alert": {}}
        )
        stats["injected"] += 1
        expected = Counter(stats["expected_alert"])
        expected[str(r.expected_alert)] += 1
        stats["expected_alert"] = dict(expected)
        hits = [a for a in tied[r.record_id] if a.kind == str(r.expected_alert)]
        if not hits:
            stats["missed"] += 1
            missed.append(r.record_id)
            continue
        stats["detected"] += 1
        detected_by_alert[str(r.expected_alert)] += 1
        repeats += len({a.alert_id for a in hits}) - 1
        created = [a.created_at for a in hits if a.created_at is not None]
        lat = _latency(r, min(created) if created else None, speed)
        if lat is not None:
            latencies.append(lat)
            kind_latencies.setdefault(r.kind, []).append(lat)
    for kind, stats in per_kind.items():
        samples = [max(0.0, x) for x in kind_latencies.get(kind, [])]
        stats["latency_p50_s"] = _round(percentile(samples, 50))

    clamped = [max(0.0, x) for x in latencies]
    n_detected = sum(detected_by_alert.values())
    fa = len(false_alarms)
    return {
        "events_sent": events_sent,
        "events_stored": events_stored,
        "events_lost": max(0, events_sent - events_stored),
        "events_unexpected": max(0, events_stored - events_sent),
        "incidents_injected": len(incidents),
        "incidents_detected": dict(detected_by_alert),
        "incidents_detected_total": n_detected,
        "incidents_missed": len(incidents) - n_detected,
        "detection_rate": _round(n_detected / len(incidents), 4) if incidents else None,
        "incidents_by_kind": per_kind,
        "missed_record_ids": missed[:100],
        "faults_injected": dict(Counter(r.kind for r in truth if r.expected_alert is None)),
        "alerts_total": len(parsed),
        "alerts_explained": len(parsed) - fa,
        "repeat_alerts": repeats,
        "false_alarms": fa,
        "false_alarms_by_kind": dict(Counter(a.kind for a in false_alarms)),
        "false_alarm_ids": [a.alert_id for a in false_alarms[:100]],
        "household_weeks": round(household_weeks, 3),
        "false_alarms_per_household_week": (
            round(fa / household_weeks, 4) if household_weeks > 0 else None
        ),
        "alert_latency_p50_s": _round(percentile(clamped, 50)),
        "alert_latency_p99_s": _round(percentile(clamped, 99)),
        "alert_latency_max_s": _round(max(clamped) if clamped else None),
        "latency_samples": len(latencies),
        "alerts_early": sum(1 for x in latencies if x < 0),
        "matching_rule": MATCHING_RULE,
    }
