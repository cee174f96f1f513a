"""Adjusted street-segment grades: the CPTED base grade worsened by confirmed incidents.

Pure: no I/O and no clock — `now` is always an argument. The method is written up for
planners in docs/grading.md; in short, for every segment j:

1. Each *confirmed* incident i that is not in the future and not older than
   `max_age_days` contributes

       w_ij = K(d_ij) · 2^(−age_i / half_life_days)

   where d_ij is the distance in metres from the incident to the segment and K is the
   quartic (biweight) kernel with bandwidth h = `bandwidth_m`, the kernel used for crime
   hot-spot maps:  K(d) = (1 − (d/h)²)² for d < h, else 0.  False alarms never count.
2. Weighted incidents  S_j = Σ_i w_ij.
3. Household exposure  E_j = Σ_k K(d_jk) · n_k  over the segments k that have n_k enrolled
   households behind them (d_jk from segment k's midpoint to segment j), i.e. the enrolled
   households around j smoothed with the same kernel. More sensors see more incidents;
   dividing by exposure turns a count into a rate.
4. Score  r_j = S_j / (`prior_households` + E_j): age- and distance-weighted confirmed
   incidents per enrolled household nearby. The prior keeps a lone incident where few
   households are enrolled from dominating.
5. Step  = how many of the `thresholds` r_j reaches (0…4). With hysteresis, a step that
   the previous adjusted grade already had is kept until r_j falls below
   (1 − `hysteresis`) × its threshold, so grades do not flicker around a threshold.
6. Adjusted grade  = min(base + step, 5): never better than the base grade, always 1..5.

Every SegmentGrade carries its explanation: the incidents and their weights, the score,
the grade before (the previous adjusted grade, or the base grade the first time) and after.

Publishing: a segment's incident detail is shown only when at least k (default 3)
enrolled households stand behind it (`publish_grade`).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import shapely

from core.geo import MAX_GRADE, MIN_GRADE, Segment, SegmentIndex
from core.models import DEFAULT_K, AlertKind, Resolution, is_incident

__all__ = [
    "DEFAULT_K",
    "DEFAULT_PARAMS",
    "Contribution",
    "GradeParams",
    "GradeSummary",
    "Incident",
    "PublicGrade",
    "Segment",
    "SegmentGrade",
    "detail_visible",
    "grade_segments",
    "incident_weight",
    "kernel_weight",
    "publish_grade",
    "summarise_grades",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


Contribution = tuple[str, float]
"""(incident_id, weight): one incident's share of a segment's weighted incidents."""


@dataclass(frozen=True, slots=True)
class GradeParams:
    """Parameters of the adjustment; the defaults are explained in docs/grading.md.

    bandwidth_m       quartic-kernel radius: an incident counts for segments within it
    half_life_days    an incident's weight halves every this many days
    max_age_days      incidents older than this are ignored (4 half-lives ≈ 6 % weight)
    prior_households  household-equivalents added to the exposure (the rate's prior)
    thresholds        score needed for +1, +2, … grade steps (strictly increasing)
    hysteresis        a step already held is kept until the score falls below
                      (1 − hysteresis) × its threshold
    """

    bandwidth_m: float = 150.0
    half_life_days: float = 180.0
    max_age_days: float = 730.0
    prior_households: float = 1.0
    thresholds: tuple[float, ...] = (0.3, 0.7, 1.2, 2.0)
    hysteresis: float = 0.2

    def __post_init__(self) -> None:
        if not self.bandwidth_m > 0:
            raise ValueError("bandwidth_m must be positive")
        if not self.half_life_days > 0:
            raise ValueError("half_life_days must be positive")
        if not self.max_age_days >= 0:
            raise ValueError("max_age_days must not be negative")
        if not self.prior_households > 0:
            raise ValueError("prior_households must be positive")
        t = self.thresholds
        if not 1 <= len(t) <= MAX_GRADE - MIN_GRADE:
            raise ValueError("thresholds needs between 1 and 4 values")
        if not all(x > 0 and math.isfinite(x) for x in t) or any(
            b <= a for a, b in itertools.pairwise(t)
        ):
            raise ValueError("thresholds must be positive, finite and strictly increasing")
        if not 0 <= self.hysteresis < 1:
            raise ValueError("hysteresis must be in [0, 1)")


DEFAULT_PARAMS = GradeParams()


@dataclass(frozen=True, slots=True)
class Incident:
    """A resolved alert at a location. Only `confirmed` incidents ever count."""

    incident_id: str
    lat: float
    lon: float
    occurred_at: datetime
    confirmed: bool

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise ValueError(f"incident {self.incident_id}: occurred_at must be timezone-aware")
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise ValueError(f"incident {self.incident_id}: impossible location")

    @classmethod
    def from_resolution(
        cls,
        incident_id: str,
        lat: float,
        lon: float,
        occurred_at: datetime,
        resolution: Resolution | str | None,
        kind: AlertKind | str | None = None,
    ) -> Incident:
        """An incident from an alert's resolution; anything but `confirmed` never counts, nor
        does an alert of a kind that is not about the street (`core.models.INCIDENT_KINDS`;
        `kind` None: not known, the resolution alone decides)."""
        if kind is None:
            return cls(incident_id, lat, lon, occurred_at, resolution == Resolution.CONFIRMED)
        return cls(incident_id, lat, lon, occurred_at, is_incident(kind, resolution))


@dataclass(frozen=True, slots=True)
class SegmentGrade:
    """The adjusted grade of one segment, with everything needed to explain it.

    score               S / (prior + E), see the module doc
    weighted_incidents  S, the sum of `contributions`' weights
    household_exposure  E, kernel-weighted enrolled households around the segment
    contributions       (incident_id, weight), heaviest first
    previous_grade      the previous adjusted grade given as input (None the first time)
    held                True when hysteresis kept a step the score alone would drop
    """

    segment_id: str
    base_grade: int
    grade: int
    score: float
    contributions: tuple[Contribution, ...]
    previous_grade: int | None = None
    weighted_incidents: float = 0.0
    household_exposure: float = 0.0
    held: bool = False

    @property
    def before(self) -> int:
        """The grade this recompute started from: previous adjusted grade, else base."""
        return self.base_grade if self.previous_grade is None else self.previous_grade

    @property
    def changed(self) -> bool:
        return self.grade != self.before

    def explanation(self) -> str:
        """One line for operators: before -> after, the score, and the incidents behind it."""
        head = f"{self.before} -> {self.grade} (base {self.base_grade})"
        if not self.contributions:
            if self.grade == self.base_grade:
                return f"{head}: no confirmed incidents nearby"
            return f"{head}: no confirmed incidents nearby any more"
        parts = ", ".join(f"{i} {w:.2f}" for i, w in self.contributions[:10])
        more = len(self.contributions) - 10
        if more > 0:
            parts += f", … {more} more"
        held = "; held by hysteresis" if self.held else ""
        return (
            f"{head}: score {self.score:.2f} = {self.weighted_incidents:.2f} weighted incidents"
            f" / ({self.household_exposure:.2f} households nearby + prior){held};"
            f" incidents: {parts}"
        )


@dataclass(frozen=True, slots=True)
class PublicGrade:
    """What may be published about a segment; detail only with >= k households behind it."""

    segment_id: str
    base_grade: int
    grade: int
    detail_suppressed: bool
    score: float | None
    incident_count: int | None
    contributions: tuple[Contribution, ...] | None
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "base_grade": self.base_grade,
            "grade": self.grade,
            "detail_suppressed": self.detail_suppressed,
            "score": self.score,
            "incident_count": self.incident_count,
            "contributions": (
                None
                if self.contributions is None
                else [{"incident_id": i, "weight": w} for i, w in self.contributions]
            ),
            "explanation": self.explanation,
        }


@dataclass(frozen=True, slots=True)
class GradeSummary:
    """Counts for a recompute's answer and its history row."""

    segments: int
    raised: int
    lowered: int
    unchanged: int
    above_base: int
    by_grade: dict[int, int] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return self.raised + self.lowered


def kernel_weight(distance_m: float, bandwidth_m: float) -> float:
    """Quartic (biweight) kernel: 1 at 0 m, 0 from `bandwidth_m` on."""
    if distance_m >= bandwidth_m:
        return 0.0
    u = distance_m / bandwidth_m
    return (1 - u * u) ** 2


def incident_weight(
    distance_m: float, occurred_at: datetime, now: datetime, params: GradeParams
) -> float:
    """The weight of one confirmed incident for a segment at `distance_m` (scalar form)."""
    age = _age_days(occurred_at, now)
    if age < 0 or age > params.max_age_days:
        return 0.0
    decay: float = 0.5 ** (age / params.half_life_days)
    return kernel_weight(distance_m, params.bandwidth_m) * decay


def grade_segments(
    segments: Sequence[Segment] | SegmentIndex,
    incidents: Iterable[Incident],
    households_per_segment: Mapping[str, int],
    previous: Mapping[str, int],
    params: GradeParams,
    now: datetime,
) -> list[SegmentGrade]:
    """Adjusted grades of every segment, in the segments' order.

    segments                the segments, or a prebuilt `SegmentIndex` (faster when reused)
    incidents               all incidents; unconfirmed, future and too old ones are ignored
    households_per_segment  enrolled households behind each segment id (unknown ids ignored)
    previous                the previous adjusted grade per segment id, for hysteresis
    params                  see `GradeParams`
    now                     timezone-aware time the ages are measured from
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    index = segments if isinstance(segments, SegmentIndex) else SegmentIndex(segments)
    n = len(index)
    h = params.bandwidth_m

    counted = _counted_incidents(incidents, params, now)
    ids = [inc.incident_id for inc, _ in counted]
    age_w = np.array([w for _, w in counted], dtype=np.float64)
    xs, ys = index.projection.to_xy_arrays(
        [inc.lat for inc, _ in counted], [inc.lon for inc, _ in counted]
    )

    # Incident -> segment pairs within the bandwidth, weighted by distance and age.
    src, seg, dist = index.pairs_within(xs, ys, h)
    weight = _quartic(dist, h) * age_w[src]
    live = weight > 0
    src, seg, weight = src[live], seg[live], weight[live]
    weighted = np.bincount(seg, weights=weight, minlength=n).astype(np.float64)

    exposure = _household_exposure(index, households_per_segment, weighted > 0, h)
    score = weighted / (params.prior_households + exposure)

    # Steps with hysteresis.
    thresholds = np.asarray(params.thresholds, dtype=np.float64)
    raw_step = np.searchsorted(thresholds, score, side="right")
    keep_step = np.searchsorted(thresholds * (1 - params.hysteresis), score, side="right")
    base = index.base_grades.astype(np.intp)
    prev = np.fromiter((previous.get(sid, -1) for sid in index.segment_ids), dtype=np.intp, count=n)
    has_prev = prev >= 0
    prev_step = np.where(has_prev, np.clip(prev - base, 0, len(thresholds)), 0)
    step = np.where(raw_step >= prev_step, raw_step, np.minimum(prev_step, keep_step))
    held = step > raw_step
    grade = np.minimum(base + step, MAX_GRADE)

    # Contributions per segment, heaviest first (ties by incident order).
    order = np.lexsort((src, -weight, seg))
    seg_sorted = seg[order]
    bounds = np.searchsorted(seg_sorted, np.arange(n + 1)).tolist()
    contrib_ids = [ids[i] for i in src[order].tolist()]
    contrib_w = weight[order].tolist()

    out: list[SegmentGrade] = []
    sids = index.segment_ids
    base_l, grade_l, score_l = base.tolist(), grade.tolist(), score.tolist()
    weighted_l, exposure_l, held_l = weighted.tolist(), exposure.tolist(), held.tolist()
    prev_l = [p if ok else None for p, ok in zip(prev.tolist(), has_prev.tolist(), strict=True)]
    for j in range(n):
        a, b = bounds[j], bounds[j + 1]
        out.append(
            SegmentGrade(
                segment_id=sids[j],
                base_grade=base_l[j],
                grade=grade_l[j],
                score=score_l[j],
                contributions=tuple(zip(contrib_ids[a:b], contrib_w[a:b], strict=True)),
                previous_grade=prev_l[j],
                weighted_incidents=weighted_l[j],
                household_exposure=exposure_l[j],
                held=held_l[j],
            )
        )
    return out


def detail_visible(households_behind: int, k: int = DEFAULT_K) -> bool:
    """k-anonymity: a segment's incident detail may be shown only with >= k households."""
    return households_behind >= k


def publish_grade(grade: SegmentGrade, households_behind: int, k: int = DEFAULT_K) -> PublicGrade:
    """The publishable view of a grade: incident detail suppressed below k households."""
    if detail_visible(households_behind, k):
        return PublicGrade(
            segment_id=grade.segment_id,
            base_grade=grade.base_grade,
            grade=grade.grade,
            detail_suppressed=False,
            score=grade.score,
            incident_count=len(grade.contributions),
            contributions=grade.contributions,
            explanation=grade.explanation(),
        )
    return PublicGrade(
        segment_id=grade.segment_id,
        base_grade=grade.base_grade,
        grade=grade.grade,
        detail_suppressed=True,
        score=None,
        incident_count=None,
        contributions=None,
        explanation=(
            f"{grade.before} -> {grade.grade} (base {grade.base_grade}); incident detail"
            f" suppressed: fewer than {k} enrolled households behind this segment"
        ),
    )


def summarise_grades(grades: Iterable[SegmentGrade]) -> GradeSummary:
    raised = lowered = unchanged = above = total = 0
    by_grade: Counter[int] = Counter()
    for g in grades:
        total += 1
        by_grade[g.grade] += 1
        if g.grade > g.before:
            raised += 1
        elif g.grade < g.before:
            lowered += 1
        else:
            unchanged += 1
        if g.grade > g.base_grade:
            above += 1
    return GradeSummary(
        segments=total,
        raised=raised,
        lowered=lowered,
        unchanged=unchanged,
        above_base=above,
        by_grade={k: by_grade[k] for k in range(MIN_GRADE, MAX_GRADE + 1)},
    )


def _age_days(occurred_at: datetime, now: datetime) -> float:
    return (now - occurred_at).total_seconds() / 86_400.0


def _counted_incidents(
    incidents: Iterable[Incident], params: GradeParams, now: datetime
) -> list[tuple[Incident, float]]:
    """Confirmed incidents in [now − max_age, now] with their age weight."""
    seen: set[str] = set()
    out = []
    for inc in incidents:
        if inc.incident_id in seen:
            raise ValueError(f"duplicate incident id {inc.incident_id!r}")
        seen.add(inc.incident_id)
        if not inc.confirmed:
            continue
        age = _age_days(inc.occurred_at, now)
        if age < 0 or age > params.max_age_days:
            continue
        out.append((inc, 0.5 ** (age / params.half_life_days)))
    return out


def _quartic(dist: FloatArray, bandwidth: float) -> FloatArray:
    u2 = np.square(dist / bandwidth)
    return cast(FloatArray, np.where(u2 < 1.0, np.square(1.0 - u2), 0.0))


def _household_exposure(
    index: SegmentIndex,
    households_per_segment: Mapping[str, int],
    needed: npt.NDArray[np.bool_],
    bandwidth: float,
) -> FloatArray:
    """E_j for the segments in `needed` (elsewhere 0, where it does not matter: S_j = 0)."""
    n = len(index)
    exposure = np.zeros(n, dtype=np.float64)
    homes: list[int] = []
    counts: list[int] = []
    for sid, count in households_per_segment.items():
        if count > 0:
            try:
                homes.append(index.position(sid))
            except KeyError:
                continue
            counts.append(count)
    targets = np.flatnonzero(needed)
    if not homes or len(targets) == 0:
        return exposure
    home_xy = index.midpoints_xy[np.asarray(homes, dtype=np.intp)]
    tree = shapely.STRtree(shapely.points(home_xy))
    b = cast(FloatArray, shapely.bounds(index.lines[targets]))
    h = bandwidth
    boxes = shapely.box(b[:, 0] - h, b[:, 1] - h, b[:, 2] + h, b[:, 3] + h)
    pairs = cast(IntArray, tree.query(boxes))
    if pairs.shape[1] == 0:
        return exposure
    tgt, home = targets[pairs[0]], pairs[1]
    dist = index.distances(home_xy[home], tgt)
    w = _quartic(dist, bandwidth) * np.asarray(counts, dtype=np.float64)[home]
    exposure += np.bincount(tgt, weights=w, minlength=n)
    return exposure
