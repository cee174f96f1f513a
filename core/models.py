"""Domain vocabulary shared by every app: enums and small value types.

Pure: no I/O, no clock. Everything time-related takes timezone-aware datetimes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import time

SENSOR_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


class Role(enum.StrEnum):
    OPERATOR = "operator"
    RESIDENT = "resident"


class EventType(enum.StrEnum):
    OPEN = "open"
    CLOSE = "close"
    TAMPER = "tamper"
    HEARTBEAT = "heartbeat"


class SensorStatus(enum.StrEnum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"
    RETIRED = "retired"


class Mode(enum.StrEnum):
    DISARMED = "disarmed"
    HOME = "home"
    NIGHT = "night"
    AWAY = "away"


class TimeMode(enum.StrEnum):
    LIVE = "live"
    REPLAY = "replay"


class AlertKind(enum.StrEnum):
    INTRUSION = "intrusion"
    NIGHT_OPENING = "night_opening"
    DOOR_LEFT_OPEN = "door_left_open"
    TAMPER = "tamper"
    SENSOR_OFFLINE = "sensor_offline"
    BATTERY_LOW = "battery_low"
    HELP = "help"  # she pressed the help button (not an answer to an alert)
    DURESS = "duress"  # she disarmed with her duress PIN: for the control centre only


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Resolution(enum.StrEnum):
    FALSE_ALARM = "false_alarm"
    CONFIRMED = "confirmed"


# The kinds about safety on the street around her door (docs/grading.md "What counts"): a
# confirmed one is an incident that feeds the segment grades. The others are about the
# device or the door itself (door_left_open, tamper, sensor_offline, battery_low): confirming
# them says "yes, that happened", never that the street is less safe. A `help` press or a
# `duress` disarm is a threat at her door too, but like every kind it counts only once an
# operator resolved it `confirmed` (a press by mistake, resolved false_alarm, never counts).
DEFAULT_K = 3
"""Incident detail of a segment is published only with at least this many households
(k-anonymity, SPEC "Privacy"); `ANSIM_GRADE_K`."""

INCIDENT_KINDS = frozenset(
    {AlertKind.INTRUSION, AlertKind.NIGHT_OPENING, AlertKind.HELP, AlertKind.DURESS}
)
# Kinds the resident never sees (her list, her stream, her webhook): a duress disarm must
# look exactly like a normal one on her side.
HIDDEN_FROM_RESIDENT = frozenset({AlertKind.DURESS})


def is_incident(kind: AlertKind | str, resolution: Resolution | str | None) -> bool:
    """A resolved alert that feeds the grades: `confirmed`, and of an incident kind."""
    return resolution == Resolution.CONFIRMED and kind in INCIDENT_KINDS


@dataclass(frozen=True, slots=True)
class NightWindow:
    """A local-time window that may cross midnight, e.g. 23:00-06:00."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> NightWindow:
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
        if not m:
            raise ValueError(f"night window must look like '23:00-06:00', got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if not (0 <= h1 < 24 and 0 <= h2 < 24 and 0 <= m1 < 60 and 0 <= m2 < 60):
            raise ValueError(f"night window has an impossible time: {text!r}")
        if (h1, m1) == (h2, m2):
            raise ValueError("night window start and end must differ")
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


DEFAULT_NIGHT_WINDOW = NightWindow(time(23, 0), time(6, 0))
