"""Time values for storage and the wire: integer microseconds since the epoch (UTC),
and the RFC 3339 text that goes out. Pure: callers pass `now` in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from core.models import TimeMode

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# datetime's range less two days, so that any offset or zone still renders
_MIN_US = -62_135_596_800_000_000 + 2 * 86_400_000_000  # 0001-01-03T00:00Z
_MAX_US = 253_402_300_799_999_999 - 2 * 86_400_000_000  # 9999-12-29T23:59:59.999999Z


def from_us(value: int, offset_min: int = 0) -> datetime:
    """Microseconds → aware datetime. The wire never lets a time near datetime's limits
    in; a value beyond them (a row stored before that check) renders clamped, never
    raises."""
    tz = UTC if offset_min == 0 else timezone(timedelta(minutes=offset_min))
    clamped = min(max(value, _MIN_US), _MAX_US)
    return (_EPOCH + timedelta(microseconds=clamped)).astimezone(tz)


def offset_minutes(value: datetime) -> int:
    off = value.utcoffset()
    return 0 if off is None else int(off.total_seconds() // 60)


def rfc3339(value: datetime) -> str:
    text = value.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if text.endswith("+00:00") else text


@dataclass(frozen=True, slots=True)
class ResolvedTime:
    event_us: int
    skew_s: float | None
    skewed: bool


def resolve_event_time(
    device_us: int, received_us: int, mode: TimeMode, tolerance_s: float
) -> ResolvedTime:
    """SPEC "Time": in live mode a clock more than `tolerance_s` off the receive time is
    flagged and the receive time used instead; in replay mode device time is trusted."""
    if mode is TimeMode.REPLAY:
        return ResolvedTime(device_us, None, False)
    skew_s = (device_us - received_us) / 1_000_000
    if abs(skew_s) > tolerance_s:
        return ResolvedTime(received_us, skew_s, True)
    return ResolvedTime(device_us, skew_s, False)
