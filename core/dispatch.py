"""Which webhook attempts to start now — the pure part of the notifier.

One slow or failing receiver must not delay another. Three rules do it:

* **Per-endpoint bound.** An endpoint (scheme://host:port) has at most
  `endpoint_inflight` attempts in flight; what waits for it waits alone.
* **A circuit per endpoint.** After `circuit_failures` consecutive failures it opens: no
  attempt to that endpoint for `cooloff_s`; then it half-opens and lets one probe through.
  The probe's success closes it, its failure opens it again.
* **Two lanes.** A *fresh* attempt is the first attempt of a notification to an endpoint
  believed healthy (circuit closed, no failure since its last success, nothing in flight to
  it for longer than `slow_s`). Everything else is a *retry*. Each lane has its own bound,
  and a fresh attempt that has been in flight longer than `slow_s` stops counting against
  the fresh lane (it counts as a retry), so first attempts are never queued behind retries
  or behind receivers that hang.

Each delivery keeps its own exponential backoff with jitter (core.notify.RetryPolicy): a
retry is never started before its due time. No I/O, no clock: time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

Lane = Literal["fresh", "retry"]
LANES: tuple[Lane, Lane] = ("fresh", "retry")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Limits:
    """Built from the settings (`notifier.dispatcher.limits`): their one home."""

    lane_inflight: int
    endpoint_inflight: int
    circuit_failures: int
    cooloff_s: float
    slow_s: float


@dataclass(frozen=True, slots=True)
class Circuit:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0  # consecutive, since the last success
    opened_us: int = 0


@dataclass(frozen=True, slots=True)
class Pending:
    """A notification waiting for its next attempt."""

    key: str
    endpoint: str
    attempts: int
    due_us: int
    created_us: int


@dataclass(frozen=True, slots=True)
class Flight:
    """An attempt in flight."""

    endpoint: str
    lane: Lane
    started_us: int


def endpoint_of(url: str) -> str:
    """The unit of isolation: scheme, host and port of a URL (lower case)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    return f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}"


def advance(c: Circuit, now_us: int, limits: Limits) -> Circuit:
    """An open circuit half-opens once its cool-off has passed."""
    if c.state is CircuitState.OPEN and now_us - c.opened_us >= limits.cooloff_s * 1e6:
        return replace(c, state=CircuitState.HALF_OPEN)
    return c


def on_result(c: Circuit, ok: bool, now_us: int, limits: Limits) -> Circuit:
    """The circuit after an attempt's outcome."""
    if ok:
        return Circuit()
    failures = c.failures + 1
    if c.state is CircuitState.HALF_OPEN or failures >= limits.circuit_failures:
        return Circuit(CircuitState.OPEN, failures, now_us)
    return replace(c, failures=failures)


def _slow(f: Flight, now_us: int, limits: Limits) -> bool:
    return now_us - f.started_us >= limits.slow_s * 1e6


def lane_load(flights: Iterable[Flight], now_us: int, limits: Limits) -> dict[Lane, int]:
    """In-flight attempts per lane; a fresh attempt that has gone slow counts as a retry."""
    load: dict[Lane, int] = {"fresh": 0, "retry": 0}
    for f in flights:
        lane: Lane = "retry" if f.lane == "retry" or _slow(f, now_us, limits) else "fresh"
        load[lane] += 1
    return load


def expired(pending: Iterable[Pending], now_us: int, give_up_s: float) -> list[Pending]:
    """Notifications past their give-up age that are due: they are failed without another
    attempt (e.g. held back by an endpoint's open circuit)."""
    limit = int(give_up_s * 1e6)
    return [p for p in pending if p.due_us <= now_us and now_us - p.created_us >= limit]


def _endpoint_cap(state: CircuitState, limits: Limits) -> int:
    if state is CircuitState.CLOSED:
        return limits.endpoint_inflight
    return 1 if state is CircuitState.HALF_OPEN else 0  # one probe; none while open


def plan(
    pending: Iterable[Pending],
    flights: Iterable[Flight],
    circuits: Mapping[str, Circuit],
    now_us: int,
    limits: Limits,
) -> list[tuple[Pending, Lane]]:
    """The attempts to start now, fresh lane first (oldest first), then due retries
    (earliest due first). `circuits` must already be advanced to `now_us`."""
    flights = list(flights)
    load = lane_load(flights, now_us, limits)
    busy: dict[str, int] = {}
    suspect: set[str] = set()
    for f in flights:
        busy[f.endpoint] = busy.get(f.endpoint, 0) + 1
        if _slow(f, now_us, limits):
            suspect.add(f.endpoint)

    def lane_of(p: Pending) -> Lane:
        c = circuits.get(p.endpoint, Circuit())
        healthy = c.state is CircuitState.CLOSED and c.failures == 0
        return "fresh" if p.attempts == 0 and healthy and p.endpoint not in suspect else "retry"

    due = [(p, lane_of(p)) for p in pending if p.due_us <= now_us]
    due.sort(
        key=lambda pl: (pl[1] != "fresh", pl[0].created_us if pl[1] == "fresh" else pl[0].due_us)
    )
    starts: list[tuple[Pending, Lane]] = []
    for p, lane in due:
        if load[lane] >= limits.lane_inflight:
            continue
        state = circuits.get(p.endpoint, Circuit()).state
        cap = {CircuitState.CLOSED: limits.endpoint_inflight, CircuitState.HALF_OPEN: 1}.get(
            state, 0
        )
        if busy.get(p.endpoint, 0) >= cap:
            continue
        busy[p.endpoint] = busy.get(p.endpoint, 0) + 1
        load[lane] += 1
        starts.append((p, lane))
    return starts
