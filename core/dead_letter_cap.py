"""The dead-letter rate cap, pure: which dead letters are stored with their payload and
which are only counted.

A sensor's credentials let anyone publish what they like on that sensor's topics; every
message that breaks the contract becomes a dead letter. Stored without limit, they fill the
disk. So per source (the sensor id a topic names, or the topic itself when it names none)
and per fixed window of `window_s` seconds (aligned to the epoch), the first `cap` dead
letters are stored whole; the rest are only counted in the source's tally for that window,
with the last reason seen. The caller reads how many each (source, window) has stored so
far, inside the same write transaction, and passes that in: no clock, no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.ingest import DeadLetter

WindowKey = tuple[str, int]  # (source, window start in µs)


DEFAULT_CAP = 100  # the settings' defaults too (ANSIM_DEAD_LETTER_CAP_PER_SENSOR, ..._WINDOW_S)
DEFAULT_WINDOW_S = 3600


@dataclass(frozen=True, slots=True)
class DeadLetterCap:
    cap: int = DEFAULT_CAP  # stored whole per source and window (0: every one only counted)
    window_s: int = DEFAULT_WINDOW_S  # window length in seconds

    def __post_init__(self) -> None:
        if self.cap < 0 or self.window_s < 1:
            raise ValueError(f"invalid dead-letter cap {self.cap} per {self.window_s} s")


@dataclass(slots=True)
class Tally:
    """What one source sent in one window, within the batch being decided."""

    source: str
    window_start_us: int
    sensor_id: str | None
    topic: str
    first_us: int
    stored: int = 0
    suppressed: int = 0
    last_us: int = 0
    last_reason: str = ""
    last_detail: str = ""


@dataclass(slots=True)
class CapDecision:
    store: list[DeadLetter] = field(default_factory=list)  # kept whole, in arrival order
    tallies: dict[WindowKey, Tally] = field(default_factory=dict)  # increments per window

    @property
    def suppressed(self) -> int:
        return sum(t.suppressed for t in self.tallies.values())


def dead_letter_source(dead: DeadLetter) -> str:
    """Who the cap counts against: the sensor the topic names, else the topic."""
    return dead.sensor_id if dead.sensor_id else f"topic:{dead.topic[:200]}"


def window_start_us(received_us: int, window_s: int) -> int:
    width = window_s * 1_000_000
    return received_us - received_us % width


def window_key(dead: DeadLetter, window_s: int) -> WindowKey:
    return (dead_letter_source(dead), window_start_us(dead.received_us, window_s))


def decide_dead_letters(
    dead: Iterable[DeadLetter],
    stored_so_far: Mapping[WindowKey, int],
    policy: DeadLetterCap,
) -> CapDecision:
    """Store while the source's window is under the cap, count the rest."""
    out = CapDecision()
    for d in dead:
        key = window_key(d, policy.window_s)
        tally = out.tallies.get(key)
        if tally is None:
            tally = out.tallies[key] = Tally(key[0], key[1], d.sensor_id, d.topic, d.received_us)
        if stored_so_far.get(key, 0) + tally.stored < policy.cap:
            tally.stored += 1
            out.store.append(d)
        else:
            tally.suppressed += 1
        tally.first_us = min(tally.first_us, d.received_us)
        if d.received_us >= tally.last_us:
            tally.last_us = d.received_us
            tally.last_reason = d.reason
            tally.last_detail = d.detail
            tally.topic = d.topic
    return out
