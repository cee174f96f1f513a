"""Scenarios: which incidents and faults to inject, and how they become concrete actions.

Three steps, all pure and deterministic:

1. `load_scenario(path)` / `parse_scenario(data)` read a YAML or JSON file into a typed
   `Scenario`, or raise `ScenarioError` listing every problem with its place
   (`faults[2].duration: ...`).
2. `expand_scenario(scenario, fleet, seed, start, end)` turns rates and explicit times into
   concrete `Injection`s (which household, when, how long, what alert to expect) and their
   ground truth (`Expansion.truth()`). The same seed, fleet and period give the same
   injections.
3. `plan_household(...)` / `plan_fleet(...)` merge a household's routine with its
   injections into wire-ready `PlanItem`s, in the order a publisher must perform them.

File format (YAML shown; the same structure in JSON)::

    name: incident-month
    description: free text
    incidents:                    # kinds: night_intrusion, away_intrusion,
      - kind: night_intrusion     #        door_left_open, tamper
        per_household_week: 0.05  # exactly one of: count, per_household_week,
        when: asleep              #   per_household_day, at (a list of RFC 3339 times)
        personas: [student]       # optional filters: personas, households
      - kind: tamper
        at: ["2026-11-21T14:05:00+09:00"]
        households: [hh-00003]    # required with `at`; keys or fleet indices
    faults:                       # kinds: power_loss, jamming, dying_battery, duplicate,
      - kind: power_loss          #   out_of_order, clock_skew, malformed, oversize,
        count: 3                  #   impersonation, broker_disconnect
        duration: [20m, 3h]       # a value or a [min, max] range: 90s, 15m, 2h, 3d, 1h30m

Parameters per kind (defaults in brackets):

| kind | parameters | what happens |
| --- | --- | --- |
| night_intrusion | `when` asleep/away/either [either], `open_for` [8s-60s] | inside her night window, at an hour she never opens the door in the period, while she sleeps or is out, the door opens and closes again |
| away_intrusion | `open_for` [8s-60s] | while she is out and armed `away` (households that arm only) |
| door_left_open | `duration` [15m-45m], `variant` night_return/asleep/any [any] | her late return does not latch (or the door swings open at night while she sleeps) and stays open |
| tamper | - | a `tamper` event |
| power_loss | `duration` [20m-3h] | connection dies uncleanly (Last Will `offline`); nothing is sensed; back with `boot`+1, `seq` 0 |
| jamming | `duration` [45m-3h] | radio blocked: no heartbeats, door events lost; the MQTT session itself stays up |
| dying_battery | `duration` [1d-3d], `to_percent` [5] | battery falls linearly to `to_percent`; `at` is when it crosses 20 % |
| duplicate | `copies` [1], `events` [1] | the next `events` messages are published `copies` more times |
| out_of_order | `events` [3] | the next `events` messages are delivered in reverse order |
| clock_skew | `skew` [±3m-30m], `duration` [2h-12h] | the sensor's clock is off by `skew` |
| malformed | `variant` bad_json/missing_field/unknown_type/bad_ts/wrong_type/not_utf8/not_object [random] | a broken payload on its own topic |
| oversize | `size` [1100-4000] bytes | a payload over the 1 KiB limit |
| impersonation | `target` household key [another, at random] | publishes on another sensor's topic with its own credentials |
| broker_disconnect | `duration` [5s-120s] | the connection drops uncleanly and comes back; messages meanwhile are queued and sent after reconnecting |
"""  # noqa: E501

from __future__ import annotations

import enum
import heapq
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from core.models import AlertKind, Mode
from core.wire import encode_event
from simulator.personas import Household, PersonaKind, household_key
from simulator.routines import (
    DOOR_KINDS,
    SENSOR_EVENT_KINDS,
    ItemKind,
    Presence,
    Routine,
    TimelineItem,
    battery_at,
    build_routine,
    iter_timeline,
    rssi_at,
    to_ms,
)
from simulator.truth import FAULT, INCIDENT, TruthRecord


class InjectionKind(enum.StrEnum):
    NIGHT_INTRUSION = "night_intrusion"
    AWAY_INTRUSION = "away_intrusion"
    DOOR_LEFT_OPEN = "door_left_open"
    TAMPER = "tamper"
    POWER_LOSS = "power_loss"
    JAMMING = "jamming"
    DYING_BATTERY = "dying_battery"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    CLOCK_SKEW = "clock_skew"
    MALFORMED = "malformed"
    OVERSIZE = "oversize"
    IMPERSONATION = "impersonation"
    BROKER_DISCONNECT = "broker_disconnect"


INCIDENT_KINDS = frozenset(
    {
        InjectionKind.NIGHT_INTRUSION,
        InjectionKind.AWAY_INTRUSION,
        InjectionKind.DOOR_LEFT_OPEN,
        InjectionKind.TAMPER,
    }
)
FAULT_KINDS = frozenset(InjectionKind) - INCIDENT_KINDS

MALFORMED_VARIANTS: dict[str, str] = {
    # variant: the dead-letter reason core.wire.parse_event gives it
    "bad_json": "bad_json",
    "missing_field": "missing_field",
    "unknown_type": "unknown_type",
    "bad_ts": "invalid_field",
    "wrong_type": "invalid_field",
    "not_utf8": "bad_encoding",
    "not_object": "bad_json",
}
DOOR_LEFT_OPEN_VARIANTS = ("night_return", "asleep", "any")
WHEN_CHOICES = ("asleep", "away", "either")

_COMMON_FIELDS = frozenset(
    {"kind", "count", "per_household_week", "per_household_day", "at", "households", "personas"}
) | {"note"}
_PARAMS: dict[InjectionKind, frozenset[str]] = {
    InjectionKind.NIGHT_INTRUSION: frozenset({"when", "open_for"}),
    InjectionKind.AWAY_INTRUSION: frozenset({"open_for"}),
    InjectionKind.DOOR_LEFT_OPEN: frozenset({"duration", "variant"}),
    InjectionKind.TAMPER: frozenset(),
    InjectionKind.POWER_LOSS: frozenset({"duration"}),
    InjectionKind.JAMMING: frozenset({"duration"}),
    InjectionKind.DYING_BATTERY: frozenset({"duration", "to_percent"}),
    InjectionKind.DUPLICATE: frozenset({"copies", "events"}),
    InjectionKind.OUT_OF_ORDER: frozenset({"events"}),
    InjectionKind.CLOCK_SKEW: frozenset({"skew", "duration"}),
    InjectionKind.MALFORMED: frozenset({"variant"}),
    InjectionKind.OVERSIZE: frozenset({"size"}),
    InjectionKind.IMPERSONATION: frozenset({"target"}),
    InjectionKind.BROKER_DISCONNECT: frozenset({"duration"}),
}
_DEFAULT_DURATION: dict[InjectionKind, tuple[float, float]] = {
    InjectionKind.DOOR_LEFT_OPEN: (15 * 60, 45 * 60),
    InjectionKind.POWER_LOSS: (20 * 60, 3 * 3600),
    InjectionKind.JAMMING: (45 * 60, 3 * 3600),
    InjectionKind.DYING_BATTERY: (86_400, 3 * 86_400),
    InjectionKind.CLOCK_SKEW: (2 * 3600, 12 * 3600),
    InjectionKind.BROKER_DISCONNECT: (5, 120),
}

ENTRY_DELAY_S = 30.0
DOOR_LEFT_OPEN_LIMIT_S = 600.0
BATTERY_LOW_PERCENT = 20


# --- errors and parsing -------------------------------------------------------------


class ScenarioError(ValueError):
    """A scenario that cannot be used; `problems` lists each one with where it is."""

    def __init__(self, problems: Sequence[str], source: str = "scenario") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


_DURATION_RE = re.compile(r"^([+-])?((?:\d+(?:\.\d+)?(?:d|h|m|s|ms))+)$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNIT_S = {"d": 86_400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object, signed: bool = False) -> float:
    """Seconds from `90`, `"90s"`, `"15m"`, `"2h"`, `"3d"`, `"1h30m"`, `"250ms"`; a sign
    (`"-5m"`) only when `signed`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '15m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        m = _DURATION_RE.match(text)
        if not m:
            raise ValueError(f"expected a duration like '90s', '15m', '2h', got {value!r}")
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART_RE.findall(m.group(2)))
        if m.group(1) == "-":
            seconds = -seconds
    else:
        raise ValueError(f"expected a duration like '15m', got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, got {value!r}")
    if not signed and seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds


def _parse_range(value: object, signed: bool = False) -> tuple[float, float]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"a range is [min, max], got {len(value)} values")
        lo, hi = parse_duration(value[0], signed), parse_duration(value[1], signed)
        if lo > hi:
            raise ValueError(f"range min {value[0]!r} is above max {value[1]!r}")
        return lo, hi
    v = parse_duration(value, signed)
    return v, v


def _parse_time(value: object) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected an RFC 3339 time, got {value!r}") from None
    else:
        raise ValueError(f"expected an RFC 3339 time, got {value!r}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"time {value!s} needs a UTC offset, e.g. +09:00")
    return parsed


@dataclass(frozen=True, slots=True)
class InjectionSpec:
    """One entry of a scenario's `incidents` or `faults` list, validated."""

    kind: InjectionKind
    count: int | None = None
    per_household_week: float | None = None
    per_household_day: float | None = None
    at: tuple[datetime, ...] = ()
    households: tuple[str, ...] = ()
    personas: tuple[PersonaKind, ...] = ()
    when: str = "either"
    open_for: tuple[float, float] = (8.0, 60.0)
    duration: tuple[float, float] | None = None  # None: the kind's default
    variant: str | None = None
    to_percent: float = 5.0
    copies: int = 1
    events: int | None = None
    skew: tuple[float, float] | None = None
    size: tuple[int, int] = (1100, 4000)
    target: str | None = None
    note: str = ""

    @property
    def category(self) -> str:
        return INCIDENT if self.kind in INCIDENT_KINDS else FAULT

    def duration_range(self) -> tuple[float, float]:
        return self.duration or _DEFAULT_DURATION.get(self.kind, (0.0, 0.0))


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str = ""
    incidents: tuple[InjectionSpec, ...] = ()
    faults: tuple[InjectionSpec, ...] = ()

    @property
    def specs(self) -> tuple[InjectionSpec, ...]:
        return self.incidents + self.faults


QUIET = Scenario(name="quiet", description="no injections: ordinary routines only")


def _key_of(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError(f"a household is a key like 'hh-00003' or an index, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"household index must be ≥ 0, got {value}")
        return household_key(value)
    if isinstance(value, str) and re.fullmatch(r"hh-\d{5,}", value):
        return value
    raise ValueError(f"a household is a key like 'hh-00003' or an index, got {value!r}")


def _parse_spec(raw: object, where: str, section: str, problems: list[str]) -> InjectionSpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping with a `kind`, got {type(raw).__name__}")
        return None
    kind_raw = raw.get("kind")
    try:
        kind = InjectionKind(str(kind_raw))
    except ValueError:
        known = ", ".join(k.value for k in InjectionKind)
        problems.append(f"{where}.kind: unknown kind {kind_raw!r} (known: {known})")
        return None
    expected_section = "incidents" if kind in INCIDENT_KINDS else "faults"
    if section != expected_section:
        problems.append(f"{where}.kind: {kind.value} belongs under `{expected_section}`")
    allowed = _COMMON_FIELDS | _PARAMS[kind]
    listed = ", ".join(sorted(allowed))
    for name in sorted(set(map(str, raw)) - allowed):
        problems.append(f"{where}.{name}: unknown field for {kind.value} (allowed: {listed})")
    values: dict[str, Any] = {"kind": kind}
    before = len(problems)

    def field_(name: str, conv: Any) -> None:
        if name not in raw or raw[name] is None:
            return
        try:
            values[name] = conv(raw[name])
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}.{name}: {exc}")

    def pos_int(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"must be a positive integer, got {v!r}")
        return v

    def count_int(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"must be an integer ≥ 0, got {v!r}")
        return v

    def rate(v: object) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1000:
            raise ValueError(f"must be a number between 0 and 1000, got {v!r}")
        return float(v)

    def times(v: object) -> tuple[datetime, ...]:
        items = v if isinstance(v, list) else [v]
        return tuple(_parse_time(x) for x in items)

    def keys(v: object) -> tuple[str, ...]:
        items = v if isinstance(v, list) else [v]
        return tuple(_key_of(x) for x in items)

    def personas(v: object) -> tuple[PersonaKind, ...]:
        items = v if isinstance(v, list) else [v]
        out = []
        for x in items:
            try:
                out.append(PersonaKind(str(x)))
            except ValueError:
                known = ", ".join(p.value for p in PersonaKind)
                raise ValueError(f"unknown persona {x!r} (known: {known})") from None
        return tuple(out)

    def choice(options: Iterable[str]) -> Any:
        opts = tuple(options)

        def conv(v: object) -> str:
            if str(v) not in opts:
                raise ValueError(f"must be one of {', '.join(opts)}, got {v!r}")
            return str(v)

        return conv

    def percent(v: object) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 20:
            raise ValueError(f"must be a percent below {BATTERY_LOW_PERCENT}, got {v!r}")
        return float(v)

    def size(v: object) -> tuple[int, int]:
        lo, hi = _parse_range(v)
        if lo <= 1024:
            raise ValueError(f"an oversize payload must exceed 1024 bytes, got {v!r}")
        if hi > 1_000_000:
            raise ValueError(f"keep oversize payloads under 1 MB, got {v!r}")
        return int(lo), int(hi)

    def note(v: object) -> str:
        return str(v)

    field_("count", count_int)
    field_("per_household_week", rate)
    field_("per_household_day", rate)
    field_("at", times)
    field_("households", keys)
    field_("personas", personas)
    field_("note", note)
    field_("when", choice(WHEN_CHOICES))
    field_("open_for", _parse_range)
    field_("duration", _parse_range)
    field_("to_percent", percent)
    field_("copies", pos_int)
    field_("events", pos_int)
    field_("skew", lambda v: _parse_range(v, signed=True))
    field_("size", size)
    field_("target", _key_of)
    if kind is InjectionKind.MALFORMED:
        field_("variant", choice(MALFORMED_VARIANTS))
    elif kind is InjectionKind.DOOR_LEFT_OPEN:
        field_("variant", choice(DOOR_LEFT_OPEN_VARIANTS))

    how = [n for n in ("count", "per_household_week", "per_household_day", "at") if n in raw]
    if len(how) != 1:
        problems.append(
            f"{where}: give exactly one of count, per_household_week, per_household_day, at"
            + (f" (got {', '.join(how)})" if how else "")
        )
    if "at" in raw and not raw.get("households"):
        problems.append(f"{where}.households: required with `at` (which households, by key)")
    dur = values.get("duration")
    if dur is not None and dur[0] <= 0:
        problems.append(f"{where}.duration: must be longer than zero")
    if kind is InjectionKind.OUT_OF_ORDER and values.get("events", 3) < 2:
        problems.append(f"{where}.events: out_of_order needs at least 2 events to reorder")
    skew = values.get("skew")
    if skew is not None and (skew[0] < 0 < skew[1] or skew == (0.0, 0.0)):
        problems.append(f"{where}.skew: give one sign, e.g. [3m, 30m] or [-30m, -3m], not 0")
    if len(problems) > before:
        return None
    return InjectionSpec(**values)


def parse_scenario(data: object, source: str = "scenario") -> Scenario:
    """Validate already-loaded YAML/JSON data; raise ScenarioError with every problem."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ScenarioError(["the top level must be a mapping"], source)
    for extra in sorted(set(map(str, data)) - {"name", "description", "incidents", "faults"}):
        problems.append(
            f"{extra}: unknown top-level field (allowed: name, description, incidents, faults)"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: required, a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append("description: must be a string")
    sections: dict[str, list[InjectionSpec]] = {"incidents": [], "faults": []}
    for section, specs in sections.items():
        raw = data.get(section, [])
        if raw is None:
            continue
        if not isinstance(raw, list):
            problems.append(f"{section}: must be a list")
            continue
        for i, entry in enumerate(raw):
            spec = _parse_spec(entry, f"{section}[{i}]", section, problems)
            if spec is not None:
                specs.append(spec)
    if problems:
        raise ScenarioError(problems, source)
    assert isinstance(name, str) and isinstance(description, str)
    return Scenario(
        name.strip(), description, tuple(sections["incidents"]), tuple(sections["faults"])
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read a `.yaml`/`.yml` or `.json` scenario file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"cannot read the file: {exc.strerror}"], str(p)) from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError([f"line {exc.lineno}: not JSON: {exc.msg}"], str(p)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ScenarioError([f"{where}not YAML: {exc}"], str(p)) from None
    return parse_scenario(data, str(p))


# --- expansion ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Injection:
    """One concrete incident or fault for one household."""

    injection_id: str
    kind: InjectionKind
    household_key: str
    at: datetime
    end_at: datetime | None = None
    expected_alert: AlertKind | None = None
    explains: frozenset[AlertKind] = frozenset()
    due_s: float = 0.0
    match_from_s: float = -5.0
    match_to_s: float = 120.0
    handling: str = ""
    start_at: datetime | None = None  # dying battery: when the decline starts
    open_s: float | None = None  # intrusions: how long the door stays open
    skew_s: float | None = None
    copies: int = 1
    events: int = 1
    variant: str | None = None
    battery_from: float | None = None
    battery_to: float | None = None
    size: int | None = None
    target_household_key: str | None = None
    extends_open_at: datetime | None = None  # door left open on her own return
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str:
        return INCIDENT if self.kind in INCIDENT_KINDS else FAULT

    def truth(self) -> TruthRecord:
        detail: dict[str, Any] = dict(self.detail)
        for name in ("open_s", "skew_s", "variant", "battery_from", "battery_to", "size"):
            value = getattr(self, name)
            if value is not None:
                detail[name] = round(value, 3) if isinstance(value, float) else value
        if self.kind in (InjectionKind.DUPLICATE,):
            detail["copies"], detail["events"] = self.copies, self.events
        if self.kind is InjectionKind.OUT_OF_ORDER:
            detail["events"] = self.events
        if self.target_household_key:
            detail["target_household_key"] = self.target_household_key
        if self.start_at is not None:
            detail["start_at"] = self.start_at.isoformat(timespec="milliseconds")
        if self.extends_open_at is not None:
            detail["variant"] = "night_return"
        return TruthRecord(
            record_id=self.injection_id,
            kind=self.kind.value,
            household_key=self.household_key,
            at=self.at,
            category=self.category,
            end_at=self.end_at,
            expected_alert=self.expected_alert,
            explains=tuple(sorted(self.explains)),
            due_s=self.due_s,
            match_from_s=self.match_from_s,
            match_to_s=self.match_to_s,
            handling=self.handling,
            detail=detail,
        )


@dataclass(frozen=True, slots=True)
class Expansion:
    injections: tuple[Injection, ...]
    skipped: tuple[str, ...] = ()

    def truth(self) -> list[TruthRecord]:
        return [i.truth() for i in self.injections]

    def for_household(self, key: str) -> list[Injection]:
        return [i for i in self.injections if i.household_key == key]

    def by_household(self) -> dict[str, list[Injection]]:
        out: dict[str, list[Injection]] = {}
        for i in self.injections:
            out.setdefault(i.household_key, []).append(i)
        return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:  # normal approximation, plenty for large rates
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class _Context:
    fleet: Sequence[Household]
    by_key: dict[str, Household]
    seed: int
    start: datetime
    end: datetime
    routines: dict[str, Routine] = field(default_factory=dict)
    busy: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def routine(self, hh: Household) -> Routine:
        if hh.key not in self.routines:
            self.routines[hh.key] = build_routine(hh, self.start, self.end)
        return self.routines[hh.key]

    def free(self, key: str, lo: datetime, hi: datetime) -> bool:
        margin = timedelta(minutes=30)
        return all(hi + margin <= a or lo - margin >= b for a, b in self.busy.get(key, []))

    def take(self, key: str, lo: datetime, hi: datetime) -> None:
        self.busy.setdefault(key, []).append((lo, hi))


def _uniform_time(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    span = max(0.0, (hi - lo).total_seconds())
    return lo + timedelta(seconds=round(rng.uniform(0.0, span), 3))


def _night_time(rng: random.Random, hh: Household, ctx: _Context) -> datetime:
    """A random moment inside the household's night window during the period."""
    zone = hh.zone
    window = hh.night_window
    first = ctx.start.astimezone(zone).date() - timedelta(days=1)
    days = (ctx.end - ctx.start).days + 2
    day = first + timedelta(days=rng.randrange(max(1, days)))
    begin = datetime.combine(day, window.start, tzinfo=zone)
    end = datetime.combine(day, window.end, tzinfo=zone)
    if end <= begin:
        end += timedelta(days=1)
    return _uniform_time(rng, begin, end)


def _draw(rng: random.Random, r: tuple[float, float]) -> float:
    return r[0] if r[0] == r[1] else rng.uniform(*r)


def _in_period(ctx: _Context, lo: datetime, hi: datetime, margin_s: float = 600) -> bool:
    m = timedelta(seconds=margin_s)
    return lo >= ctx.start + m and hi <= ctx.end - m


def _place(
    spec: InjectionSpec,
    hh: Household,
    at: datetime | None,
    rng: random.Random,
    ctx: _Context,
) -> Injection | str:
    """Decide the concrete injection, or say why it cannot be placed."""
    kind = spec.kind
    base: dict[str, Any] = {"injection_id": "", "kind": kind, "household_key": hh.key}
    hb = float(hh.heartbeat_interval_s)
    explicit = at is not None

    def pick(
        check: Callable[[datetime], bool],
        sampler: Callable[[], datetime],
        length: float,
        tries: int = 400,
    ) -> datetime | None:
        if explicit:
            assert at is not None
            return at
        for _ in range(tries):
            t = sampler()
            hi = t + timedelta(seconds=length)
            if _in_period(ctx, t, hi) and ctx.free(hh.key, t, hi) and check(t):
                return t
        return None

    def anytime() -> datetime:
        return _uniform_time(rng, ctx.start, ctx.end)

    if kind in (InjectionKind.NIGHT_INTRUSION, InjectionKind.AWAY_INTRUSION):
        routine = ctx.routine(hh)
        open_s = round(_draw(rng, spec.open_for), 3)
        if kind is InjectionKind.NIGHT_INTRUSION:
            used = routine.open_hours()
            wanted = {
                "asleep": {Presence.ASLEEP},
                "away": {Presence.OUT},
                "either": {Presence.ASLEEP, Presence.OUT},
            }[spec.when]

            def ok(t: datetime) -> bool:
                return (
                    t.astimezone(hh.zone).hour not in used
                    and routine.presence_at(t) in wanted
                    and routine.door_quiet(t, timedelta(minutes=60))
                )

            t = pick(ok, lambda: _night_time(rng, hh, ctx), open_s)
            if t is None:
                return f"{hh.key}: no night hour she never uses while {spec.when}"
        else:
            if not hh.arming.arms_away:
                return f"{hh.key}: never arms `away`"

            def ok(t: datetime) -> bool:
                return (
                    routine.presence_at(t) is Presence.OUT
                    and routine.mode_at(t) is Mode.AWAY
                    and routine.mode_at(t - timedelta(minutes=10)) is Mode.AWAY
                    and routine.door_quiet(t, timedelta(minutes=30))
                )

            t = pick(ok, anytime, open_s)
            if t is None:
                return f"{hh.key}: no time out and armed `away` in the period"
        mode = routine.mode_at(t)
        armed = mode in (Mode.AWAY, Mode.NIGHT)
        explained = {AlertKind.INTRUSION, AlertKind.NIGHT_OPENING}
        if open_s > DOOR_LEFT_OPEN_LIMIT_S:
            explained.add(AlertKind.DOOR_LEFT_OPEN)
        return Injection(
            **base,
            at=t,
            end_at=t + timedelta(seconds=open_s),
            expected_alert=AlertKind.INTRUSION if armed else AlertKind.NIGHT_OPENING,
            explains=frozenset(explained),
            due_s=ENTRY_DELAY_S if armed else 0.0,
            match_to_s=max(120.0, open_s + 60),
            handling="alert",
            open_s=open_s,
            detail={
                "mode": mode.value,
                "presence": routine.presence_at(t).value,
                "persona": hh.persona.value,
            },
        )

    if kind is InjectionKind.DOOR_LEFT_OPEN:
        routine = ctx.routine(hh)
        duration = round(_draw(rng, spec.duration_range()), 3)
        variant = spec.variant or "any"
        extends: datetime | None = None
        when: datetime | None = None
        if variant in ("night_return", "any") and not explicit:
            returns = [
                r
                for r in routine.night_returns()
                if _in_period(ctx, r, r + timedelta(seconds=duration))
                and ctx.free(hh.key, r, r + timedelta(seconds=duration))
            ]
            if returns:
                when = extends = rng.choice(returns)
            elif variant == "night_return":
                return f"{hh.key}: never comes home inside her night window"
        if when is None:
            used = routine.open_hours()

            def quiet(t: datetime) -> bool:
                return (
                    routine.presence_at(t) is Presence.ASLEEP
                    and t.astimezone(hh.zone).hour not in used
                    and routine.door_quiet(t, timedelta(minutes=60) + timedelta(seconds=duration))
                )

            when = pick(quiet, lambda: _night_time(rng, hh, ctx), duration)
            if when is None:
                return f"{hh.key}: no quiet night moment while asleep"
        if extends is not None:
            explains = frozenset({AlertKind.DOOR_LEFT_OPEN})
        else:
            explains = frozenset(
                {AlertKind.DOOR_LEFT_OPEN, AlertKind.NIGHT_OPENING, AlertKind.INTRUSION}
            )
        return Injection(
            **base,
            at=when,
            end_at=when + timedelta(seconds=duration),
            expected_alert=AlertKind.DOOR_LEFT_OPEN,
            explains=explains,
            due_s=DOOR_LEFT_OPEN_LIMIT_S,
            match_to_s=duration + 300,
            handling="alert",
            open_s=duration,
            extends_open_at=extends,
            detail={"mode": routine.mode_at(when).value, "persona": hh.persona.value},
        )

    if kind is InjectionKind.TAMPER:
        t = pick(lambda _t: True, anytime, 60)
        if t is None:
            return f"{hh.key}: no free moment"
        return Injection(**base, at=t, expected_alert=AlertKind.TAMPER, handling="alert")

    if kind in (
        InjectionKind.POWER_LOSS,
        InjectionKind.JAMMING,
        InjectionKind.BROKER_DISCONNECT,
        InjectionKind.CLOCK_SKEW,
    ):
        duration = round(_draw(rng, spec.duration_range()), 3)
        t = pick(lambda _t: True, anytime, duration)
        if t is None:
            return f"{hh.key}: no free stretch of {duration:.0f} s"
        end_at = t + timedelta(seconds=duration)
        off_from, off_to = -(hb + 60), duration + 3 * hb + 300
        if kind is InjectionKind.POWER_LOSS:
            return Injection(
                **base,
                at=t,
                end_at=end_at,
                expected_alert=AlertKind.SENSOR_OFFLINE,
                explains=frozenset({AlertKind.SENSOR_OFFLINE}),
                handling="last_will_offline; boot+1 and seq 0 after power-on",
                match_from_s=off_from,
                match_to_s=off_to,
            )
        if kind is InjectionKind.JAMMING:
            detectable = duration >= 4 * hb
            return Injection(
                **base,
                at=t,
                end_at=end_at,
                expected_alert=AlertKind.SENSOR_OFFLINE if detectable else None,
                explains=frozenset({AlertKind.SENSOR_OFFLINE}),
                due_s=3 * hb,
                handling="missed_heartbeats_offline" if detectable else "too_short_to_detect",
                match_from_s=off_from,
                match_to_s=off_to,
            )
        if kind is InjectionKind.BROKER_DISCONNECT:
            return Injection(
                **base,
                at=t,
                end_at=end_at,
                explains=frozenset({AlertKind.SENSOR_OFFLINE}),
                handling="queued_messages_delivered_after_reconnect",
                match_from_s=off_from,
                match_to_s=off_to,
            )
        skew = spec.skew
        if skew is None:
            skew_s = rng.choice((-1, 1)) * rng.uniform(180.0, 1800.0)
        else:
            skew_s = _draw(rng, skew)
        skew_s = round(skew_s, 3)
        return Injection(
            **base,
            at=t,
            end_at=end_at,
            explains=frozenset(
                {AlertKind.NIGHT_OPENING, AlertKind.INTRUSION, AlertKind.DOOR_LEFT_OPEN}
            ),
            match_from_s=-abs(skew_s) - 5,
            match_to_s=duration + abs(skew_s) + 300,
            handling="clock_skew_flagged (live mode); device time trusted (replay mode)",
            skew_s=skew_s,
        )

    if kind is InjectionKind.DYING_BATTERY:
        duration = _draw(rng, spec.duration_range())
        to = spec.to_percent
        t0 = pick(lambda _t: True, anytime, duration)
        if t0 is None:
            return f"{hh.key}: no free stretch of {duration:.0f} s"
        b0 = battery_at(hh, ctx.start, t0)
        if b0 <= BATTERY_LOW_PERCENT:
            return f"{hh.key}: battery already low"
        cross = to_ms(t0 + timedelta(seconds=duration * (b0 - BATTERY_LOW_PERCENT) / (b0 - to)))
        if cross >= ctx.end - timedelta(seconds=2 * hb):
            return f"{hh.key}: battery would cross {BATTERY_LOW_PERCENT} % after the period"
        return Injection(
            **base,
            at=cross,
            end_at=to_ms(t0 + timedelta(seconds=duration)),
            start_at=t0,
            expected_alert=AlertKind.BATTERY_LOW,
            explains=frozenset({AlertKind.BATTERY_LOW}),
            match_from_s=-60.0,
            match_to_s=2 * hb + 60,
            handling="battery_low_alert",
            battery_from=round(b0, 3),
            battery_to=to,
        )

    # single-message faults
    t = pick(lambda _t: True, anytime, 60)
    if t is None:
        return f"{hh.key}: no free moment"
    if kind is InjectionKind.DUPLICATE:
        return Injection(
            **base,
            at=t,
            copies=spec.copies,
            events=spec.events or 1,
            handling="duplicate_dropped",
        )
    if kind is InjectionKind.OUT_OF_ORDER:
        return Injection(**base, at=t, events=spec.events or 3, handling="stored_once_each")
    if kind is InjectionKind.MALFORMED:
        variant = spec.variant or rng.choice(sorted(MALFORMED_VARIANTS))
        return Injection(
            **base, at=t, variant=variant, handling=f"dead_letter:{MALFORMED_VARIANTS[variant]}"
        )
    if kind is InjectionKind.OVERSIZE:
        size = rng.randint(*spec.size)
        return Injection(**base, at=t, size=size, handling="dead_letter:oversize")
    # impersonation
    target = spec.target
    if target is None:
        others = [h.key for h in ctx.fleet if h.key != hh.key]
        if not others:
            return f"{hh.key}: no other sensor to impersonate"
        target = rng.choice(others)
    elif target == hh.key:
        return f"{hh.key}: cannot impersonate itself"
    return Injection(
        **base, at=t, target_household_key=target, handling="acl_denied: nothing stored"
    )


def _busy_span(inj: Injection) -> tuple[datetime, datetime]:
    lo = inj.start_at or inj.at
    return lo, inj.end_at or inj.at


def expand_scenario(
    scenario: Scenario,
    fleet: Sequence[Household],
    seed: int,
    start: datetime,
    end: datetime,
) -> Expansion:
    """Concrete injections for this fleet and period (deterministic for a seed).

    Rates are drawn per household (Poisson with mean rate × period), `count` picks
    households at random (with replacement), `at` applies each time to each listed
    household. Injections of one household keep 30 min apart, so one does not mask
    another; one that cannot be placed is listed in `skipped` with the reason. Explicit
    `at` times and households that are not in the fleet or period raise ScenarioError.
    """
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise ValueError("the period must be timezone-aware and end after it starts")
    ctx = _Context(fleet, {h.key: h for h in fleet}, seed, start, end)
    days = (end - start).total_seconds() / 86_400
    problems: list[str] = []
    placed: list[Injection] = []
    skipped: list[str] = []
    for section, specs in (("incidents", scenario.incidents), ("faults", scenario.faults)):
        for i, spec in enumerate(specs):
            where = f"{section}[{i}]"
            mine: list[str] = []
            for key in (*spec.households, *([spec.target] if spec.target else [])):
                if key not in ctx.by_key:
                    mine.append(f"{where}: household {key} is not in the fleet of {len(fleet)}")
            for t in spec.at:
                if not start <= t < end:
                    mine.append(f"{where}.at: {t.isoformat()} is outside the period")
            if mine:
                problems += mine
                continue
            eligible = [
                h
                for h in fleet
                if (not spec.households or h.key in spec.households)
                and (not spec.personas or h.persona in spec.personas)
            ]
            if spec.kind is InjectionKind.AWAY_INTRUSION and not spec.at:
                eligible = [h for h in eligible if h.arming.arms_away]
            salt = f"ansim-scenario:{seed}:{section}:{i}:{spec.kind.value}"
            occurrences: list[tuple[Household, datetime | None, random.Random]] = []
            if spec.at:
                for t in spec.at:
                    for key in spec.households:
                        occurrences.append(
                            (ctx.by_key[key], t, random.Random(f"{salt}:{key}:{t.isoformat()}"))
                        )
            elif spec.count is not None:
                if not eligible:
                    skipped.append(f"{where}: no household fits the filters")
                    continue
                chooser = random.Random(f"{salt}:count")
                for j in range(spec.count):
                    hh = chooser.choice(eligible)
                    occurrences.append((hh, None, random.Random(f"{salt}:{j}")))
            else:
                per_day = (spec.per_household_day or 0.0) + (spec.per_household_week or 0.0) / 7
                for hh in eligible:
                    rng = random.Random(f"{salt}:{hh.key}")
                    for j in range(_poisson(rng, per_day * days)):
                        occurrences.append((hh, None, random.Random(f"{salt}:{hh.key}:{j}")))
            for hh, at, rng in occurrences:
                result = _place(spec, hh, at, rng, ctx)
                if isinstance(result, str):
                    skipped.append(f"{where} {spec.kind.value}: {result}")
                    continue
                ctx.take(hh.key, *_busy_span(result))
                placed.append(result)
    if problems:
        raise ScenarioError(problems, scenario.name)
    placed.sort(key=lambda inj: (inj.at, inj.household_key, inj.kind.value))
    numbered = tuple(replace(inj, injection_id=f"inj-{n:05d}") for n, inj in enumerate(placed, 1))
    return Expansion(numbered, tuple(skipped))


# --- plans: routine + injections, wire-ready ----------------------------------------


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One action for the publisher, performed at `send_at` (simulated time).

    | kind | the publisher does |
    | --- | --- |
    | open, close, tamper, heartbeat | publish `payload` (QoS 1, not retained) to the event topic of `topic_household_key`'s sensor |
    | raw | the same with a payload that breaks the contract (or, for impersonation, on another sensor's topic) |
    | mode | `PUT /households/{id}/mode` with `{"mode": mode}` |
    | power_off | drop the connection without DISCONNECT, so the broker publishes the Last Will `offline` |
    | power_on | reconnect (a new boot: `boot` is already counted up in the payloads that follow) and publish the retained `online` |
    | link_down | drop the connection without DISCONNECT; messages of this sensor due before `link_up` come after it |
    | link_up | reconnect and publish the retained `online` |

    `counts_as_event` marks a new, valid event: count these as events sent (duplicates,
    raw payloads and impersonations are not). `cause` is `routine` or an injection id.
    """  # noqa: E501

    send_at: datetime
    at: datetime  # when it happened in the simulated world
    household_key: str
    kind: ItemKind
    order: int  # tie-break within a household
    mode: Mode | None = None
    boot: int | None = None
    seq: int | None = None
    device_ts: datetime | None = None
    battery: int | None = None
    rssi: int | None = None
    payload: bytes | None = None
    topic_household_key: str | None = None
    counts_as_event: bool = False
    duplicate: bool = False
    cause: str = "routine"

    @property
    def topic_key(self) -> str:
        return self.topic_household_key or self.household_key


def _injection_items(inj: Injection) -> list[TimelineItem]:
    key, cause = inj.household_key, inj.injection_id
    k = inj.kind
    if k in (InjectionKind.NIGHT_INTRUSION, InjectionKind.AWAY_INTRUSION) or (
        k is InjectionKind.DOOR_LEFT_OPEN
    ):
        assert inj.end_at is not None
        items = [TimelineItem(inj.end_at, key, ItemKind.CLOSE, cause=cause)]
        if inj.extends_open_at is None:
            items.insert(0, TimelineItem(inj.at, key, ItemKind.OPEN, cause=cause))
        return items
    if k is InjectionKind.TAMPER:
        return [TimelineItem(inj.at, key, ItemKind.TAMPER, cause=cause)]
    if k is InjectionKind.POWER_LOSS:
        assert inj.end_at is not None
        return [
            TimelineItem(inj.at, key, ItemKind.POWER_OFF, cause=cause),
            TimelineItem(inj.end_at, key, ItemKind.POWER_ON, cause=cause),
        ]
    if k is InjectionKind.BROKER_DISCONNECT:
        assert inj.end_at is not None
        return [
            TimelineItem(inj.at, key, ItemKind.LINK_DOWN, cause=cause),
            TimelineItem(inj.end_at, key, ItemKind.LINK_UP, cause=cause),
        ]
    if k in (InjectionKind.MALFORMED, InjectionKind.OVERSIZE, InjectionKind.IMPERSONATION):
        return [TimelineItem(inj.at, key, ItemKind.RAW, cause=cause)]
    return []


def _raw_payload(inj: Injection, boot: int, seq: int, ts: datetime, rng: random.Random) -> bytes:
    stamp = ts.isoformat(timespec="milliseconds")
    if inj.kind is InjectionKind.OVERSIZE:
        head = f'{{"boot":{boot},"seq":{seq},"ts":"{stamp}","type":"heartbeat","debug":"'
        size = inj.size or 2048
        return (head + "x" * max(0, size - len(head) - 2) + '"}').encode()
    if inj.kind is InjectionKind.IMPERSONATION:
        return encode_event(rng.randint(1000, 9999), rng.randint(0, 10**6), ts, "open")
    variant = inj.variant or "bad_json"
    if variant == "bad_json":
        return f'{{"boot":{boot},"seq":{seq},"ts":"{stamp}","type":"open"'.encode()
    if variant == "missing_field":
        return f'{{"boot":{boot},"seq":{seq},"ts":"{stamp}"}}'.encode()
    if variant == "unknown_type":
        return f'{{"boot":{boot},"seq":{seq},"ts":"{stamp}","type":"ajar"}}'.encode()
    if variant == "bad_ts":
        naive = ts.replace(tzinfo=None).isoformat(timespec="seconds")
        return f'{{"boot":{boot},"seq":{seq},"ts":"{naive}","type":"open"}}'.encode()
    if variant == "wrong_type":
        return f'{{"boot":{boot},"seq":"{seq}","ts":"{stamp}","type":"open"}}'.encode()
    if variant == "not_utf8":
        return b'{"boot":' + str(boot).encode() + b',"seq":1,"ts":"\xff\xfe","type":"open"}'
    return f'[{boot},{seq},"{stamp}","open"]'.encode()  # not_object


def _within(t: datetime, lo: datetime, hi: datetime | None) -> bool:
    return lo <= t < (hi or lo)


def plan_household(
    household: Household,
    start: datetime,
    end: datetime,
    injections: Iterable[Injection] = (),
    timeline: Iterable[TimelineItem] | None = None,
) -> Iterator[PlanItem]:
    """Every action for one household in [start, end), lazily, ordered by
    (`send_at`, `order`): its routine and heartbeats with the injections applied, with
    `boot`/`seq` counted and payloads encoded as the sensor sends them. `timeline`
    replaces the generated routine (e.g. `routines.replay_door_log`), in time order."""
    mine = sorted((i for i in injections if i.household_key == household.key), key=lambda i: i.at)
    extra = sorted((item for inj in mine for item in _injection_items(inj)), key=lambda i: i.at)
    own = iter_timeline(household, start, end) if timeline is None else iter(timeline)
    stream = heapq.merge(own, extra, key=lambda i: i.at)
    by_id = {i.injection_id: i for i in mine}
    power = [(i.at, i.end_at) for i in mine if i.kind is InjectionKind.POWER_LOSS]
    jams = [(i.at, i.end_at) for i in mine if i.kind is InjectionKind.JAMMING]
    links = [(i.at, i.end_at) for i in mine if i.kind is InjectionKind.BROKER_DISCONNECT]
    skews = [i for i in mine if i.kind is InjectionKind.CLOCK_SKEW]
    batteries = [i for i in mine if i.kind is InjectionKind.DYING_BATTERY]
    held_open = [
        (i.extends_open_at, i.end_at)
        for i in mine
        if i.extends_open_at is not None and i.end_at is not None
    ]
    dup_queue = [i for i in mine if i.kind is InjectionKind.DUPLICATE]
    ooo_queue = [i for i in mine if i.kind is InjectionKind.OUT_OF_ORDER]
    rng = random.Random(f"ansim-plan:{household.seed}:{household.key}")

    boot, seq, order = household.boot0, 0, 0
    out: list[tuple[datetime, int, PlanItem]] = []
    dup_active: list[list[Any]] = []  # [injection, events left]
    ooo_active: tuple[Injection, list[PlanItem]] | None = None
    tick = timedelta(milliseconds=1)

    def push(item: PlanItem) -> None:
        heapq.heappush(out, (item.send_at, item.order, item))

    def next_order() -> int:
        nonlocal order
        order += 1
        return order

    def battery_of(item: TimelineItem) -> int | None:
        level = item.battery
        for inj in batteries:
            assert inj.start_at is not None and inj.end_at is not None
            if item.at < inj.start_at or inj.battery_from is None or inj.battery_to is None:
                continue
            span = (inj.end_at - inj.start_at).total_seconds()
            done = min(1.0, (item.at - inj.start_at).total_seconds() / span) if span else 1.0
            curve = inj.battery_from + (inj.battery_to - inj.battery_from) * done
            level = math.floor(curve) if level is None else min(level, math.floor(curve))
        return level

    def release_ooo() -> None:
        nonlocal ooo_active
        if ooo_active is None:
            return
        _inj, held = ooo_active
        ooo_active = None
        last = max(p.at for p in held)
        for n, p in enumerate(reversed(held)):
            push(replace(p, send_at=last + n * tick, order=next_order()))

    for item in stream:
        while out and out[0][0] <= item.at:
            yield heapq.heappop(out)[2]
        at = item.at
        kind = item.kind
        if kind is ItemKind.MODE or kind in (ItemKind.POWER_OFF, ItemKind.LINK_DOWN):
            push(PlanItem(at, at, household.key, kind, next_order(), mode=item.mode,
                          cause=item.cause))  # fmt: skip
            continue
        if kind in (ItemKind.POWER_ON, ItemKind.LINK_UP):
            if kind is ItemKind.POWER_ON:
                boot, seq = boot + 1, 0
            push(PlanItem(at, at, household.key, kind, next_order(), cause=item.cause))
            continue
        # sensor messages from here on
        if any(_within(at, lo, hi) for lo, hi in power):
            continue  # no power, nothing sensed
        routine = item.cause == "routine"
        if routine and any(_within(at, lo, hi) for lo, hi in jams):
            continue  # the radio is jammed: lost
        if (
            routine
            and kind in DOOR_KINDS
            and any(lo <= at <= hi for lo, hi in held_open if lo is not None and hi is not None)
            and not (kind is ItemKind.OPEN and any(at == lo for lo, _ in held_open))
        ):
            continue  # the door is already standing open
        skew_s = sum(s.skew_s or 0.0 for s in skews if _within(at, s.at, s.end_at))
        device_ts = at + timedelta(seconds=skew_s)
        send_at = at
        for lo, hi in links:
            if _within(at, lo, hi):
                assert hi is not None
                send_at = hi + tick  # after the reconnect, in their own order
        battery = battery_of(item)
        rssi = item.rssi if item.rssi is not None else rssi_at(household, at)
        if battery is None:
            battery = math.floor(battery_at(household, start, at))
        if kind is ItemKind.RAW:
            inj = by_id[item.cause]
            payload = _raw_payload(inj, boot, seq, device_ts, rng)
            if inj.kind is not InjectionKind.IMPERSONATION:
                seq += 1
            push(
                PlanItem(send_at, at, household.key, kind, next_order(), boot=boot,
                         device_ts=device_ts, payload=payload, cause=item.cause,
                         topic_household_key=inj.target_household_key)
            )  # fmt: skip
            continue
        assert kind in SENSOR_EVENT_KINDS
        payload = encode_event(boot, seq, device_ts, kind.value, battery=battery, rssi=rssi)
        plan = PlanItem(
            send_at, at, household.key, kind, next_order(), boot=boot, seq=seq,
            device_ts=device_ts, battery=battery, rssi=rssi, payload=payload,
            counts_as_event=True, cause=item.cause,
        )  # fmt: skip
        seq += 1
        while dup_queue and dup_queue[0].at <= at:
            inj = dup_queue.pop(0)
            dup_active.append([inj, inj.events])
        copies = 0
        for entry in dup_active:
            copies += entry[0].copies
            entry[1] -= 1
        dup_cause = dup_active[0][0].injection_id if dup_active else ""
        dup_active = [e for e in dup_active if e[1] > 0]
        while ooo_queue and ooo_queue[0].at <= at and ooo_active is None:
            ooo_active = (ooo_queue.pop(0), [])
        if ooo_active is not None:
            ooo_active[1].append(plan)
            if len(ooo_active[1]) >= ooo_active[0].events:
                release_ooo()
        else:
            push(plan)
        for c in range(copies):
            delay = timedelta(seconds=round(rng.uniform(0.2, 3.0), 3)) + c * tick
            push(replace(plan, send_at=plan.send_at + delay, order=next_order(),
                         counts_as_event=False, duplicate=True, cause=dup_cause))  # fmt: skip
    release_ooo()
    while out:
        yield heapq.heappop(out)[2]


def plan_fleet(
    households: Iterable[Household],
    start: datetime,
    end: datetime,
    injections: Iterable[Injection] = (),
) -> Iterator[PlanItem]:
    """All households' plans merged by (`send_at`, household key, order), lazily."""
    by_key: dict[str, list[Injection]] = {}
    for inj in injections:
        by_key.setdefault(inj.household_key, []).append(inj)
    return heapq.merge(
        *(plan_household(h, start, end, by_key.get(h.key, ())) for h in households),
        key=lambda p: (p.send_at, p.household_key, p.order),
    )


def household_weeks(n_households: int, start: datetime, end: datetime) -> float:
    return n_households * (end - start).total_seconds() / (7 * 86_400)


def local_midnight(day: str, zone: str = "Asia/Seoul") -> datetime:
    """`"2026-11-16"` → that local midnight, aware (a helper for `--start`)."""
    from zoneinfo import ZoneInfo

    return datetime.combine(datetime.fromisoformat(day).date(), time(0), tzinfo=ZoneInfo(zone))
