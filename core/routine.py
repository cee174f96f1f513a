"""Each household's own door routine, the evidence behind the `night_opening` rule.

Pure: no I/O and no clock. Every function takes the times it needs; times are aware
datetimes in the household's local time zone (the caller converts, see core.rules).

The model (method and parameters are documented in docs/alerts.md):

* Openings are counted in bins of `bin_minutes` (15 min) of the local time of day, for two
  day types. A day starts at local noon, so 01:00 on Saturday belongs to Friday's night:
  Friday and Saturday nights are `weekend`, the others `weekday`.
* Counts fade exponentially (half-life `half_life_days`, 28 days), so the model follows a
  resident whose life changes; they are stored already faded to `ref_at`.
* An opening at time t is judged by the evidence of similar openings: a Gaussian kernel
  (sigma `kernel_sigma_min`, cut at `kernel_radius_min`) over the neighbouring bins of the
  same day type, circular across midnight, plus the other day type at `cross_type_weight`.
  Each bin counts at most `bin_cap_rate` (0.05) openings per observed day, so a daily habit
  does not spill its weight onto the quiet hours next to it (an intruder an hour and a half
  after a night-shift departure is still seen).
* The evidence is turned into a rate (similar openings per observed day) blended with a
  prior: rate = (evidence + prior_days * prior_night_rate) / (observed_days + prior_days).
  A night opening is unusual when this rate is below `threshold_rate` (about once in 60
  days) or the evidence is below `min_evidence` (0.3).
* Cold start: until `min_history_days` (3 days) have been observed every opening inside
  the night window is unusual; after that the prior still weighs `prior_days` (7) days,
  so a habit seen once or twice is trusted, and after about a week own evidence dominates.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from core.models import NightWindow

MODEL_VERSION = 1
_DAY = timedelta(days=1)
_NOON_SHIFT = timedelta(hours=12)


class DayType(enum.StrEnum):
    WEEKDAY = "weekday"
    WEEKEND = "weekend"


@dataclass(frozen=True, slots=True)
class RoutineParams:
    """Tuning of the routine model; the defaults are the documented ones."""

    bin_minutes: int = 15
    kernel_sigma_min: float = 40.0
    kernel_radius_min: int = 120
    half_life_days: float = 28.0
    cross_type_weight: float = 0.5
    prior_night_rate: float = 0.002
    prior_days: float = 7.0
    min_history_days: float = 3.0
    threshold_rate: float = 1.0 / 60.0
    min_evidence: float = 0.3
    bin_cap_rate: float = 0.05

    def __post_init__(self) -> None:
        if self.bin_minutes <= 0 or 1440 % self.bin_minutes:
            raise ValueError("bin_minutes must divide a day (1440 minutes)")
        if self.half_life_days <= 0 or self.kernel_sigma_min <= 0:
            raise ValueError("half_life_days and kernel_sigma_min must be positive")

    @property
    def bins_per_day(self) -> int:
        return 1440 // self.bin_minutes

    @property
    def time_constant_days(self) -> float:
        return self.half_life_days / math.log(2)


DEFAULT_ROUTINE_PARAMS = RoutineParams()


class Judgement(NamedTuple):
    """`unusual`, the smoothed `score` (similar openings per day, lower is stranger) and a
    sentence a resident or an operator can read."""

    unusual: bool
    score: float
    explanation: str


@dataclass(frozen=True, slots=True)
class RoutineModel:
    """Faded opening counts per day type and local time-of-day bin (bin 0 starts at noon).

    `started_at` is when observation began (the cold-start clock), `ref_at` the time the
    counts are faded to, `last_learned_at` the latest opening learned (for outings).
    """

    bin_minutes: int
    weekday: tuple[float, ...]
    weekend: tuple[float, ...]
    started_at: datetime | None = None
    ref_at: datetime | None = None
    last_learned_at: datetime | None = None
    openings: int = 0

    @classmethod
    def empty(
        cls, started_at: datetime | None = None, params: RoutineParams = DEFAULT_ROUTINE_PARAMS
    ) -> RoutineModel:
        if started_at is not None:
            _require_aware(started_at)
        zeros = (0.0,) * params.bins_per_day
        return cls(params.bin_minutes, zeros, zeros, started_at=started_at)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the bridge stores it per household)."""
        return {
            "version": MODEL_VERSION,
            "bin_minutes": self.bin_minutes,
            "weekday": [round(v, 6) for v in self.weekday],
            "weekend": [round(v, 6) for v in self.weekend],
            "started_at": _iso(self.started_at),
            "ref_at": _iso(self.ref_at),
            "last_learned_at": _iso(self.last_learned_at),
            "openings": self.openings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoutineModel:
        if data.get("version") != MODEL_VERSION:
            raise ValueError(f"unsupported routine model version {data.get('version')!r}")
        bin_minutes = int(data["bin_minutes"])
        weekday = tuple(float(v) for v in data["weekday"])
        weekend = tuple(float(v) for v in data["weekend"])
        if bin_minutes <= 0 or len(weekday) != 1440 // bin_minutes or len(weekend) != len(weekday):
            raise ValueError("routine model bins do not match bin_minutes")
        return cls(
            bin_minutes,
            weekday,
            weekend,
            started_at=_parse_iso(data.get("started_at")),
            ref_at=_parse_iso(data.get("ref_at")),
            last_learned_at=_parse_iso(data.get("last_learned_at")),
            openings=int(data.get("openings", 0)),
        )

    def counts(self, day_type: DayType) -> tuple[float, ...]:
        return self.weekday if day_type is DayType.WEEKDAY else self.weekend


def night_of(local: datetime) -> date:
    """The date of the evening a local time belongs to (days start at local noon)."""
    return (local.replace(tzinfo=None) - _NOON_SHIFT).date()


def day_type_of(local: datetime) -> DayType:
    """Friday and Saturday nights (and the following mornings) are weekend nights."""
    return DayType.WEEKEND if night_of(local).weekday() in (4, 5) else DayType.WEEKDAY


def bin_of(local: datetime, bin_minutes: int) -> int:
    minutes_since_noon = ((local.hour - 12) % 24) * 60 + local.minute
    return minutes_since_noon // bin_minutes


def update(
    model: RoutineModel,
    opened_at_local: datetime,
    params: RoutineParams = DEFAULT_ROUTINE_PARAMS,
    weight: float = 1.0,
) -> RoutineModel:
    """Learn one opening (local, aware). A negative `weight` takes evidence back (an opening
    that turned out to be an incident); counts never go below zero."""
    _require_aware(opened_at_local)
    _require_compatible(model, params)
    tau = params.time_constant_days
    started_at = model.started_at or opened_at_local
    weekday, weekend = list(model.weekday), list(model.weekend)
    ref_at = model.ref_at
    if ref_at is None:
        ref_at = opened_at_local
    elif opened_at_local > ref_at:
        fade = math.exp(-_days(opened_at_local - ref_at) / tau)
        weekday = [v * fade for v in weekday]
        weekend = [v * fade for v in weekend]
        ref_at = opened_at_local
    effective = weight * math.exp(-_days(ref_at - opened_at_local) / tau)
    counts = weekday if day_type_of(opened_at_local) is DayType.WEEKDAY else weekend
    b = bin_of(opened_at_local, params.bin_minutes)
    counts[b] = max(0.0, counts[b] + effective)
    last = model.last_learned_at
    if weight > 0 and (last is None or opened_at_local > last):
        last = opened_at_local
    return replace(
        model,
        weekday=tuple(weekday),
        weekend=tuple(weekend),
        started_at=min(started_at, opened_at_local),
        ref_at=ref_at,
        last_learned_at=last,
        openings=model.openings + (1 if weight > 0 else 0),
    )


def observed_days(model: RoutineModel, at_local: datetime) -> float:
    """Days between the start of observation and `at_local` (not faded)."""
    if model.started_at is None:
        return 0.0
    return max(0.0, _days(at_local - model.started_at))


def evidence_at(
    model: RoutineModel, at_local: datetime, params: RoutineParams = DEFAULT_ROUTINE_PARAMS
) -> tuple[float, float]:
    """Kernel-weighted, faded count of openings near `at_local`'s time of day:
    (same day type, other day type). Each bin counts at most `bin_cap_rate` openings per
    observed day (plus the prior's days) of its type."""
    _require_compatible(model, params)
    if model.ref_at is None:
        return 0.0, 0.0
    # a time before the reference (a late or replayed opening, or a clock far behind)
    # sees the counts as they are: un-fading them would grow without bound (exp overflow)
    fade = math.exp(-max(0.0, _days(at_local - model.ref_at)) / params.time_constant_days)
    kind = day_type_of(at_local)
    other = DayType.WEEKEND if kind is DayType.WEEKDAY else DayType.WEEKDAY
    same_counts, other_counts = model.counts(kind), model.counts(other)
    same_days, other_days = exposure_days(model, at_local, params)
    same_cap = _cap(params, same_days)
    other_cap = _cap(params, other_days)
    n = params.bins_per_day
    centre = bin_of(at_local, params.bin_minutes)
    same = cross = 0.0
    for offset, w in _kernel(params):
        i = (centre + offset) % n
        same += w * min(same_counts[i] * fade, same_cap)
        cross += w * min(other_counts[i] * fade, other_cap)
    return same, cross


def _cap(params: RoutineParams, days: float) -> float:
    if params.bin_cap_rate <= 0:
        return math.inf
    return params.bin_cap_rate * (days + params.prior_days)


def exposure_days(
    model: RoutineModel, at_local: datetime, params: RoutineParams = DEFAULT_ROUTINE_PARAMS
) -> tuple[float, float]:
    """Faded number of observed days up to `at_local`: (same day type, other day type)."""
    if model.started_at is None or at_local <= model.started_at:
        return 0.0, 0.0
    tau = params.time_constant_days
    end = at_local.replace(tzinfo=None)
    start = model.started_at.astimezone(at_local.tzinfo).replace(tzinfo=None)
    start = max(start, end - timedelta(days=8 * tau))
    kind = day_type_of(at_local)
    same = other = 0.0
    cursor = start
    while cursor < end:
        # the next local noon after `cursor` ends this day's segment
        noon = datetime.combine(night_of(cursor) + _DAY, datetime.min.time()) + _NOON_SHIFT
        seg_end = min(noon, end)
        weight = tau * (
            math.exp(-_days(end - seg_end) / tau) - math.exp(-_days(end - cursor) / tau)
        )
        if day_type_of(cursor) is kind:
            same += weight
        else:
            other += weight
        cursor = seg_end
    return same, other


def is_unusual(
    model: RoutineModel,
    at_local: datetime,
    night_window: NightWindow,
    params: RoutineParams = DEFAULT_ROUTINE_PARAMS,
) -> Judgement:
    """Is an opening at `at_local` (aware, household time zone) unusual for this household?

    Only openings inside the night window can be unusual. Call it before `update` learns
    the same opening."""
    _require_aware(at_local)
    if not night_window.contains(at_local.time()):
        # the common case, decided before any arithmetic on the model (hot path)
        return Judgement(False, 0.0, f"{at_local:%H:%M} is outside the night window {night_window}")
    night = night_of(at_local)
    when = f"{at_local:%H:%M} in the night of {night:%a %Y-%m-%d} ({day_type_of(at_local).value})"
    same_e, cross_e = evidence_at(model, at_local, params)
    same_d, cross_d = exposure_days(model, at_local, params)
    w = params.cross_type_weight
    evidence = same_e + w * cross_e
    days = same_d + w * cross_d
    prior = params.prior_days * params.prior_night_rate
    rate = (evidence + prior) / (days + params.prior_days)
    history = observed_days(model, at_local)
    if history < params.min_history_days:
        return Judgement(
            True,
            rate,
            f"{when} is inside the night window {night_window} and only {history:.1f} days"
            f" of history exist (cold start: every night opening is reported until"
            f" {params.min_history_days:g} days)",
        )
    stats = (
        f"{evidence:.2f} similar openings in {history:.0f} days of history"
        f" (rate {rate:.3f}/day, threshold {params.threshold_rate:.3f}/day,"
        f" minimum evidence {params.min_evidence:g})"
    )
    if rate < params.threshold_rate or evidence < params.min_evidence:
        return Judgement(
            True, rate, f"{when} is inside the night window {night_window}: unusual, {stats}"
        )
    return Judgement(
        False, rate, f"{when} is inside the night window {night_window} but usual, {stats}"
    )


def _kernel(params: RoutineParams) -> list[tuple[int, float]]:
    radius = params.kernel_radius_min // params.bin_minutes
    return [
        (k, math.exp(-0.5 * (k * params.bin_minutes / params.kernel_sigma_min) ** 2))
        for k in range(-radius, radius + 1)
    ]


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86_400.0


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("routine times must be timezone-aware local times")


def _require_compatible(model: RoutineModel, params: RoutineParams) -> None:
    if model.bin_minutes != params.bin_minutes:
        raise ValueError(
            f"routine model has {model.bin_minutes}-minute bins, params {params.bin_minutes}"
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_iso(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO timestamp, got {value!r}")
    parsed = datetime.fromisoformat(value)
    _require_aware(parsed)
    return parsed
