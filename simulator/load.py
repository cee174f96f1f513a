"""Load mode (`--rate N`): N events a second across the whole fleet, regardless of
routines, for benchmarks.

Sensors take turns round-robin, so each sends `N / fleet size` a second. Each sensor sends
heartbeats with a door opening (`open` then `close`) every fifth message: 80 % heartbeats,
20 % door events, every message a valid, new `(boot, seq)`. Event time runs from the start
of the period at `speed` (as in a normal run), so a replay-mode backend sees a
consistent clock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.wire import encode_event, event_topic
from simulator.fleet import Fleet
from simulator.personas import Household
from simulator.progress import Progress

TICK_S = 0.01


@dataclass
class LoadResult:
    events_sent: int = 0
    door_events_sent: dict[str, int] = field(default_factory=dict)  # by household key
    heartbeats_sent: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    max_behind: int = 0  # most events the publisher was behind its target

    @property
    def achieved_rate(self) -> float:
        return self.events_sent / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class _State:
    household: Household
    seq: int = 0
    n: int = 0

    def next_type(self) -> str:
        k = self.n % 10
        self.n += 1
        if k == 4:
            return "open"
        if k == 9:
            return "close"
        return "heartbeat"


async def run_load(
    fleet: Fleet,
    households: list[Household],
    rate: float,
    duration_s: float,
    start: datetime,
    speed: float,
    progress: Progress,
    max_unacked: int = 50_000,
) -> LoadResult:
    """Publish `rate` events/s for `duration_s` wall seconds."""
    states = [_State(h) for h in households if h.key in fleet.sensors]
    result = LoadResult(
        door_events_sent={s.household.key: 0 for s in states},
        heartbeats_sent={s.household.key: 0 for s in states},
    )
    if not states or rate <= 0:
        return result
    counters = fleet.counters
    total = int(rate * duration_s)
    progress.start_phase("load", total)
    t0 = time.monotonic()
    cursor = 0
    while result.events_sent < total:
        elapsed = time.monotonic() - t0
        due = min(total, int(rate * elapsed) + 1)
        result.max_behind = max(result.max_behind, due - result.events_sent)
        sim_now = start + timedelta(seconds=elapsed * speed)
        while result.events_sent < due:
            if counters.published - counters.acked > max_unacked:
                break  # let the broker catch up
            st = states[cursor % len(states)]
            cursor += 1
            sensor = fleet.sensors[st.household.key]
            type_ = st.next_type()
            payload = encode_event(
                st.household.boot0, st.seq, sim_now, type_,
                battery=int(st.household.battery0), rssi=st.household.rssi_base,
            )  # fmt: skip
            st.seq += 1
            sensor.publish(event_topic(sensor.sensor_id), payload)
            counters.events_sent += 1
            result.events_sent += 1
            if type_ == "heartbeat":
                result.heartbeats_sent[st.household.key] += 1
            else:
                result.door_events_sent[st.household.key] += 1
        progress.done = result.events_sent
        progress.tick()
        await asyncio.sleep(TICK_S)
    result.wall_s = time.monotonic() - t0
    return result
