"""The night_opening routine model: cold start, learning, smoothing, forgetting."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.models import DEFAULT_NIGHT_WINDOW, NightWindow
from core.routine import (
    DEFAULT_ROUTINE_PARAMS,
    DayType,
    RoutineModel,
    day_type_of,
    evidence_at,
    exposure_days,
    is_unusual,
    night_of,
    update,
)

SEOUL = ZoneInfo("Asia/Seoul")
START = datetime(2026, 11, 2, 0, 0, tzinfo=SEOUL)  # a Monday


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return START + timedelta(days=day, hours=hh, minutes=mm)


def learn(days: Iterable[int], times: Iterable[tuple[int, int]]) -> RoutineModel:
    model = RoutineModel.empty(started_at=START)
    for d in days:
        for hh, mm in times:
            model = update(model, at(d, hh, mm))
    return model


OFFICE = learn(range(21), [(8, 5), (19, 20)])  # never out at night
NIGHT_SHIFT = learn(range(21), [(2, 50), (3, 10), (11, 0)])  # out around 03:00
EVENING_SHIFT = learn(range(21), [(7, 30), (21, 30)])  # home 07:30, out 21:30


@pytest.mark.parametrize(
    ("name", "model", "when", "window", "unusual", "why"),
    [
        ("cold start, night", RoutineModel.empty(START), at(0, 23, 30), None, True, "cold start"),
        ("cold start, day", RoutineModel.empty(START), at(0, 14, 0), None, False, "outside"),
        ("no model start yet", RoutineModel.empty(), at(0, 3, 0), None, True, "cold start"),
        ("never out at night, 03:00", OFFICE, at(21, 3, 0), None, True, "unusual"),
        ("never out at night, 19:30", OFFICE, at(21, 19, 30), None, False, "outside"),
        ("night shift, 03:00", NIGHT_SHIFT, at(21, 3, 0), None, False, "usual"),
        ("night shift, 23:00 is far", NIGHT_SHIFT, at(21, 23, 0), None, True, "unusual"),
        ("out 21:30, intruder 23:15", EVENING_SHIFT, at(21, 23, 15), None, True, "unusual"),
        ("out 21:30, 05:50 before home", EVENING_SHIFT, at(22, 5, 50), None, True, "unusual"),
        ("window 22-02, 01:30 inside", OFFICE, at(21, 1, 30), "22:00-02:00", True, "unusual"),
        ("window 22-02, 02:30 outside", OFFICE, at(21, 2, 30), "22:00-02:00", False, "outside"),
        ("window 22-02, 22:10 inside", OFFICE, at(21, 22, 10), "22:00-02:00", True, "unusual"),
        ("daytime window 09-17", OFFICE, at(21, 12, 0), "09:00-17:00", True, "unusual"),
    ],
)
def test_judgements(
    name: str,
    model: RoutineModel,
    when: datetime,
    window: str | None,
    unusual: bool,
    why: str,
) -> None:
    nw = NightWindow.parse(window) if window else DEFAULT_NIGHT_WINDOW
    judgement = is_unusual(model, when, nw)
    assert judgement.unusual is unusual, f"{name}: {judgement.explanation}"
    assert why in judgement.explanation, judgement.explanation


def test_cold_start_ends_after_min_history_days() -> None:
    # a student back at 01:00 every night: reported on the first nights only
    model = RoutineModel.empty(started_at=START)
    flagged, expected = [], []
    cold_for = timedelta(days=DEFAULT_ROUTINE_PARAMS.min_history_days)
    for d in range(10):
        opened = at(d + 1, 1, 0)
        flagged.append(is_unusual(model, opened, DEFAULT_NIGHT_WINDOW).unusual)
        expected.append(opened - START < cold_for)
        model = update(model, opened)
    assert flagged[:2] == expected[:2] == [True, True]  # cold start
    assert not any(expected[2:])
    # after it, the habit is usual; only the first weekend night may still be asked about
    assert sum(flagged[2:]) <= 1 and not any(flagged[6:])


def test_weekend_nights_pool_friday_and_saturday() -> None:
    # late returns only on Friday nights (00:40 on Saturday morning), four weeks
    model = RoutineModel.empty(started_at=START)
    for week in range(4):
        model = update(model, at(7 * week + 5, 0, 40))
        for d in range(7):
            model = update(model, at(7 * week + d, 18, 0))
    assert not is_unusual(model, at(34, 0, 50), DEFAULT_NIGHT_WINDOW).unusual  # Sat night
    deep = is_unusual(model, at(30, 4, 0), DEFAULT_NIGHT_WINDOW)  # Thursday 04:00
    assert deep.unusual, deep.explanation


def test_day_types_start_at_noon() -> None:
    assert day_type_of(datetime(2026, 11, 7, 1, 0, tzinfo=SEOUL)) is DayType.WEEKEND  # Sat 01:00
    assert day_type_of(datetime(2026, 11, 9, 1, 0, tzinfo=SEOUL)) is DayType.WEEKDAY  # Mon 01:00
    assert day_type_of(datetime(2026, 11, 8, 13, 0, tzinfo=SEOUL)) is DayType.WEEKDAY  # Sun 13:00
    assert night_of(datetime(2026, 11, 7, 1, 0, tzinfo=SEOUL)).isoformat() == "2026-11-06"


def test_smoothing_wraps_across_midnight() -> None:
    model = update(RoutineModel.empty(started_at=START), at(1, 23, 55))
    before, _ = evidence_at(model, at(2, 23, 50))
    after, _ = evidence_at(model, at(3, 0, 10))
    assert before > 0.3 and after > 0.3


def test_old_habits_fade() -> None:
    model = learn(range(10), [(3, 0)])
    assert not is_unusual(model, at(10, 3, 5), DEFAULT_NIGHT_WINDOW).unusual
    much_later = at(200, 3, 5)
    judgement = is_unusual(model, much_later, DEFAULT_NIGHT_WINDOW)
    assert judgement.unusual, judgement.explanation


@pytest.mark.parametrize(
    "when",
    [
        datetime(1900, 1, 1, 3, 0, tzinfo=SEOUL),  # a clock far behind (replay trusts it)
        at(20, 3, 0) - timedelta(minutes=5),  # a late opening, just before the last one
        datetime(2999, 12, 31, 3, 0, tzinfo=SEOUL),
    ],
)
def test_any_time_judges_without_overflow(when: datetime) -> None:
    """Issue 9 #1: an opening long before the model's last one raised OverflowError
    (un-fading the counts) and stalled the bridge; the counts are now taken as they are."""
    same, cross = evidence_at(NIGHT_SHIFT, when)
    assert math.isfinite(same) and math.isfinite(cross)
    judgement = is_unusual(NIGHT_SHIFT, when, DEFAULT_NIGHT_WINDOW)
    assert math.isfinite(judgement.score)
    update(NIGHT_SHIFT, when)


def test_exposure_counts_observed_days_by_type() -> None:
    model = RoutineModel.empty(started_at=START)
    same, other = exposure_days(model, at(14, 12, 0))  # Monday noon: a weekday night starts
    tau = DEFAULT_ROUTINE_PARAMS.time_constant_days
    assert same + other == pytest.approx(tau * (1 - math.exp(-14.5 / tau)))  # 14.5 days, faded
    assert same > 2 * other  # 5 of every 7 nights are weekday nights


def test_negative_weight_takes_evidence_back_never_below_zero() -> None:
    model = update(RoutineModel.empty(started_at=START), at(1, 3, 0), weight=0.5)
    model = update(model, at(1, 3, 0), weight=-1.0)
    assert min(model.weekday) == 0.0 and min(model.weekend) == 0.0
    assert evidence_at(model, at(2, 3, 0)) == (0.0, 0.0)


def test_round_trips_through_json() -> None:
    data = json.loads(json.dumps(NIGHT_SHIFT.to_dict()))
    again = RoutineModel.from_dict(data)
    for when in (at(21, 3, 0), at(21, 23, 0)):
        a = is_unusual(NIGHT_SHIFT, when, DEFAULT_NIGHT_WINDOW)
        b = is_unusual(again, when, DEFAULT_NIGHT_WINDOW)
        assert a.unusual == b.unusual and a.score == pytest.approx(b.score, abs=1e-5)
    assert again.started_at == START and again.openings == NIGHT_SHIFT.openings


@pytest.mark.parametrize(
    "data",
    [
        {"version": 99},
        {**OFFICE.to_dict(), "weekday": [0.0] * 10},
        {**OFFICE.to_dict(), "started_at": "2026-11-02T00:00:00"},
    ],
)
def test_bad_model_data_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RoutineModel.from_dict(data)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        update(RoutineModel.empty(), datetime(2026, 11, 2, 3, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        is_unusual(OFFICE, datetime(2026, 11, 2, 3, 0), DEFAULT_NIGHT_WINDOW)


def test_explanation_names_the_evidence() -> None:
    judgement = is_unusual(OFFICE, at(21, 3, 0), DEFAULT_NIGHT_WINDOW)
    assert "03:00" in judgement.explanation and "23:00-06:00" in judgement.explanation
    assert "similar openings" in judgement.explanation
    assert judgement.score < DEFAULT_ROUTINE_PARAMS.threshold_rate
    assert time(3, 0) == at(21, 3, 0).time()
