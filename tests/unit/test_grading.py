"""Grading: properties (hypothesis) and table-driven examples on a small street."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.geo import DISTRICT_PROJECTION, Segment, SegmentIndex
from core.grading import (
    DEFAULT_PARAMS,
    GradeParams,
    Incident,
    SegmentGrade,
    detail_visible,
    grade_segments,
    incident_weight,
    kernel_weight,
    publish_grade,
    summarise_grades,
)
from core.models import Resolution

SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=SEOUL)
P = DISTRICT_PROJECTION


def _segment(sid: str, x0: float, y0: float, x1: float, y1: float, base: int) -> Segment:
    lat0, lon0 = P.to_latlon(x0, y0)
    lat1, lon1 = P.to_latlon(x1, y1)
    return Segment(sid, base, ((lon0, lat0), (lon1, lat1)))


# A street of 30 ten-metre segments running east from the origin, and a side street
# going north from its middle; base grades cycle 1..5.
STREET = [_segment(f"s{i:02d}", 10.0 * i, 0.0, 10.0 * (i + 1), 0.0, 1 + i % 5) for i in range(30)]
STREET += [
    _segment(f"n{i:02d}", 150.0, 10.0 * i, 150.0, 10.0 * (i + 1), 1 + (i * 2) % 5)
    for i in range(1, 15)
]
INDEX = SegmentIndex(STREET)
IDS = [s.segment_id for s in STREET]


def _incident(iid: str, x: float, y: float, age_days: float, confirmed: bool = True) -> Incident:
    lat, lon = P.to_latlon(x, y)
    return Incident(iid, lat, lon, NOW - timedelta(days=age_days), confirmed)


def _grade(
    incidents: list[Incident],
    households: dict[str, int] | None = None,
    previous: dict[str, int] | None = None,
    now: datetime = NOW,
    params: GradeParams = DEFAULT_PARAMS,
) -> list[SegmentGrade]:
    return grade_segments(INDEX, incidents, households or {}, previous or {}, params, now)


# --- strategies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    x: float
    y: float
    age: float
    confirmed: bool


specs = st.builds(
    Spec,
    x=st.floats(-200, 500, allow_nan=False),
    y=st.floats(-200, 350, allow_nan=False),
    age=st.floats(0, 900, allow_nan=False),
    confirmed=st.booleans(),
)
spec_lists = st.lists(specs, max_size=25)
households_st = st.dictionaries(st.sampled_from(IDS), st.integers(0, 6), max_size=12)
previous_st = st.dictionaries(st.sampled_from(IDS), st.integers(1, 5), max_size=20)


def _incidents(items: list[Spec], prefix: str = "i") -> list[Incident]:
    return [_incident(f"{prefix}{n}", s.x, s.y, s.age, s.confirmed) for n, s in enumerate(items)]


PROPS = settings(max_examples=60, deadline=None)


# --- properties -------------------------------------------------------------------------


@PROPS
@given(spec_lists, households_st, previous_st)
def test_bounded_and_never_better_than_base(
    items: list[Spec], households: dict[str, int], previous: dict[str, int]
) -> None:
    for g in _grade(_incidents(items), households, previous):
        assert 1 <= g.base_grade <= g.grade <= 5
        assert g.score >= 0
        assert math.isclose(g.weighted_incidents, sum(w for _, w in g.contributions), abs_tol=1e-9)


@PROPS
@given(spec_lists, specs, households_st, previous_st)
def test_monotone_in_confirmed_incidents(
    items: list[Spec], extra: Spec, households: dict[str, int], previous: dict[str, int]
) -> None:
    before = _grade(_incidents(items), households, previous)
    more = [*_incidents(items), _incident("extra", extra.x, extra.y, extra.age, True)]
    after = _grade(more, households, previous)
    for b, a in zip(before, after, strict=True):
        assert a.grade >= b.grade
        assert a.score >= b.score - 1e-12


@PROPS
@given(spec_lists, households_st, st.floats(0, 1000, allow_nan=False))
def test_decays_with_age(items: list[Spec], households: dict[str, int], days: float) -> None:
    now_grades = _grade(_incidents(items), households)
    later = _grade(_incidents(items), households, now=NOW + timedelta(days=days))
    for n, la in zip(now_grades, later, strict=True):
        assert la.grade <= n.grade
        assert la.score <= n.score + 1e-12


@PROPS
@given(spec_lists, spec_lists, households_st, previous_st)
def test_blind_to_false_alarms(
    items: list[Spec], noise: list[Spec], households: dict[str, int], previous: dict[str, int]
) -> None:
    real = _incidents(items)
    false_alarms = [
        _incident(f"fa{n}", s.x, s.y, s.age, confirmed=False) for n, s in enumerate(noise)
    ]
    assert _grade(real, households, previous) == _grade(real + false_alarms, households, previous)


@PROPS
@given(spec_lists, households_st, previous_st)
def test_hysteresis_only_holds_a_previous_step(
    items: list[Spec], households: dict[str, int], previous: dict[str, int]
) -> None:
    incidents = _incidents(items)
    fresh = _grade(incidents, households)
    held = _grade(incidents, households, previous)
    for f, h in zip(fresh, held, strict=True):
        prev = previous.get(f.segment_id)
        # Never above both what the score alone gives and what the segment had before.
        assert f.grade <= h.grade <= max(f.grade, prev if prev is not None else f.grade)
        assert h.held == (h.grade > f.grade)


@PROPS
@given(spec_lists, households_st)
def test_recompute_is_stable(items: list[Spec], households: dict[str, int]) -> None:
    incidents = _incidents(items)
    first = _grade(incidents, households)
    again = _grade(incidents, households, {g.segment_id: g.grade for g in first})
    assert [g.grade for g in again] == [g.grade for g in first]
    assert not any(g.changed for g in again)


@PROPS
@given(spec_lists, households_st, st.sampled_from(IDS), st.integers(1, 5))
def test_more_households_never_raise_a_grade(
    items: list[Spec], households: dict[str, int], where: str, extra: int
) -> None:
    incidents = _incidents(items)
    fewer = _grade(incidents, households)
    more = dict(households)
    more[where] = more.get(where, 0) + extra
    for a, b in zip(fewer, _grade(incidents, more), strict=True):
        assert b.grade <= a.grade


# --- examples ---------------------------------------------------------------------------

HALF_LIFE_200 = 2 ** (-200 / 180)
AGE_0_9 = 180 * math.log2(1 / 0.9)  # age at which an incident weighs 0.9


@pytest.mark.parametrize(
    ("name", "incidents", "households", "previous", "grade", "score"),
    [
        ("nothing", [], 1, None, 2, 0.0),
        ("one fresh incident on the segment", [(0, 0, True)], 1, None, 3, 0.5),
        ("a false alarm never counts", [(0, 0, False)], 1, None, 2, 0.0),
        ("two incidents", [(0, 0, True), (0, 0, True)], 1, None, 4, 1.0),
        ("three incidents", [(0, 0, True)] * 3, 1, None, 5, 1.5),
        ("no households: only the prior", [(0, 0, True)], 0, None, 4, 1.0),
        ("many households dilute", [(0, 0, True)], 5, None, 2, 1 / 6),
        ("75 m away: a quarter less than half weight", [(75, 0, True)], 1, None, 2, 0.28125),
        ("at the bandwidth: nothing", [(150, 0, True)], 1, None, 2, 0.0),
        ("one half-life: below +1", [(0, 180, True)], 1, None, 2, 0.25),
        ("one half-life, was +1: held", [(0, 180, True)], 1, 3, 3, 0.25),
        ("200 days, was +1: released", [(0, 200, True)], 1, 3, 2, HALF_LIFE_200 / 2),
        ("future incident ignored", [(0, -1, True)], 1, None, 2, 0.0),
        ("too old ignored", [(0, 731, True)], 1, None, 2, 0.0),
        ("was +3, score 1.0 still holds it", [(0, 0, True)] * 2, 1, 5, 5, 1.0),
        ("was +3, score 0.9 drops to +2", [(0, AGE_0_9, True)] * 2, 1, 5, 4, 0.9),
        ("previous below base ignored", [], 1, 1, 2, 0.0),
    ],
)
def test_single_segment_examples(
    name: str,
    incidents: list[tuple[float, float, bool]],
    households: int,
    previous: int | None,
    grade: int,
    score: float,
) -> None:
    seg = _segment("one", -5.0, 0.0, 5.0, 0.0, 2)
    incs = [_incident(f"x{n}", 0.0, dy, age, ok) for n, (dy, age, ok) in enumerate(incidents)]
    [g] = grade_segments(
        [seg],
        incs,
        {"one": households},
        {} if previous is None else {"one": previous},
        DEFAULT_PARAMS,
        NOW,
    )
    assert g.grade == grade, name
    assert g.score == pytest.approx(score), name


@pytest.mark.parametrize(
    ("distance", "weight"),
    [(0.0, 1.0), (75.0, 0.5625), (150.0, 0.0), (300.0, 0.0), (30.0, 0.9216)],
)
def test_kernel(distance: float, weight: float) -> None:
    assert kernel_weight(distance, 150.0) == pytest.approx(weight)


@pytest.mark.parametrize(
    ("distance", "age_days", "weight"),
    [(0, 0, 1.0), (0, 180, 0.5), (0, 360, 0.25), (75, 180, 0.28125), (0, 800, 0.0)],
)
def test_incident_weight(distance: float, age_days: float, weight: float) -> None:
    at = NOW - timedelta(days=age_days)
    assert incident_weight(distance, at, NOW, DEFAULT_PARAMS) == pytest.approx(weight)


def test_weights_agree_with_the_scalar_formula() -> None:
    inc = _incident("a", 40.0, 30.0, 90.0)
    grades = {g.segment_id: g for g in _grade([inc], {"s05": 1})}
    s03 = grades["s03"]
    # s03 runs from x=30 to x=40 on y=0: its nearest point to (40, 30) is (40, 0).
    expected = incident_weight(30.0, inc.occurred_at, NOW, DEFAULT_PARAMS)
    assert s03.contributions == (("a", pytest.approx(expected)),)


def test_contributions_explain_the_change() -> None:
    incidents = [_incident("near", 55.0, 0.0, 1.0), _incident("far", 55.0, 120.0, 10.0)]
    incidents.append(_incident("alarm", 55.0, 0.0, 1.0, confirmed=False))
    g = {g.segment_id: g for g in _grade(incidents, {"s05": 1})}["s05"]
    assert [i for i, _ in g.contributions] == ["near", "far"]
    assert g.contributions[0][1] > g.contributions[1][1]
    assert g.changed and g.before == g.base_grade
    text = g.explanation()
    assert f"{g.base_grade} -> {g.grade}" in text
    assert "near" in text and "far" in text and "alarm" not in text


def test_far_segments_stay_at_base() -> None:
    grades = _grade([_incident("a", 0.0, 0.0, 0.0)])
    for g in grades:
        if g.segment_id.startswith("n"):
            assert g.grade == g.base_grade and not g.contributions


def test_time_zones_do_not_matter() -> None:
    inc = _incident("a", 0.0, 0.0, 30.0)
    a = _grade([inc], now=NOW)
    b = _grade([inc], now=NOW.astimezone(UTC))
    assert a == b


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        Incident("a", 37.5, 126.9, datetime(2026, 1, 1), True)
    with pytest.raises(ValueError, match="aware"):
        grade_segments(INDEX, [], {}, {}, DEFAULT_PARAMS, datetime(2026, 1, 1))


def test_duplicate_incident_ids_are_refused() -> None:
    inc = _incident("same", 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="duplicate"):
        _grade([inc, inc])


def test_from_resolution() -> None:
    at = NOW - timedelta(days=1)
    assert Incident.from_resolution("a", 37.5, 126.9, at, Resolution.CONFIRMED).confirmed
    assert Incident.from_resolution("b", 37.5, 126.9, at, "confirmed").confirmed
    assert not Incident.from_resolution("c", 37.5, 126.9, at, Resolution.FALSE_ALARM).confirmed
    assert not Incident.from_resolution("d", 37.5, 126.9, at, None).confirmed


@pytest.mark.parametrize(
    "bad",
    [
        {"bandwidth_m": 0.0},
        {"half_life_days": -1.0},
        {"prior_households": 0.0},
        {"thresholds": ()},
        {"thresholds": (0.5, 0.5)},
        {"thresholds": (0.1, 0.2, 0.3, 0.4, 0.5)},
        {"hysteresis": 1.0},
    ],
)
def test_params_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GradeParams(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("households", "visible"), [(0, False), (2, False), (3, True), (9, True)])
def test_k_anonymity(households: int, visible: bool) -> None:
    g = {g.segment_id: g for g in _grade([_incident("secret", 55.0, 0.0, 1.0)])}["s05"]
    assert detail_visible(households) is visible
    public = publish_grade(g, households)
    assert public.grade == g.grade and public.base_grade == g.base_grade
    assert public.detail_suppressed is not visible
    text = str(public.to_dict())
    assert ("secret" in text) is visible
    if not visible:
        assert public.score is None and public.contributions is None
        assert public.incident_count is None


def test_k_is_a_parameter() -> None:
    g = _grade([_incident("secret", 55.0, 0.0, 1.0)])[5]
    assert publish_grade(g, 4, k=5).detail_suppressed
    assert not publish_grade(g, 5, k=5).detail_suppressed


def test_summary_counts_changes() -> None:
    first = _grade([_incident("a", 55.0, 0.0, 1.0)])
    summary = summarise_grades(first)
    assert summary.segments == len(STREET)
    assert summary.raised == summary.above_base > 0
    assert summary.lowered == 0
    assert sum(summary.by_grade.values()) == len(STREET)
    later = _grade([], previous={g.segment_id: g.grade for g in first})
    assert summarise_grades(later).lowered == summary.raised


def test_segments_or_index_give_the_same_answer() -> None:
    incidents = [_incident("a", 55.0, 3.0, 1.0), _incident("b", 150.0, 70.0, 40.0)]
    assert grade_segments(STREET, incidents, {}, {}, DEFAULT_PARAMS, NOW) == _grade(incidents)
