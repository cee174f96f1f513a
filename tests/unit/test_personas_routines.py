"""Personas and routines: deterministic by seed, and believable."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, datetime, time, timedelta
from functools import cache

import pytest

from core.models import Mode
from simulator.personas import (
    CLASSIC_PERSONAS,
    NEW_PERSONAS,
    SEOUL,
    ArmingHabit,
    DayPlan,
    Household,
    PersonaKind,
    Purpose,
    build_fleet,
    iter_day_plans,
    make_household,
    rotating_shift,
)
from simulator.routines import (
    ItemKind,
    Presence,
    TimelineItem,
    build_routine,
    generate_timeline,
    iter_fleet_timeline,
    parse_door_log,
    plans_for,
    replay_door_log,
)

START = datetime(2026, 11, 2, tzinfo=SEOUL)  # a Monday
END = START + timedelta(days=28)
SEED = 20261121


@cache
def fleet(n: int = 20, seed: int = SEED) -> tuple[Household, ...]:
    return tuple(build_fleet(n, seed))


@cache
def timeline(h: Household, heartbeats: bool = False) -> tuple[TimelineItem, ...]:
    return tuple(generate_timeline(h, START, END, heartbeats=heartbeats))


def of(persona: PersonaKind) -> list[Household]:
    return [h for h in fleet() if h.persona is persona]


def local(t: datetime) -> datetime:
    return t.astimezone(SEOUL)


def test_fleet_is_deterministic_and_covers_every_persona() -> None:
    assert build_fleet(20, SEED) == build_fleet(20, SEED)
    assert build_fleet(20, SEED) != build_fleet(20, SEED + 1)
    assert {h.persona for h in build_fleet(5, 1)} == set(CLASSIC_PERSONAS)
    assert [h.key for h in build_fleet(3, 1)] == ["hh-00000", "hh-00001", "hh-00002"]
    # growing the fleet does not change the households already in it
    assert build_fleet(30, SEED)[:20] == build_fleet(20, SEED)


def test_persona_mix_is_weighted_and_deterministic() -> None:
    mix = {PersonaKind.RETIREE: 1.0}
    assert {h.persona for h in build_fleet(10, 3, mix)} == {PersonaKind.RETIREE}
    assert build_fleet(10, 3, {PersonaKind.STUDENT: 1, PersonaKind.RETIREE: 1}) == build_fleet(
        10, 3, {PersonaKind.STUDENT: 1, PersonaKind.RETIREE: 1}
    )


def test_same_seed_same_timeline_other_seed_other_timeline() -> None:
    h = make_household(SEED, 2)
    a = generate_timeline(h, START, END)
    assert a == generate_timeline(make_household(SEED, 2), START, END)
    assert a != generate_timeline(make_household(SEED + 1, 2), START, END)


def test_timeline_is_ordered_aware_seoul_and_inside_the_period() -> None:
    for h in fleet():
        items = timeline(h, heartbeats=True)
        assert items[0].kind is ItemKind.MODE and items[0].at == START
        assert all(a.at <= b.at for a, b in itertools.pairwise(items))
        for i in items:
            assert i.at.utcoffset() == timedelta(hours=9)
            assert START <= i.at < END


def test_doors_open_and_close_in_pairs_5_to_40_seconds() -> None:
    for h in fleet():
        doors = [i for i in timeline(h) if i.kind in (ItemKind.OPEN, ItemKind.CLOSE)]
        assert doors, h.key
        assert [d.kind for d in doors[::2]] == [ItemKind.OPEN] * len(doors[::2])
        assert [d.kind for d in doors[1::2]] == [ItemKind.CLOSE] * len(doors[1::2])
        for o, c in zip(doors[::2], doors[1::2], strict=True):
            assert 4.0 <= (c.at - o.at).total_seconds() <= 40.0


def test_office_worker_leaves_weekdays_between_7_and_9_and_not_on_weekends() -> None:
    workers = of(PersonaKind.OFFICE_WORKER)
    assert workers
    commutes = 0
    for h in workers:
        for plan in plans_for(h, START, END):
            for o in plan.outings:
                if o.purpose is Purpose.COMMUTE:
                    commutes += 1
                    assert plan.day.weekday() < 5
                    assert time(7, 0) <= o.leave.time() <= time(9, 0)
                    assert o.back > o.leave + timedelta(hours=8)
            if plan.day.weekday() >= 5:
                assert plan.wake.time() >= time(7, 30)
    assert commutes >= 15 * len(workers)


def test_night_shift_out_2130_home_0730() -> None:
    workers = of(PersonaKind.NIGHT_SHIFT)
    assert workers
    total = 0
    for h in workers:
        shifts = [
            o
            for plan in plans_for(h, START, END)
            for o in plan.outings
            if o.purpose is Purpose.SHIFT
        ]
        total += len(shifts)
        assert len(shifts) >= 10  # five nights a week, less trips away
        for o in shifts:
            assert time(21, 15) <= o.leave.time() <= time(21, 45)
            assert o.back.date() == o.leave.date() + timedelta(days=1)
            assert time(7, 0) <= o.back.time() <= time(8, 0)
        # and the door says so: opens around 21:30 and 07:30 on most days
        opens = [local(i.at) for i in timeline(h) if i.kind is ItemKind.OPEN]
        assert sum(time(21, 15) <= t.time() <= time(21, 45) for t in opens) >= len(shifts) - 1
        assert sum(time(7, 0) <= t.time() <= time(8, 0) for t in opens) >= len(shifts) - 1
    assert total >= 17 * len(workers)


def night_opens(h: Household) -> int:
    return sum(
        h.night_window.contains(local(i.at).time()) for i in timeline(h) if i.kind is ItemKind.OPEN
    )


def test_students_come_home_late_retirees_do_not() -> None:
    students = sum(night_opens(h) for h in of(PersonaKind.STUDENT))
    retirees = [i for h in of(PersonaKind.RETIREE) for i in timeline(h) if i.kind is ItemKind.OPEN]
    assert students >= 4 * len(of(PersonaKind.STUDENT))
    # retirees: nothing between 23:00 and 05:00 (dawn walks may start before 06:00)
    assert not [i for i in retirees if local(i.at).hour in (23, 0, 1, 2, 3, 4)]


def test_retiree_dawn_walk_and_early_bed() -> None:
    for h in of(PersonaKind.RETIREE):
        plans = list(plans_for(h, START, END))
        walks = [o for p in plans for o in p.outings if o.purpose is Purpose.WALK]
        assert walks and all(o.leave.time() < time(7, 30) for o in walks)
        at_home = [p for p in plans if p.bed.date() == p.day]
        assert sum(p.bed.time() <= time(23, 0) for p in at_home) >= 0.9 * len(at_home)


def test_weekends_differ_from_weekdays_for_office_workers() -> None:
    h = of(PersonaKind.OFFICE_WORKER)[0]
    by_kind: dict[bool, list[time]] = {True: [], False: []}
    for plan in plans_for(h, START, END):
        by_kind[plan.day.weekday() >= 5].append(plan.wake.time())
    weekday_mean = sum(t.hour * 60 + t.minute for t in by_kind[False]) / len(by_kind[False])
    weekend_mean = sum(t.hour * 60 + t.minute for t in by_kind[True]) / len(by_kind[True])
    assert weekend_mean > weekday_mean + 60


def test_trips_away_for_days_happen_and_the_door_is_quiet_meanwhile() -> None:
    trips = []
    for h in build_fleet(30, SEED):
        for plan in iter_day_plans(h, date(2026, 1, 1), date(2026, 4, 30)):
            trips += [(h, o) for o in plan.outings if o.purpose is Purpose.TRIP]
    assert len(trips) >= 5
    h, trip = trips[0]
    assert trip.back - trip.leave >= timedelta(days=1, hours=12)
    start = trip.leave - timedelta(days=1)
    items = generate_timeline(h, start, trip.back + timedelta(days=1))
    inside = [
        i
        for i in items
        if i.kind is ItemKind.OPEN and trip.leave + timedelta(minutes=5) < i.at < trip.back
    ]
    assert inside == []


def test_deliveries_and_rubbish_runs_happen() -> None:
    purposes = Counter(
        o.purpose for h in fleet() for p in plans_for(h, START, END) for o in p.outings
    )
    assert purposes[Purpose.RUBBISH] >= 20 * 2
    parcels = sum(len(p.deliveries) for h in fleet() for p in plans_for(h, START, END))
    assert parcels >= 20


def test_own_routine_never_leaves_the_door_open_while_armed_past_the_entry_delay() -> None:
    """Coming home to `away` she disarms within a few seconds; armed `night` she disarms
    before she opens the door: her routine alone never makes an intrusion."""
    for h in fleet():
        mode = Mode.DISARMED
        items = timeline(h)
        for n, i in enumerate(items):
            if i.kind is ItemKind.MODE:
                assert i.mode is not None
                mode = i.mode
            elif i.kind is ItemKind.OPEN and mode in (Mode.AWAY, Mode.NIGHT):
                assert mode is Mode.AWAY, f"{h.key} opened the door armed night at {i.at}"
                later = [j for j in items[n + 1 :] if j.kind is ItemKind.MODE][:1]
                assert later and later[0].mode in (Mode.HOME, Mode.DISARMED)
                assert 3.0 <= (later[0].at - i.at).total_seconds() <= 20.0


def test_arming_habits_show_in_the_modes() -> None:
    for h in fleet():
        modes = Counter(i.mode for i in timeline(h) if i.kind is ItemKind.MODE)
        if h.arming is ArmingHabit.NEVER:
            assert modes == Counter({Mode.DISARMED: 1})
        if h.arming.arms_away:
            assert modes[Mode.AWAY] >= 5
        else:
            assert modes[Mode.AWAY] == 0
        if h.arming.arms_night:
            assert modes[Mode.NIGHT] >= 10
        else:
            assert modes[Mode.NIGHT] == 0


def test_heartbeats_every_600_s_with_battery_draining_slowly() -> None:
    h = fleet()[0]
    beats = [i for i in timeline(h, heartbeats=True) if i.kind is ItemKind.HEARTBEAT]
    gaps = {(b.at - a.at).total_seconds() for a, b in itertools.pairwise(beats)}
    assert gaps == {600.0}
    assert len(beats) in (28 * 144 - 1, 28 * 144)
    levels = [b.battery for b in beats]
    assert all(x is not None and 20 < x <= 100 for x in levels)
    assert levels == sorted(levels, reverse=True, key=lambda x: x or 0)
    assert all(b.rssi is not None and -120 <= b.rssi <= 0 for b in beats)
    doors = [i for i in timeline(h, heartbeats=True) if i.kind is ItemKind.OPEN]
    assert all(d.battery is not None and d.rssi is not None for d in doors)


def test_fleet_timeline_merges_by_time() -> None:
    items = list(iter_fleet_timeline(fleet()[:5], START, START + timedelta(days=2)))
    assert all(a.at <= b.at for a, b in itertools.pairwise(items))
    assert {i.household_key for i in items} == {h.key for h in fleet()[:5]}


def test_routine_answers_where_she_is_and_what_mode_is_set() -> None:
    h = of(PersonaKind.NIGHT_SHIFT)[0]
    r = build_routine(h, START, END)
    shifts = [
        o
        for plan in plans_for(h, START, END)
        for o in plan.outings
        if o.purpose is Purpose.SHIFT and o.leave > START
    ]
    mid = shifts[0].leave + timedelta(hours=5)  # ~02:30, at work
    assert r.presence_at(mid) is Presence.OUT
    assert not r.door_quiet(shifts[0].leave, timedelta(minutes=1))
    assert r.door_quiet(mid, timedelta(hours=1))
    last_mode = [i.mode for i in timeline(h) if i.kind is ItemKind.MODE and i.at <= mid][-1]
    assert r.mode_at(mid) is last_mode
    assert 2 not in r.open_hours()


@pytest.mark.parametrize("bad", [(END, START), (START.replace(tzinfo=None), END)])
def test_period_must_be_aware_and_forward(bad: tuple[datetime, datetime]) -> None:
    with pytest.raises(ValueError):
        generate_timeline(fleet()[0], *bad)


ORDONEZ_SAMPLE = """Start time          \tEnd time            \tLocation\tType\t\tPlace
--------------------\t--------------------\t--------\t--------\t-----
2011-11-28 02:27:59\t\t2011-11-28 10:18:11\t\tBed\t\t\tPressure\tBedroom
2011-11-28 13:09:31\t\t2011-11-28 13:09:35\t\tMaindoor\tMagnetic\tEntrance
2011-11-28 13:09:31\t\t2011-11-28 13:09:35\t\tMaindoor\tMagnetic\tEntrance
2011-11-28 13:28:59\t\t2011-11-28 13:29:09\t\tMaindoor\tMagnetic\tEntrance
2011-12-11 00:56:01\t\t2011-12-11 00:56:05\t\tMaindoor\tMagnetic\tEntrance
"""


def test_real_door_log_replays_as_one_household_keeping_weekdays() -> None:
    assert len(parse_door_log(ORDONEZ_SAMPLE)) == 3  # the repeated line counts once
    h = make_household(SEED, 0)
    start = datetime(2026, 11, 16, tzinfo=SEOUL)  # a Monday, like 2011-11-28
    items = replay_door_log(h, ORDONEZ_SAMPLE, start)
    assert items[0].kind is ItemKind.MODE and items[0].at == start
    opens = [i.at for i in items if i.kind is ItemKind.OPEN]
    assert opens == [
        datetime(2026, 11, 16, 13, 9, 31, tzinfo=SEOUL),
        datetime(2026, 11, 16, 13, 28, 59, tzinfo=SEOUL),
        datetime(2026, 11, 29, 0, 56, 1, tzinfo=SEOUL),
    ]
    beats = [i for i in items if i.kind is ItemKind.HEARTBEAT]
    assert beats[-1].at < datetime(2026, 11, 30, tzinfo=SEOUL) and len(beats) > 13 * 144
    assert all(a.at <= b.at for a, b in itertools.pairwise(items))
    with pytest.raises(ValueError, match="no door openings"):
        replay_door_log(h, "nothing here", start)


# --- the new lives (issue 15): each habit has the stated shape -----------------------

LIVES_FIRST = date(2026, 10, 5)  # a Monday
LIVES_WEEKS = 8


def life_plans(kind: PersonaKind, index: int) -> list[DayPlan]:
    hh = make_household(SEED, index, kind)
    return list(
        iter_day_plans(
            hh, LIVES_FIRST, LIVES_FIRST + timedelta(weeks=LIVES_WEEKS) - timedelta(days=1)
        )
    )


def hours(value: datetime, plan: DayPlan) -> float:
    """Hours after local midnight of the plan's day (may exceed 24)."""
    midnight = datetime.combine(plan.day, time(0), tzinfo=value.tzinfo)
    return (value - midnight).total_seconds() / 3600


def door_times(plan: DayPlan) -> list[datetime]:
    return sorted([t for o in plan.outings for t in (o.leave, o.back)] + list(plan.deliveries))


def in_night(value: datetime) -> bool:
    t = value.time()
    return t >= time(23, 0) or t < time(6, 0)


def test_classic_fleet_is_unchanged_by_the_new_lives() -> None:
    # round-robin over the classic five only; the new kinds appear only when asked for
    assert [h.persona for h in build_fleet(10, 3)] == list(CLASSIC_PERSONAS) * 2
    assert all(h.habit_nights == frozenset() and h.habit_hour == 0.0 for h in build_fleet(10, 3))
    mixed = build_fleet(14, 3, kinds=NEW_PERSONAS)
    assert [h.persona for h in mixed] == list(NEW_PERSONAS) * 2
    assert len(NEW_PERSONAS) == 7 and not set(NEW_PERSONAS) & set(CLASSIC_PERSONAS)


@pytest.mark.parametrize("kind", NEW_PERSONAS)
def test_new_lives_are_deterministic_for_a_seed(kind: PersonaKind) -> None:
    a, b = make_household(SEED, 4, kind), make_household(SEED, 4, kind)
    assert a == b
    assert life_plans(kind, 4) == life_plans(kind, 4)
    assert make_household(SEED + 1, 4, kind) != a
    assert a.trip_rate == 0.0  # no trips: each habit stays on its own nights


@pytest.mark.parametrize("index", range(6))
def test_baker_leaves_0415_0445_on_exactly_six_days_a_week(index: int) -> None:
    plans = life_plans(PersonaKind.BAKER, index)
    assert len(plans) == 7 * LIVES_WEEKS  # no trips
    by_week: Counter[int] = Counter()
    off_days = set()
    for plan in plans:
        early = [o for o in plan.outings if hours(o.leave, plan) < 6.0]
        if early:
            assert len(early) == 1 and 4.25 <= hours(early[0].leave, plan) <= 4.75
            by_week[plan.day.isocalendar().week] += 1
        else:
            off_days.add(plan.day.weekday())
            assert all(hours(t, plan) >= 6.0 for t in door_times(plan))
    assert set(by_week.values()) == {6}
    assert len(off_days) == 1  # one fixed day off


@pytest.mark.parametrize("index", range(6))
def test_bar_staff_home_0200_0300_on_friday_and_saturday_nights(index: int) -> None:
    for plan in life_plans(PersonaKind.BAR_STAFF, index):
        shifts = [o for o in plan.outings if o.purpose is Purpose.SHIFT]
        wd = plan.day.weekday()
        if wd in (4, 5):
            assert len(shifts) == 1 and 26.0 <= hours(shifts[0].back, plan) <= 27.0
        elif wd in (2, 3, 6):
            assert len(shifts) == 1 and 24.25 <= hours(shifts[0].back, plan) <= 25.25
        else:
            assert shifts == []
        # nothing else of hers between 02:00 and 03:00 on the other nights
        if wd not in (4, 5):
            assert not any(26.0 <= hours(t, plan) <= 27.0 for t in door_times(plan))


@pytest.mark.parametrize("index", range(6))
def test_rotating_shift_changes_every_week(index: int) -> None:
    hh = make_household(SEED, index, PersonaKind.ROTATING_SHIFT)
    leave_hour = {0: 6.17, 1: 14.17, 2: 22.17}
    back_hour = {0: 15.6, 1: 23.6, 2: 31.67}
    weeks: dict[int, set[int]] = {}
    for plan in life_plans(PersonaKind.ROTATING_SHIFT, index):
        shifts = [o for o in plan.outings if o.purpose is Purpose.SHIFT]
        if plan.day.weekday() >= 5:
            assert shifts == []
            continue
        assert len(shifts) == 1
        shift = rotating_shift(hh, plan.day)
        assert abs(hours(shifts[0].leave, plan) - leave_hour[shift]) < 0.2
        assert abs(hours(shifts[0].back, plan) - back_hour[shift]) < 0.35
        weeks.setdefault(plan.day.isocalendar().week, set()).add(shift)
    assert all(len(s) == 1 for s in weeks.values())  # one shift a week
    order = [next(iter(weeks[w])) for w in sorted(weeks)]
    assert len(order) == LIVES_WEEKS
    assert all((b - a) % 3 == 1 for a, b in itertools.pairwise(order))  # day→evening→night
    # and across a year end too (ISO week numbers restart there)
    assert rotating_shift(hh, date(2026, 12, 28)) != rotating_shift(hh, date(2027, 1, 4))


@pytest.mark.parametrize("index", range(8))
def test_homebody_never_opens_between_2300_and_0600(index: int) -> None:
    plans = life_plans(PersonaKind.HOMEBODY, index)
    assert sum(len(p.outings) + len(p.deliveries) for p in plans) > 40
    assert not [t for p in plans for t in door_times(p) if in_night(t)]
    hh = make_household(SEED, index, PersonaKind.HOMEBODY)
    routine = build_routine(
        hh, datetime(2026, 10, 8, tzinfo=SEOUL), datetime(2026, 11, 20, tzinfo=SEOUL)
    )
    assert routine.door_opens and not [t for t in routine.door_opens if in_night(t)]


@pytest.mark.parametrize("index", range(6))
def test_late_shift_late_habit_on_some_weekdays_only(index: int) -> None:
    hh = make_household(SEED, index, PersonaKind.LATE_SHIFT)
    assert len(hh.habit_nights) in (3, 4) and hh.habit_nights <= set(range(5))
    assert 25.5 <= hh.habit_hour <= 27.0 and 0.25 <= hh.habit_sd_h <= 0.35
    for plan in life_plans(PersonaKind.LATE_SHIFT, index):
        late = [t for t in door_times(plan) if in_night(t)]
        if plan.day.weekday() in hh.habit_nights:
            assert len(late) == 1
            assert abs(hours(late[0], plan) - hh.habit_hour) <= 2.5 * hh.habit_sd_h + 0.01
        else:
            assert late == []  # no late habit on the other nights


@pytest.mark.parametrize("index", range(6))
def test_late_deliveries_after_midnight_on_some_nights(index: int) -> None:
    plans = life_plans(PersonaKind.LATE_DELIVERIES, index)
    late_nights = 0
    for plan in plans:
        late = [d for d in plan.deliveries if hours(d, plan) >= 24.0]
        assert all(24.15 <= hours(d, plan) <= 25.5 for d in late) and len(late) <= 1
        assert all(not in_night(o.leave) and not in_night(o.back) for o in plan.outings)
        late_nights += bool(late)
        if late:
            assert plan.bed > late[0]
    assert 0.1 * len(plans) <= late_nights <= 0.6 * len(plans)  # some nights, not all


@pytest.mark.parametrize("index", range(6))
def test_rubbish_runs_on_two_fixed_nights(index: int) -> None:
    hh = make_household(SEED, index, PersonaKind.RUBBISH_NIGHTS)
    assert len(hh.habit_nights) == 2
    for plan in life_plans(PersonaKind.RUBBISH_NIGHTS, index):
        runs = [o for o in plan.outings if o.purpose is Purpose.RUBBISH]
        if plan.day.weekday() in hh.habit_nights:
            assert len(runs) == 1 and abs(hours(runs[0].leave, plan) - hh.habit_hour) <= 0.26
            assert in_night(runs[0].leave) and runs[0].short
        else:
            assert runs == []
        assert [t for t in door_times(plan) if in_night(t)] == [r.leave for r in runs] + [
            r.back for r in runs
        ]
