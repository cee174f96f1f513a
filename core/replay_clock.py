"""The replay event clock (SPEC "Time": in `replay` mode timers follow the events' own
times). One sensor must not be able to move it for everyone: a device whose clock says
year 2999 would otherwise make every other sensor silent and every timer due at once.

So the clock follows the events, except that a jump of more than `max_jump_us` ahead
needs a second sensor to agree, when other sensors are speaking: the jump is held until
another sensor also reports a time beyond the gap (a replay's own quiet spell is bridged
as soon as a second sensor speaks from its far side). When no other sensor spoke within
`max_jump_us` of the clock (a replay of one home's sensor), its own word is enough. An
event held back is still stored and evaluated; only the shared clock stays where it was.
Pure: no I/O, no wall clock; the bridge keeps one per process.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReplayClock:
    max_jump_us: int
    recent: dict[str, int] = field(default_factory=dict)  # sensor -> its last time in range
    held: dict[str, int] = field(default_factory=dict)  # sensor -> its first time far ahead

    def observe(self, clock_us: int, sensor_id: str, at_us: int) -> int:
        """The clock after one event of `sensor_id` at `at_us` (clock 0: none yet)."""
        if clock_us == 0 or at_us <= clock_us + self.max_jump_us:
            self.recent[sensor_id] = max(self.recent.get(sensor_id, 0), at_us)
            return max(clock_us, at_us)
        horizon = clock_us + self.max_jump_us
        others = [
            s for s, t in self.recent.items() if s != sensor_id and t >= clock_us - self.max_jump_us
        ]
        agree = [t for s, t in self.held.items() if s != sensor_id and t > horizon]
        if others and not agree:
            self.held.setdefault(sensor_id, at_us)
            return clock_us
        new = min([at_us, *agree])
        self.recent[sensor_id] = at_us
        self.held = {s: t for s, t in self.held.items() if t > new + self.max_jump_us}
        self.recent = {s: t for s, t in self.recent.items() if t >= new - self.max_jump_us}
        return new

    def is_held(self, sensor_id: str) -> bool:
        return sensor_id in self.held


def replay_mode_at(latest_event_us: int | None, latest_mode_us: int | None) -> int:
    """Replay mode: the event-clock time of a mode change sent without `at` — right after
    the household's latest stored event (and after its latest mode change, so it is the one
    in force), so that it governs every message that arrives after it; 0 (before any event
    at all) when the household has neither yet. Never the wall clock: in a replay of
    October an `away` set in December would govern nothing."""
    known = [t for t in (latest_event_us, latest_mode_us) if t is not None]
    return max(known) + 1 if known else 0
