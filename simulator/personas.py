"""Seeded personas: who lives behind each simulated door, and how her days go.

Pure and deterministic: a household is fixed by `(seed, index)`, and the plan of one of its
days by `(seed, household key, date)` plus where the previous day ended (so a late night
makes a late morning). No clock, no I/O.

Five personas (`PersonaKind`), each with weekday/weekend differences, occasional late
nights, deliveries, rubbish runs and trips away for days:

- office worker: leaves weekdays 07:00-09:00, back 17:30-21:00; late Fridays (23:00-01:30),
  rare overtime; weekends wake late with one or two outings.
- night shift: out 21:30, home 07:30 on five nights a week, asleep in the morning; her
  nights off may run late. Her work-night door times sit just outside 23:00-06:00.
- student: classes from late morning, returns spread through the evening and often late
  (up to 03:00), most of all on Friday and Saturday.
- retiree: up about 06:00 with a dawn walk (often before 06:00, inside the night window),
  market in the morning, the community centre (경로당) in the afternoon, church on Sundays,
  in bed by 22:00.
- remote worker: home all day, lunch walk, evening gym, many parcels; late weekend nights.

Seven more lives (`NEW_PERSONAS`), each built around one habit with a tight shape, for the
alert-quality bench (their nights are what a routine model must tell apart). They take no
trips, so every habit stays on its own nights; `habit_nights`, `habit_hour` (hours after
local midnight of the plan day, may exceed 24) and `habit_sd_h` say where the habit is:

- late shift: home at `habit_hour` (01:30-03:00, her own spread 15-21 min) on three or
  four fixed weekdays; the other weekdays an ordinary 08:30-18:30 job, weekends free.
- rotating shift: three shifts that change every ISO week (day 06:10-15:35, evening
  14:10-23:35, night 22:10-07:40), Monday to Friday, in the order day → evening → night.
- bar staff: works Wednesday to Sunday from 17:30; home 02:00-03:00 after Friday and
  Saturday, 00:15-01:15 after the other work nights; Monday and Tuesday off.
- baker: leaves 04:15-04:45 six days a week (one fixed day off), back after midday, in
  bed by about 21:00.
- homebody: daytime errands only; never opens the door between 23:00 and 06:00.
- late deliveries: an ordinary office job; on some nights (25-45 %) takes a delivery in
  at the door between 00:10 and 01:30.
- rubbish nights: an ordinary office job; takes the rubbish out at `habit_hour`
  (23:18-23:45, ± 6 min) on two fixed nights of the week and on no other.

`PERSONA_ORDER` (the round-robin of `build_fleet` without `kinds`) holds the five classic
personas only, so a classic fleet is the same for the same seed as before these lives.

How she arms (`ArmingHabit`): `away` when leaving for longer than a short errand and/or
`night` at bedtime, or never. When armed `away` she disarms within a few seconds of
coming home; when armed `night` she disarms on getting up, before opening the door.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from core.models import DEFAULT_NIGHT_WINDOW, Mode, NightWindow

SEOUL = ZoneInfo("Asia/Seoul")
_T = TypeVar("_T")

# around Yeongdeungpo-gu (district bounding box lon 126.88-126.95, lat 37.48-37.55)
DISTRICT_BBOX = (126.8816, 37.4822, 126.9525, 37.5474)


class PersonaKind(enum.StrEnum):
    OFFICE_WORKER = "office_worker"
    NIGHT_SHIFT = "night_shift"
    STUDENT = "student"
    RETIREE = "retiree"
    REMOTE_WORKER = "remote_worker"
    # the lives of issue 15: a habit with a tight shape each
    LATE_SHIFT = "late_shift"
    ROTATING_SHIFT = "rotating_shift"
    BAR_STAFF = "bar_staff"
    BAKER = "baker"
    HOMEBODY = "homebody"
    LATE_DELIVERIES = "late_deliveries"
    RUBBISH_NIGHTS = "rubbish_nights"


class ArmingHabit(enum.StrEnum):
    AWAY_AND_NIGHT = "away_and_night"
    AWAY_ONLY = "away_only"
    NIGHT_ONLY = "night_only"
    NEVER = "never"

    @property
    def arms_away(self) -> bool:
        return self in (ArmingHabit.AWAY_AND_NIGHT, ArmingHabit.AWAY_ONLY)

    @property
    def arms_night(self) -> bool:
        return self in (ArmingHabit.AWAY_AND_NIGHT, ArmingHabit.NIGHT_ONLY)


class Purpose(enum.StrEnum):
    COMMUTE = "commute"
    SHIFT = "shift"
    CLASS = "class"
    ERRAND = "errand"
    WALK = "walk"
    GYM = "gym"
    SOCIAL = "social"
    TRIP = "trip"
    RUBBISH = "rubbish"


SHORT_PURPOSES = frozenset({Purpose.RUBBISH})

# Arming habits by persona: (habit, weight)
_HABITS: dict[PersonaKind, tuple[tuple[ArmingHabit, float], ...]] = {
    PersonaKind.OFFICE_WORKER: (
        (ArmingHabit.AWAY_AND_NIGHT, 0.40),
        (ArmingHabit.AWAY_ONLY, 0.30),
        (ArmingHabit.NIGHT_ONLY, 0.10),
        (ArmingHabit.NEVER, 0.20),
    ),
    PersonaKind.NIGHT_SHIFT: (
        (ArmingHabit.AWAY_AND_NIGHT, 0.30),
        (ArmingHabit.AWAY_ONLY, 0.45),
        (ArmingHabit.NIGHT_ONLY, 0.05),
        (ArmingHabit.NEVER, 0.20),
    ),
    PersonaKind.STUDENT: (
        (ArmingHabit.AWAY_AND_NIGHT, 0.25),
        (ArmingHabit.AWAY_ONLY, 0.25),
        (ArmingHabit.NIGHT_ONLY, 0.15),
        (ArmingHabit.NEVER, 0.35),
    ),
    PersonaKind.RETIREE: (
        (ArmingHabit.AWAY_AND_NIGHT, 0.20),
        (ArmingHabit.AWAY_ONLY, 0.15),
        (ArmingHabit.NIGHT_ONLY, 0.30),
        (ArmingHabit.NEVER, 0.35),
    ),
    PersonaKind.REMOTE_WORKER: (
        (ArmingHabit.AWAY_AND_NIGHT, 0.35),
        (ArmingHabit.AWAY_ONLY, 0.25),
        (ArmingHabit.NIGHT_ONLY, 0.15),
        (ArmingHabit.NEVER, 0.25),
    ),
}

for _kind, _like in (
    (PersonaKind.LATE_SHIFT, PersonaKind.NIGHT_SHIFT),
    (PersonaKind.ROTATING_SHIFT, PersonaKind.NIGHT_SHIFT),
    (PersonaKind.BAR_STAFF, PersonaKind.STUDENT),
    (PersonaKind.BAKER, PersonaKind.RETIREE),
    (PersonaKind.HOMEBODY, PersonaKind.RETIREE),
    (PersonaKind.LATE_DELIVERIES, PersonaKind.REMOTE_WORKER),
    (PersonaKind.RUBBISH_NIGHTS, PersonaKind.OFFICE_WORKER),
):
    _HABITS[_kind] = _HABITS[_like]

CLASSIC_PERSONAS: tuple[PersonaKind, ...] = (
    PersonaKind.OFFICE_WORKER,
    PersonaKind.NIGHT_SHIFT,
    PersonaKind.STUDENT,
    PersonaKind.RETIREE,
    PersonaKind.REMOTE_WORKER,
)
NEW_PERSONAS: tuple[PersonaKind, ...] = tuple(k for k in PersonaKind if k not in CLASSIC_PERSONAS)
PERSONA_ORDER: tuple[PersonaKind, ...] = CLASSIC_PERSONAS
ALL_PERSONAS: tuple[PersonaKind, ...] = tuple(PersonaKind)


@dataclass(frozen=True, slots=True)
class Household:
    """One simulated home with one door sensor. `key` names both inside the simulator;
    the publisher maps it to the `household_id` and `sensor_id` the API hands out."""

    key: str
    index: int
    seed: int
    persona: PersonaKind
    arming: ArmingHabit
    home_mode: Mode  # the mode she sets when she is in and awake: `home` or `disarmed`
    arm_diligence: float  # chance she remembers to arm when her habit says so
    lat: float
    lon: float
    timezone: str = "Asia/Seoul"
    night_window: NightWindow = DEFAULT_NIGHT_WINDOW
    boot0: int = 1
    battery0: float = 100.0  # percent at the start of the simulated period
    drain_per_day: float = 0.05  # percent per day
    rssi_base: int = -60
    heartbeat_interval_s: int = 600
    heartbeat_phase_s: float = 0.0  # first heartbeat this long after the period start
    late_night_rate: float = 0.3  # persona-specific meaning, see `plan_day`
    delivery_rate: float = 0.25  # parcels per day taken in at the door
    rubbish_rate: float = 0.35  # rubbish runs per day
    trip_rate: float = 0.015  # chance per day of leaving for a trip of several days
    work_nights: frozenset[int] = field(default_factory=frozenset)  # night shift: weekdays
    # the new lives (see the module docstring): weekdays (of the plan day) whose night
    # carries the habit, its hour after that day's local midnight, and her spread around it
    habit_nights: frozenset[int] = field(default_factory=frozenset)
    habit_hour: float = 0.0
    habit_sd_h: float = 0.0
    rotation_phase: int = 0  # rotating shift: which shift the ISO week starts from

    @property
    def sensor_key(self) -> str:
        return self.key

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def display_name(self) -> str:
        return f"Sim household {self.index + 1:05d} ({self.persona.value.replace('_', ' ')})"


def household_key(index: int) -> str:
    return f"hh-{index:05d}"


def _pick_weighted(rng: random.Random, options: tuple[tuple[_T, float], ...]) -> _T:
    values = [o for o, _ in options]
    weights = [w for _, w in options]
    return rng.choices(values, weights=weights, k=1)[0]


def make_household(
    seed: int, index: int, persona: PersonaKind | None = None, timezone: str = "Asia/Seoul"
) -> Household:
    """The household at `index` of a fleet seeded with `seed` (persona round-robin unless
    given, so every persona is present in any fleet of five or more)."""
    key = household_key(index)
    rng = random.Random(f"ansim-household:{seed}:{key}")
    kind = persona if persona is not None else PERSONA_ORDER[index % len(PERSONA_ORDER)]
    arming = _pick_weighted(rng, _HABITS[kind])
    uses_home = arming is not ArmingHabit.NEVER and rng.random() < 0.5
    home_mode = Mode.HOME if uses_home else Mode.DISARMED
    lon = rng.uniform(DISTRICT_BBOX[0], DISTRICT_BBOX[2])
    lat = rng.uniform(DISTRICT_BBOX[1], DISTRICT_BBOX[3])
    late_by_kind = {
        PersonaKind.OFFICE_WORKER: rng.uniform(0.15, 0.45),
        PersonaKind.NIGHT_SHIFT: rng.uniform(0.1, 0.3),
        PersonaKind.STUDENT: rng.uniform(0.35, 0.65),
        PersonaKind.RETIREE: rng.uniform(0.0, 0.02),
        PersonaKind.REMOTE_WORKER: rng.uniform(0.1, 0.3),
    }
    late = late_by_kind.get(kind, 0.0)
    delivery = rng.uniform(0.4, 0.9) if kind is PersonaKind.REMOTE_WORKER else rng.uniform(0.1, 0.4)
    trip = {
        PersonaKind.STUDENT: rng.uniform(0.015, 0.035),
        PersonaKind.RETIREE: rng.uniform(0.01, 0.025),
    }.get(kind, rng.uniform(0.005, 0.02))
    work_nights: frozenset[int] = frozenset()
    if kind is PersonaKind.NIGHT_SHIFT:
        # five consecutive work nights; the two nights off rotate between households
        first = rng.randrange(7)
        work_nights = frozenset((first + i) % 7 for i in range(5))
    household = Household(
        key=key,
        index=index,
        seed=seed,
        persona=kind,
        arming=arming,
        home_mode=home_mode,
        arm_diligence=rng.uniform(0.85, 0.99),
        lat=round(lat, 6),
        lon=round(lon, 6),
        timezone=timezone,
        boot0=rng.randint(1, 30),
        battery0=rng.uniform(60.0, 100.0),
        drain_per_day=rng.uniform(0.02, 0.1),
        rssi_base=rng.randint(-85, -45),
        heartbeat_phase_s=rng.uniform(0.0, 600.0),
        late_night_rate=late,
        delivery_rate=delivery,
        rubbish_rate=rng.uniform(0.25, 0.5),
        trip_rate=trip,
        work_nights=work_nights,
    )
    if kind in NEW_PERSONAS:
        household = _new_life(household, random.Random(f"ansim-life:{seed}:{key}"))
    return household


def _new_life(hh: Household, rng: random.Random) -> Household:
    """The habit of one of the new lives (its own random stream, so the draws of the
    classic personas are untouched)."""
    kind = hh.persona
    nights: frozenset[int] = frozenset()
    hour = sd = late = 0.0
    rubbish = hh.rubbish_rate
    phase = 0
    if kind is PersonaKind.LATE_SHIFT:
        nights = frozenset(rng.sample(range(5), rng.choice((3, 4))))
        hour, sd = 24.0 + rng.uniform(1.5, 3.0), rng.uniform(0.25, 0.35)
    elif kind is PersonaKind.ROTATING_SHIFT:
        phase = rng.randrange(3)
        hour, sd = 23.6, 0.1  # the evening shift's return, in one week of three
    elif kind is PersonaKind.BAR_STAFF:
        nights, hour, sd = frozenset({4, 5}), 26.5, 0.2
    elif kind is PersonaKind.BAKER:
        off = rng.choice((6, 6, 6, 0, 1, 2))  # most bakeries close on Sunday
        nights, hour, sd = frozenset(d for d in range(7) if d != off), 4.5, 0.08
    elif kind is PersonaKind.LATE_DELIVERIES:
        late, hour, sd = rng.uniform(0.25, 0.45), 24.85, 0.4  # parcels 00:10-01:30
    elif kind is PersonaKind.RUBBISH_NIGHTS:
        nights = frozenset(rng.sample(range(7), 2))
        hour, sd, rubbish = rng.uniform(23.3, 23.75), 0.1, 0.0
    elif kind is PersonaKind.HOMEBODY:
        rubbish = rng.uniform(0.2, 0.4)
    return replace(
        hh,
        late_night_rate=late,
        rubbish_rate=rubbish,
        trip_rate=0.0,
        habit_nights=nights,
        habit_hour=hour,
        habit_sd_h=sd,
        rotation_phase=phase,
    )


def build_fleet(
    n: int,
    seed: int,
    mix: dict[PersonaKind, float] | None = None,
    kinds: Sequence[PersonaKind] | None = None,
) -> list[Household]:
    """`n` households. Without `mix`, personas go round-robin over `kinds` (default the
    five classic ones, `PERSONA_ORDER`); with it, each household's persona is drawn
    (deterministically) with those weights."""
    if n < 0:
        raise ValueError("a fleet cannot have a negative size")
    order = tuple(kinds) if kinds else PERSONA_ORDER
    fleet = []
    for i in range(n):
        persona = order[i % len(order)] if kinds else None
        if mix:
            rng = random.Random(f"ansim-persona:{seed}:{i}")
            persona = _pick_weighted(rng, tuple(mix.items()))
        fleet.append(make_household(seed, i, persona))
    return fleet


# --- days ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outing:
    """She leaves at `leave` and is back at `back` (both local, aware)."""

    leave: datetime
    back: datetime
    purpose: Purpose

    @property
    def short(self) -> bool:
        return self.purpose in SHORT_PURPOSES or (self.back - self.leave) < timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class DayPlan:
    """One waking day: up at `wake`, out for `outings`, takes parcels in at `deliveries`
    (door opened briefly while she stays in), asleep at `bed` (possibly after midnight, or
    days later after a trip). The next plan is for `next_date`."""

    day: date
    wake: datetime
    outings: tuple[Outing, ...]
    deliveries: tuple[datetime, ...]
    bed: datetime
    next_date: date


def day_rng(household: Household, day: date) -> random.Random:
    return random.Random(f"ansim-day:{household.seed}:{household.key}:{day.isoformat()}")


def _at(day: date, hours: float, zone: ZoneInfo) -> datetime:
    """`hours` after local midnight of `day` (may exceed 24), to the second."""
    base = datetime.combine(day, time(0), tzinfo=zone)
    return base + timedelta(seconds=round(hours * 3600))


def _norm(rng: random.Random, mu: float, sd: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, rng.gauss(mu, sd)))


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _hours_since_midnight(value: datetime, day: date) -> float:
    midnight = datetime.combine(day, time(0), tzinfo=value.tzinfo)
    return (value - midnight).total_seconds() / 3600


def plan_day(household: Household, day: date, prev_bed: datetime | None) -> DayPlan:
    """The plan for the waking day that starts on `day`. `prev_bed` is when she went to
    sleep after the previous plan (None at the very start)."""
    rng = day_rng(household, day)
    zone = household.zone
    weekday = day.weekday()  # Monday 0 … Sunday 6
    weekend = weekday >= 5
    outings: list[tuple[float, float, Purpose]] = []
    night_parcels: list[float] = []  # the new lives: parcels after midnight
    prev_h = _hours_since_midnight(prev_bed, day) if prev_bed is not None else -1.0
    kind = household.persona

    def wake_after(typical: float) -> float:
        return max(typical, prev_h + rng.uniform(5.5, 7.5))

    if kind is PersonaKind.OFFICE_WORKER:
        if not weekend:
            wake = wake_after(_norm(rng, 6.6, 0.3, 5.75, 7.5))
            leave = max(_norm(rng, 8.0, 0.35, 7.0, 9.0), wake + rng.uniform(0.4, 0.8))
            back = _norm(rng, 19.0, 0.6, 17.5, 21.0)
            if weekday == 4 and rng.random() < household.late_night_rate:
                back = rng.uniform(23.0, 25.5)  # Friday drinks with colleagues
            elif rng.random() < 0.04:
                back = rng.uniform(22.5, 24.5)  # overtime
            outings.append((leave, back, Purpose.COMMUTE))
            if back < 20.0 and rng.random() < 0.15:
                go = back + rng.uniform(0.5, 1.0)
                outings.append((go, go + rng.uniform(1.0, 2.5), Purpose.GYM))
            bed = _norm(rng, 23.6, 0.4, 22.5, 25.0)
        else:
            wake = wake_after(_norm(rng, 9.0, 0.7, 7.5, 11.0))
            outings += _weekend_outings(rng, wake)
            if weekday == 5 and rng.random() < household.late_night_rate:
                go = rng.uniform(18.0, 20.0)
                outings.append((go, rng.uniform(23.0, 26.0), Purpose.SOCIAL))
            bed = _norm(rng, 24.3 if weekday == 5 else 23.4, 0.5, 22.5, 25.5)
    elif kind is PersonaKind.NIGHT_SHIFT:
        after_shift = prev_bed is not None and 6.0 <= prev_h <= 12.0
        wake = (
            prev_h + rng.uniform(6.5, 7.5)
            if after_shift
            else wake_after(_norm(rng, 10.5, 0.7, 9.0, 12.0))
        )
        if rng.random() < 0.4 and wake + 1.0 < 19.0:
            go = rng.uniform(wake + 1.0, 19.0)
            outings.append((go, go + rng.uniform(0.5, 2.0), Purpose.ERRAND))
        if weekday in household.work_nights:
            leave = _norm(rng, 21.5, 0.08, 21.3, 21.7)  # out 21:30
            back = 24.0 + _norm(rng, 7.5, 0.12, 7.2, 7.9)  # home 07:30
            outings.append((leave, back, Purpose.SHIFT))
            bed = back + rng.uniform(0.5, 1.2)
        else:
            if rng.random() < household.late_night_rate:
                go = rng.uniform(19.0, 20.5)
                outings.append((go, rng.uniform(23.2, 25.0), Purpose.SOCIAL))
            bed = _norm(rng, 26.0, 0.7, 24.5, 27.5)
    elif kind is PersonaKind.STUDENT:
        wake = wake_after(_norm(rng, 8.8, 0.8, 7.0, 11.0))
        late_p = household.late_night_rate * (1.6 if weekday in (4, 5) else 0.5)
        if not weekend and rng.random() < 0.9:
            leave = min(wake + rng.uniform(0.5, 2.0), 14.0)
            r = rng.random()
            if r < late_p:
                back = rng.uniform(23.0, 26.5)
            elif r < late_p + 0.3:
                back = _norm(rng, 21.5, 0.8, 20.0, 22.9)
            else:
                back = _norm(rng, 18.5, 1.2, 15.0, 21.0)
            outings.append((max(leave, wake + 0.4), back, Purpose.CLASS))
        else:
            outings += _weekend_outings(rng, wake)
            if rng.random() < late_p:
                go = rng.uniform(18.5, 21.0)
                outings.append((go, rng.uniform(23.5, 27.0), Purpose.SOCIAL))
        bed = _norm(rng, 25.2, 0.6, 24.0, 27.0)
    elif kind is PersonaKind.RETIREE:
        wake = wake_after(_norm(rng, 5.9, 0.3, 5.0, 6.75))
        if rng.random() < 0.6:
            go = wake + rng.uniform(0.2, 0.6)  # dawn walk, often before 06:00
            outings.append((go, go + rng.uniform(0.5, 1.2), Purpose.WALK))
        if weekday == 6 and rng.random() < 0.6:
            go = rng.uniform(9.8, 10.3)
            outings.append((go, rng.uniform(12.5, 13.5), Purpose.SOCIAL))  # church
        elif rng.random() < 0.7:
            go = rng.uniform(9.5, 11.5)
            outings.append((go, go + rng.uniform(0.75, 2.5), Purpose.ERRAND))  # market
        if rng.random() < (0.2 if weekend else 0.4):
            go = rng.uniform(13.5, 15.0)
            outings.append((go, go + rng.uniform(1.5, 3.0), Purpose.SOCIAL))  # 경로당
        bed = _norm(rng, 21.8, 0.3, 21.0, 22.75)
        if rng.random() < household.late_night_rate:
            bed = rng.uniform(23.0, 24.0)
    elif kind is PersonaKind.REMOTE_WORKER:
        wake = wake_after(_norm(rng, 7.8, 0.4, 6.8, 9.0))
        if not weekend:
            if rng.random() < 0.5:
                go = rng.uniform(12.0, 12.75)
                outings.append((go, go + rng.uniform(0.3, 1.0), Purpose.WALK))
            if rng.random() < 0.4:
                go = rng.uniform(18.5, 19.5)
                outings.append((go, go + rng.uniform(1.0, 1.75), Purpose.GYM))
            bed = _norm(rng, 24.4, 0.5, 23.0, 25.5)
        else:
            outings += _weekend_outings(rng, wake)
            if weekday in (4, 5) and rng.random() < household.late_night_rate:
                go = rng.uniform(18.5, 20.0)
                outings.append((go, rng.uniform(23.0, 25.0), Purpose.SOCIAL))
            bed = _norm(rng, 24.6, 0.5, 23.0, 26.0)
    else:
        wake, outings, bed, night_parcels = _new_life_day(household, rng, day, prev_h)

    # a trip away for days starts today: replaces the rest of the day's plan
    next_day = day + timedelta(days=1)
    if rng.random() < household.trip_rate:
        days_away = rng.randint(2, 3) if kind is PersonaKind.STUDENT else rng.randint(2, 6)
        go = max(wake + rng.uniform(0.7, 2.0), rng.uniform(9.0, 18.0))
        back = days_away * 24.0 + rng.uniform(12.0, 21.0)
        outings = [o for o in outings if o[1] < go - 0.2]
        outings.append((go, back, Purpose.TRIP))
        bed = back + rng.uniform(1.5, 4.0)
        next_day = day + timedelta(days=days_away + 1)

    clean = _sanitise(outings, wake)

    # rubbish runs, evenings while she's in (only where they fit between outings)
    if rng.random() < household.rubbish_rate:
        go = rng.uniform(19.0, max(19.1, min(22.5, bed - 0.3)))
        run = (go, go + rng.uniform(2.0, 6.0) / 60, Purpose.RUBBISH)
        if go > wake + 0.25 and all(run[1] + 0.2 < a or run[0] > b + 0.2 for a, b, _ in clean):
            clean = sorted([*clean, run])

    last_back = max((b for _, b, _ in clean), default=wake)
    bed = max(bed, last_back + rng.uniform(0.25, 0.75), wake + 8.0)

    # parcels: only while she's in and awake
    deliveries = []
    for _ in range(_poisson(rng, household.delivery_rate)):
        h = rng.uniform(10.0, 21.0)
        if wake + 0.25 < h < bed - 0.25 and all(
            not (leave - 0.1 <= h <= back + 0.1) for leave, back, _ in clean
        ):
            deliveries.append(h)
    deliveries += [h for h in night_parcels if h > last_back + 0.1]

    return DayPlan(
        day=day,
        wake=_at(day, wake, zone),
        outings=tuple(Outing(_at(day, a, zone), _at(day, b, zone), p) for a, b, p in clean),
        deliveries=tuple(_at(day, h, zone) for h in sorted(deliveries)),
        bed=_at(day, bed, zone),
        next_date=next_day,
    )


def rotating_shift(household: Household, day: date) -> int:
    """The rotating shift's shift in the (Monday-based) week of `day`: 0 day, 1 evening,
    2 night; it moves on by one every week, across year ends too."""
    return ((day.toordinal() - 1) // 7 + household.rotation_phase) % 3


def _new_life_day(
    household: Household, rng: random.Random, day: date, prev_h: float
) -> tuple[float, list[tuple[float, float, Purpose]], float, list[float]]:
    """Wake, outings, bed and parcels after midnight of one day of the new lives."""
    kind = household.persona
    weekday = day.weekday()
    weekend = weekday >= 5
    outings: list[tuple[float, float, Purpose]] = []
    parcels: list[float] = []

    def wake_after(typical: float) -> float:
        return max(typical, prev_h + rng.uniform(5.5, 7.5))

    def habit_time() -> float:
        sd = household.habit_sd_h
        return _norm(rng, household.habit_hour, sd, household.habit_hour - 2.5 * sd,
                     household.habit_hour + 2.5 * sd)  # fmt: skip

    def office_day() -> tuple[float, float]:
        """An ordinary office weekday or a free weekend day: (wake, bed)."""
        if not weekend:
            wake = wake_after(_norm(rng, 6.8, 0.3, 6.1, 7.6))
            leave = max(_norm(rng, 8.2, 0.3, 7.4, 9.0), wake + rng.uniform(0.4, 0.8))
            outings.append((leave, _norm(rng, 19.0, 0.6, 17.5, 21.0), Purpose.COMMUTE))
        else:
            wake = wake_after(_norm(rng, 9.0, 0.7, 7.5, 11.0))
            outings.extend(_weekend_outings(rng, wake))
        return wake, _norm(rng, 22.4, 0.3, 21.75, 22.9)

    if kind is PersonaKind.LATE_SHIFT:
        if weekday in household.habit_nights:
            wake = wake_after(_norm(rng, 9.5, 0.5, 8.5, 11.0))
            leave = max(_norm(rng, 17.0, 0.25, 16.5, 17.5), wake + 1.0)
            back = habit_time()
            outings.append((leave, back, Purpose.SHIFT))
            bed = back + rng.uniform(0.5, 1.0)
        else:
            wake, bed = office_day()
    elif kind is PersonaKind.ROTATING_SHIFT:
        shift = rotating_shift(household, day)
        after_night = 6.0 <= prev_h <= 12.0
        wake = prev_h + rng.uniform(6.5, 7.5) if after_night else wake_after(7.0)
        if weekend:
            wake = max(wake, _norm(rng, 9.0, 0.5, 8.0, 10.5))
            if wake + 1.0 < 18.0:
                go = rng.uniform(wake + 0.5, 18.0)
                outings.append((go, go + rng.uniform(1.0, 3.0), Purpose.ERRAND))
            bed = _norm(rng, 22.5, 0.3, 21.75, 22.9)
        elif shift == 0:  # day shift
            leave = _norm(rng, 6.17, 0.05, 6.08, 6.3)
            wake = leave - rng.uniform(0.5, 0.7)
            outings.append((leave, _norm(rng, 15.6, 0.12, 15.3, 15.9), Purpose.SHIFT))
            bed = _norm(rng, 21.9, 0.3, 21.25, 22.6)
        elif shift == 1:  # evening shift
            wake = max(wake, _norm(rng, 9.0, 0.4, 8.0, 10.0))
            leave = _norm(rng, 14.17, 0.05, 14.05, 14.3)
            outings.append((leave, _norm(rng, 23.6, 0.1, 23.35, 23.85), Purpose.SHIFT))
            bed = 24.0 + rng.uniform(0.3, 1.0)
        else:  # night shift
            wake = max(wake, _norm(rng, 11.0, 0.5, 10.0, 12.0))
            leave = _norm(rng, 22.17, 0.05, 22.05, 22.3)
            outings.append((leave, 24.0 + _norm(rng, 7.67, 0.1, 7.4, 7.9), Purpose.SHIFT))
            bed = outings[-1][1] + rng.uniform(0.5, 1.0)
    elif kind is PersonaKind.BAR_STAFF:
        wake = wake_after(_norm(rng, 11.0, 0.5, 10.0, 12.5))
        if weekday in (2, 3, 4, 5, 6):
            leave = max(_norm(rng, 17.5, 0.2, 17.0, 18.0), wake + 1.0)
            if weekday in household.habit_nights:
                back = habit_time()  # 02:00-03:00 after Friday and Saturday
            else:
                back = _norm(rng, 24.75, 0.2, 24.25, 25.25)
            outings.append((leave, back, Purpose.SHIFT))
            bed = back + rng.uniform(0.5, 1.0)
        else:
            go = rng.uniform(wake + 0.5, 17.0)
            outings.append((go, go + rng.uniform(1.0, 3.0), Purpose.ERRAND))
            bed = _norm(rng, 25.0, 0.4, 24.0, 26.0)
    elif kind is PersonaKind.BAKER:
        if weekday in household.habit_nights:
            leave = habit_time()  # 04:15-04:45
            wake = leave - rng.uniform(0.35, 0.6)
            outings.append((leave, _norm(rng, 13.0, 0.4, 12.0, 14.5), Purpose.SHIFT))
            if rng.random() < 0.4:
                go = rng.uniform(15.0, 17.0)
                outings.append((go, go + rng.uniform(0.5, 1.5), Purpose.ERRAND))
        else:  # her day off
            wake = _norm(rng, 7.0, 0.4, 6.25, 8.0)
            go = rng.uniform(10.0, 14.0)
            outings.append((go, go + rng.uniform(1.0, 4.0), Purpose.ERRAND))
        bed = _norm(rng, 20.75, 0.2, 20.25, 21.25)
    elif kind is PersonaKind.HOMEBODY:
        wake = wake_after(_norm(rng, 7.8, 0.4, 7.0, 9.0))
        if rng.random() < 0.7:
            go = rng.uniform(10.0, 16.0)
            outings.append((go, go + rng.uniform(0.5, 2.0), Purpose.ERRAND))
        if rng.random() < 0.3:
            go = rng.uniform(18.5, 19.5)
            outings.append((go, go + rng.uniform(0.3, 1.0), Purpose.WALK))
        bed = _norm(rng, 22.0, 0.3, 21.25, 22.6)
    elif kind is PersonaKind.LATE_DELIVERIES:
        wake, bed = office_day()
        if rng.random() < household.late_night_rate:
            parcels.append(rng.uniform(24.17, 25.5))  # 00:10-01:30
            bed = parcels[-1] + rng.uniform(0.3, 0.8)
    else:  # rubbish nights
        wake, bed = office_day()
        if weekday in household.habit_nights:
            go = habit_time()
            outings.append((go, go + rng.uniform(2.0, 6.0) / 60, Purpose.RUBBISH))
            bed = go + rng.uniform(0.4, 0.9)
    return wake, outings, bed, parcels


def _weekend_outings(rng: random.Random, wake: float) -> list[tuple[float, float, Purpose]]:
    out = []
    for _ in range(1 + (rng.random() < 0.5)):
        go = max(rng.uniform(11.0, 17.0), wake + 0.5)
        out.append((go, go + rng.uniform(1.0, 5.0), Purpose.ERRAND))
    return out


def _sanitise(
    outings: list[tuple[float, float, Purpose]], wake: float
) -> list[tuple[float, float, Purpose]]:
    """Sorted, after waking, never overlapping (ten minutes in between at least)."""
    clean: list[tuple[float, float, Purpose]] = []
    for leave, back, purpose in sorted(outings):
        if leave < wake + 1 / 6 or back <= leave:
            continue
        if clean and leave < clean[-1][1] + 1 / 6:
            continue
        clean.append((leave, back, purpose))
    return clean


def iter_day_plans(
    household: Household, first: date, last: date | None = None
) -> Iterator[DayPlan]:
    """Plans for every waking day from `first` (inclusive) up to `last` (inclusive, or for
    ever); a trip makes one plan cover several dates."""
    day, prev_bed = first, None
    while last is None or day <= last:
        plan = plan_day(household, day, prev_bed)
        yield plan
        prev_bed, day = plan.bed, plan.next_date
