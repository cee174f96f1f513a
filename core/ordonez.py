"""Parser of the Ordóñez A sensor log (UCI "Activities of Daily Living (ADLs) Recognition
Using Binary Sensors", Ordóñez, de Toledo and Sanchis, Sensors 13(5), 2013; CC BY 4.0).

The log is tab-separated text: two header lines, then one line per sensor activation,
`Start time <tabs> End time <tabs> Location <tabs> Type <tabs> Place`, times as
`YYYY-MM-DD HH:MM:SS` in the home's local time. Pure: the caller reads the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

_FIELDS = re.compile(r"\t+")
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class SensorInterval:
    """One activation of a binary sensor, from `start` to `end` (naive local times)."""

    start: datetime
    end: datetime
    location: str
    type: str
    place: str


def parse_sensor_log(text: str) -> list[SensorInterval]:
    """Every activation in the log; header, rule and blank lines are skipped, anything else
    malformed raises ValueError naming the line."""
    out: list[SensorInterval] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("Start time", "-")):
            continue
        fields = _FIELDS.split(stripped)
        if len(fields) != 5:
            raise ValueError(f"line {number}: expected 5 tab-separated fields, got {fields!r}")
        try:
            start = datetime.strptime(fields[0].strip(), _TIME_FORMAT)
            end = datetime.strptime(fields[1].strip(), _TIME_FORMAT)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from exc
        if end < start:
            raise ValueError(f"line {number}: ends before it starts")
        location, kind, place = (f.strip() for f in fields[2:])
        out.append(SensorInterval(start, end, location, kind, place))
    return out


def door_openings(
    intervals: Iterable[SensorInterval], zone: tzinfo, location: str = "Maindoor"
) -> list[tuple[datetime, datetime]]:
    """(opened_at, closed_at) of the door sensor, aware in `zone`, in time order."""
    return sorted(
        (i.start.replace(tzinfo=zone), i.end.replace(tzinfo=zone))
        for i in intervals
        if i.location == location
    )
