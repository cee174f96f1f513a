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

How she arms (`ArmingHabit`): `away` when leaving for longer than a short errand and/or
`night` at bedtime, or never. When armed `away` she disarms within a few seconds of
coming home; when armed `night` she disarms on getting up, before opening the door.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
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

PERSONA_ORDER: tuple[PersonaKind, ...] = tuple(PersonaKind)


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
    late = {
        PersonaKind.OFFICE_WORKER: rng.uniform(0.15, 0.45),
        PersonaKind.NIGHT_SHIFT: rng.uniform(0.1, 0.3),
        PersonaKind.STUDENT: rng.uniform(0.35, 0.65),
        PersonaKind.RETIREE: rng.uniform(0.0, 0.02),
        PersonaKind.REMOTE_WORKER: rng.uniform(0.1, 0.3),
    }[kind]
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
    return Household(
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


def build_fleet(n: int, seed: int, mix: dict[PersonaKind, float] | None = None) -> list[Household]:
    """`n` households. Without `mix`, personas go round-robin; with it, each household's
    persona is drawn (deterministically) with those weights."""
    if n < 0:
        raise ValueError("a fleet cannot have a negative size")
    fleet = []
    for i in range(n):
        persona = None
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
    else:  # remote worker
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

    return DayPlan(
        day=day,
        wake=_at(day, wake, zone),
        outings=tuple(Outing(_at(day, a, zone), _at(day, b, zone), p) for a, b, p in clean),
        deliveries=tuple(_at(day, h, zone) for h in sorted(deliveries)),
        bed=_at(day, bed, zone),
        next_date=next_day,
    )


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
