"""From a household's day plans to the timeline of what its door and its resident do.

Pure and deterministic: the same household (so the same seed) and the same period give the
same items, in the same order. Every timestamp is timezone-aware local time (Asia/Seoul
unless the household says otherwise).

What a timeline holds (`TimelineItem.kind`):

- `open` / `close`: the door, always in pairs; open 5-40 s when she passes through, a few
  seconds to take a parcel in. A pair is kept only if both ends fall inside the period.
- `mode`: she changes the arming mode (the publisher sends `PUT /households/{id}/mode`).
  The first item of every timeline is a `mode` at the period start with the mode in force
  then. Coming home to `away` she disarms 3-20 s after the door opens (inside the 30 s
  entry delay); leaving, she arms `away` 5-60 s after the door closes; armed `night`, she
  disarms on getting up and always at least 20 s before she opens the door.
- `heartbeat`: every `heartbeat_interval_s` (600 s) from a per-household phase.

Door events and heartbeats carry `battery` (linear drain from `battery0` at the period
start, reported as a whole percent) and `rssi` (the household's level ± 3 dBm).
"""

from __future__ import annotations

import bisect
import enum
import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.models import EventType, Mode
from simulator.personas import DayPlan, Household, Purpose, iter_day_plans

WARM_UP_DAYS = 3
"""Plans start this many days before the period so the first night is already lived in."""


class ItemKind(enum.StrEnum):
    OPEN = "open"
    CLOSE = "close"
    TAMPER = "tamper"
    HEARTBEAT = "heartbeat"
    MODE = "mode"
    # only ever produced by scenario injections (see simulator.scenario):
    POWER_OFF = "power_off"
    POWER_ON = "power_on"
    LINK_DOWN = "link_down"
    LINK_UP = "link_up"
    RAW = "raw"


SENSOR_EVENT_KINDS = frozenset({ItemKind.OPEN, ItemKind.CLOSE, ItemKind.TAMPER, ItemKind.HEARTBEAT})
DOOR_KINDS = frozenset({ItemKind.OPEN, ItemKind.CLOSE})


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One thing that happens at `at` in household `household_key`."""

    at: datetime
    household_key: str
    kind: ItemKind
    mode: Mode | None = None
    battery: int | None = None
    rssi: int | None = None
    cause: str = "routine"  # "routine", or the injection id that put it there

    @property
    def event_type(self) -> EventType | None:
        """The wire `type` for sensor events, None for everything else."""
        return EventType(self.kind.value) if self.kind in SENSOR_EVENT_KINDS else None


class Presence(enum.StrEnum):
    IN = "in"  # at home and awake
    OUT = "out"
    ASLEEP = "asleep"


@dataclass(frozen=True, slots=True)
class Span:
    start: datetime
    end: datetime
    presence: Presence


def _check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the period must be timezone-aware")
    if end <= start:
        raise ValueError("the period must end after it starts")


def battery_at(household: Household, period_start: datetime, at: datetime) -> float:
    """Battery percent at `at`: linear drain from `battery0` at the period start."""
    days = (at - period_start).total_seconds() / 86_400
    return max(0.0, min(100.0, household.battery0 - household.drain_per_day * days))


def rssi_at(household: Household, at: datetime) -> int:
    """The household's signal level with a deterministic ±3 dBm wobble."""
    wobble = (int(at.timestamp()) * 2_654_435_761 + household.index * 97) % 7 - 3
    return max(-120, min(0, household.rssi_base + wobble))


def to_ms(value: datetime) -> datetime:
    """Truncated to the millisecond, the wire's precision, so `at` survives a round trip."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _pass_s(rng: random.Random) -> float:
    """How long the door stays open when she walks through: 5-40 s, mostly under 15."""
    return rng.triangular(5.0, 40.0, 9.0)


def _plan_items(
    household: Household, plan: DayPlan, mode: Mode
) -> tuple[list[tuple[TimelineItem, int | None]], Mode]:
    """Items of one waking day (each with its door-pair number) and the mode after it."""
    rng = random.Random(f"ansim-routine:{household.seed}:{household.key}:{plan.day.isoformat()}")
    key = household.key
    out: list[tuple[TimelineItem, int | None]] = []
    pair = 0

    def set_mode(at: datetime, new: Mode) -> None:
        nonlocal mode
        if new is not mode:
            out.append((TimelineItem(to_ms(at), key, ItemKind.MODE, mode=new), None))
            mode = new

    def door(at: datetime, open_s: float) -> datetime:
        nonlocal pair
        pair += 1
        at = to_ms(at)
        close = to_ms(at + timedelta(seconds=open_s))
        out.append((TimelineItem(at, key, ItemKind.OPEN), pair))
        out.append((TimelineItem(close, key, ItemKind.CLOSE), pair))
        return close

    def disarm_before(at: datetime) -> None:
        if mode in (Mode.NIGHT, Mode.AWAY):
            set_mode(at - timedelta(seconds=rng.uniform(20.0, 90.0)), household.home_mode)

    doors = sorted(
        [(o.leave, o) for o in plan.outings] + [(d, None) for d in plan.deliveries],
        key=lambda pair_: pair_[0],
    )
    if mode is Mode.NIGHT:
        up = plan.wake + timedelta(minutes=rng.uniform(1.0, 20.0))
        if doors:
            up = min(up, doors[0][0] - timedelta(seconds=rng.uniform(20.0, 90.0)))
        set_mode(max(up, plan.wake), household.home_mode)
    for at, outing in doors:
        at = at + timedelta(seconds=rng.random())
        disarm_before(at)
        if outing is None:  # a parcel at the door
            door(at, rng.uniform(5.0, 20.0))
            continue
        closed = door(at, _pass_s(rng))
        remembers = rng.random() < household.arm_diligence or outing.purpose is Purpose.TRIP
        if not outing.short and household.arming.arms_away and remembers:
            set_mode(closed + timedelta(seconds=rng.uniform(5.0, 60.0)), Mode.AWAY)
        back = outing.back + timedelta(seconds=rng.random())
        open_s = _pass_s(rng)
        if mode is Mode.AWAY:
            open_s = max(open_s, 4.0)
            set_mode(back + timedelta(seconds=rng.uniform(3.0, 20.0)), household.home_mode)
        door(back, open_s)
    if household.arming.arms_night and rng.random() < household.arm_diligence:
        set_mode(plan.bed, Mode.NIGHT)
    out.sort(key=lambda entry: entry[0].at)
    return out, mode


def _initial_mode(household: Household) -> Mode:
    return Mode.NIGHT if household.arming.arms_night else household.home_mode


def _iter_plans(household: Household, start: datetime) -> Iterator[DayPlan]:
    first = start.astimezone(household.zone).date() - timedelta(days=WARM_UP_DAYS)
    return iter_day_plans(household, first)


def plans_for(household: Household, start: datetime, end: datetime) -> list[DayPlan]:
    """The day plans behind the timeline of [start, end) (the same warm-up as the
    timeline, so the same days), from the last one that wakes before `start`."""
    _check_period(start, end)
    plans: list[DayPlan] = []
    for plan in _iter_plans(household, start):
        if plan.wake >= end:
            break
        if plan.wake < start and plans and plans[-1].wake < start:
            plans.pop()
        plans.append(plan)
    return plans


def iter_routine(household: Household, start: datetime, end: datetime) -> Iterator[TimelineItem]:
    """Door and mode items in [start, end), lazily, in time order, starting with the mode
    in force at `start`. No heartbeats; no battery or rssi on the door items."""
    _check_period(start, end)
    mode = _initial_mode(household)
    emitted_initial = False
    for plan in _iter_plans(household, start):
        if plan.wake >= end:
            break
        entries, after = _plan_items(household, plan, mode)
        cut = {p for item, p in entries if p is not None and not (start <= item.at < end)}
        for item, p in entries:
            if item.at >= start and not emitted_initial:
                emitted_initial = True
                yield TimelineItem(start, household.key, ItemKind.MODE, mode=mode)
            if item.kind is ItemKind.MODE and item.mode is not None:
                mode = item.mode
            if not (start <= item.at < end) or p in cut:
                continue
            yield item
        mode = after
    if not emitted_initial:
        yield TimelineItem(start, household.key, ItemKind.MODE, mode=mode)


def iter_heartbeats(household: Household, start: datetime, end: datetime) -> Iterator[TimelineItem]:
    _check_period(start, end)
    step = timedelta(seconds=household.heartbeat_interval_s)
    at = to_ms(start + timedelta(seconds=household.heartbeat_phase_s))
    while at < end:
        yield TimelineItem(
            at,
            household.key,
            ItemKind.HEARTBEAT,
            battery=math.floor(battery_at(household, start, at)),
            rssi=rssi_at(household, at),
        )
        at += step


def _with_radio(household: Household, start: datetime, item: TimelineItem) -> TimelineItem:
    if item.kind not in SENSOR_EVENT_KINDS or item.battery is not None:
        return item
    return TimelineItem(
        item.at,
        item.household_key,
        item.kind,
        item.mode,
        math.floor(battery_at(household, start, item.at)),
        rssi_at(household, item.at),
        item.cause,
    )


def iter_timeline(
    household: Household, start: datetime, end: datetime, heartbeats: bool = True
) -> Iterator[TimelineItem]:
    """The household's whole timeline in [start, end), lazily and in time order: the
    initial mode, door pairs, mode changes and (unless told not to) heartbeats."""
    routine = (_with_radio(household, start, i) for i in iter_routine(household, start, end))
    if not heartbeats:
        return routine
    return heapq.merge(routine, iter_heartbeats(household, start, end), key=lambda i: i.at)


def generate_timeline(
    household: Household, start: datetime, end: datetime, heartbeats: bool = True
) -> list[TimelineItem]:
    return list(iter_timeline(household, start, end, heartbeats))


def iter_fleet_timeline(
    households: Iterable[Household], start: datetime, end: datetime, heartbeats: bool = True
) -> Iterator[TimelineItem]:
    """Every household's timeline merged by time (ties: household key), lazily."""
    return heapq.merge(
        *(iter_timeline(h, start, end, heartbeats) for h in households),
        key=lambda i: (i.at, i.household_key),
    )


# --- what the routine looks like from outside (used to place incidents) -------------


@dataclass(frozen=True, slots=True)
class Routine:
    """A household's routine over a period, with questions the scenario expander asks:
    where is she, what mode is set, when does she use the door."""

    household: Household
    start: datetime
    end: datetime
    items: tuple[TimelineItem, ...]  # door and mode items, no heartbeats
    spans: tuple[Span, ...]

    @property
    def door_opens(self) -> list[datetime]:
        return [i.at for i in self.items if i.kind is ItemKind.OPEN]

    def open_hours(self) -> set[int]:
        """Local hours (0-23) in which she opened the door at least once in the period."""
        zone = self.household.zone
        return {t.astimezone(zone).hour for t in self.door_opens}

    def mode_at(self, at: datetime) -> Mode:
        modes = [i for i in self.items if i.kind is ItemKind.MODE]
        times = [i.at for i in modes]
        k = bisect.bisect_right(times, at) - 1
        found = modes[max(k, 0)].mode
        assert found is not None
        return found

    def presence_at(self, at: datetime) -> Presence:
        starts = [s.start for s in self.spans]
        k = bisect.bisect_right(starts, at) - 1
        if k < 0:
            return self.spans[0].presence if self.spans else Presence.IN
        span = self.spans[k]
        return span.presence if at < span.end else Presence.IN

    def door_quiet(self, at: datetime, margin: timedelta) -> bool:
        """No door movement of hers within `margin` either side of `at`."""
        opens = [i.at for i in self.items if i.kind in DOOR_KINDS]
        k = bisect.bisect_left(opens, at - margin)
        return k >= len(opens) or opens[k] > at + margin

    def night_returns(self) -> list[datetime]:
        """Times she opened the door coming home inside her night window."""
        out_spans = [s for s in self.spans if s.presence is Presence.OUT]
        backs = {s.end for s in out_spans}
        opens = [i.at for i in self.items if i.kind is ItemKind.OPEN]
        zone = self.household.zone
        window = self.household.night_window
        return [
            t
            for t in opens
            if any(abs((t - b).total_seconds()) < 2 for b in backs)
            and window.contains(t.astimezone(zone).time())
        ]


def build_routine(household: Household, start: datetime, end: datetime) -> Routine:
    _check_period(start, end)
    items = tuple(iter_routine(household, start, end))
    spans: list[Span] = []
    prev_bed: datetime | None = None
    for plan in _iter_plans(household, start):
        if prev_bed is not None:
            spans.append(Span(prev_bed, plan.wake, Presence.ASLEEP))
        cursor = plan.wake
        for o in plan.outings:
            spans.append(Span(cursor, o.leave, Presence.IN))
            spans.append(Span(o.leave, o.back, Presence.OUT))
            cursor = o.back
        spans.append(Span(cursor, plan.bed, Presence.IN))
        prev_bed = plan.bed
        if plan.bed >= end:
            break
    clipped = tuple(
        Span(max(s.start, start), min(s.end, end), s.presence)
        for s in spans
        if s.end > start and s.start < end and s.end > s.start
    )
    return Routine(household, start, end, items, clipped)


# --- a real routine: the Ordóñez A door log ------------------------------------------


def parse_door_log(text: str, sensor: str = "Maindoor") -> list[tuple[datetime, datetime]]:
    """(open, close) pairs, naive local times, from the tab-separated Ordóñez sensor log
    (`Start time  End time  Location  Type  Place`); repeated lines count once."""
    pairs = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        if len(cells) < 3 or cells[2] != sensor:
            continue
        try:
            opened = datetime.fromisoformat(cells[0])
            closed = datetime.fromisoformat(cells[1])
        except ValueError:
            continue
        if closed >= opened:
            pairs.add((opened, closed))
    return sorted(pairs)


def replay_door_log(household: Household, text: str, start: datetime) -> list[TimelineItem]:
    """The logged door openings as this household's timeline, moved by whole weeks (so
    weekdays stay weekdays) to begin in the week of `start`, with the initial mode and
    heartbeats up to the local midnight after the last entry. Times of day are kept, read
    as the household's local time."""
    pairs = parse_door_log(text)
    if not pairs:
        raise ValueError("the log holds no door openings")
    zone = household.zone
    local_start = start.astimezone(zone)
    weeks = math.ceil((local_start.date() - pairs[0][0].date()).days / 7)
    shift = timedelta(weeks=weeks)
    items: list[TimelineItem] = [TimelineItem(start, household.key, ItemKind.MODE,
                                              mode=household.home_mode)]  # fmt: skip
    for opened, closed in pairs:
        at = (opened + shift).replace(tzinfo=zone)
        if at < start:
            continue
        close_at = (closed + shift).replace(tzinfo=zone)
        items.append(_with_radio(household, start, TimelineItem(at, household.key, ItemKind.OPEN)))
        items.append(
            _with_radio(household, start, TimelineItem(close_at, household.key, ItemKind.CLOSE))
        )
    last = items[-1].at
    end = datetime.combine(last.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return list(heapq.merge(items, iter_heartbeats(household, start, end), key=lambda i: i.at))
