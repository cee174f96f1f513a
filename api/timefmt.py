"""Timestamps out of the API: RFC 3339 with an offset, in the household's zone."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from core.timeutil import from_us, rfc3339


def now_us() -> int:
    return time.time_ns() // 1000


def fmt_us(value: int | None, zone: str = "UTC") -> str | None:
    if value is None:
        return None
    return rfc3339(from_us(value).astimezone(ZoneInfo(zone)))


def fmt_dt(value: datetime) -> str:
    return rfc3339(value)
