"""core.dispatch, table-driven: lanes, per-endpoint bounds, circuits, backoff."""

from __future__ import annotations

import random

import pytest

from core.dispatch import (
    Circuit,
    CircuitState,
    Flight,
    Limits,
    Pending,
    advance,
    endpoint_of,
    expired,
    lane_load,
    on_result,
    plan,
)
from core.notify import RetryPolicy, webhook_url_problem

S = 1_000_000  # µs
L = Limits(lane_inflight=3, endpoint_inflight=2, circuit_failures=3, cooloff_s=10, slow_s=0.5)
NOW = 100 * S
OPEN = CircuitState.OPEN
HALF = CircuitState.HALF_OPEN


def p(key: str, ep: str = "a", attempts: int = 0, due: int = NOW, created: int = NOW) -> Pending:
    return Pending(key, ep, attempts, due, created)


def fl(ep: str, lane: str = "fresh", age_s: float = 0.0) -> Flight:
    return Flight(ep, lane, NOW - int(age_s * S))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("https://Hooks.Example.org/x?y=1", "https://hooks.example.org:443"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8081/a", "http://127.0.0.1:8081"),
        ("http://[::1]/b", "http://::1:80"),
    ],
)
def test_endpoint_is_scheme_host_port(url: str, endpoint: str) -> None:
    assert endpoint_of(url) == endpoint


CASES: list[tuple[str, list[Pending], list[Flight], dict[str, Circuit], list[tuple[str, str]]]] = [
    ("nothing due yet", [p("1", due=NOW + 1)], [], {}, []),
    ("a first attempt to a healthy endpoint is fresh", [p("1")], [], {}, [("1", "fresh")]),
    ("a second attempt is a retry", [p("1", attempts=1)], [], {}, [("1", "retry")]),
    (
        "at most two in flight per endpoint",
        [p("1"), p("2"), p("3")],
        [],
        {},
        [("1", "fresh"), ("2", "fresh")],
    ),
    ("the endpoint's bound counts flights", [p("1"), p("2")], [fl("a")], {}, [("1", "fresh")]),
    (
        "an open circuit lets nothing through",
        [p("1"), p("2", attempts=2)],
        [],
        {"a": Circuit(OPEN, 3, NOW)},
        [],
    ),
    (
        "a half-open circuit lets one probe through",
        [p("1", attempts=3), p("2", attempts=3)],
        [],
        {"a": Circuit(HALF, 3, NOW - 20 * S)},
        [("1", "retry")],
    ),
    (
        "no probe while one is in flight",
        [p("2", attempts=3)],
        [fl("a", "retry")],
        {"a": Circuit(HALF, 3, NOW - 20 * S)},
        [],
    ),
    (
        "a first attempt to an endpoint that failed goes to the retry lane",
        [p("1")],
        [],
        {"a": Circuit(failures=1)},
        [("1", "retry")],
    ),
    (
        "a first attempt to an endpoint with a slow attempt in flight is a retry",
        [p("1")],
        [fl("a", age_s=2)],
        {},
        [("1", "retry")],
    ),
    (
        "fresh never waits behind retries: the retry lane is full, fresh still starts",
        [p("r", "b", attempts=1), p("f", "c")],
        [fl("x", "retry"), fl("y", "retry"), fl("z", "retry")],
        {},
        [("f", "fresh")],
    ),
    (
        "hung first attempts stop holding the fresh lane once slow",
        [p("f", "d")],
        [fl("x", age_s=5), fl("y", age_s=5), fl("z", age_s=5)],
        {},
        [("f", "fresh")],
    ),
    (
        "a full fresh lane of quick attempts makes the next one wait",
        [p("f", "d")],
        [fl("x"), fl("y"), fl("z")],
        {},
        [],
    ),
    (
        "fresh first (oldest first), then retries by due time",
        [p("r2", "r", 1, due=NOW - 1 * S), p("r1", "q", 1, due=NOW - 5 * S),
         p("f2", "b", created=NOW - 1), p("f1", "c", created=NOW - 9)],
        [],
        {},
        [("f1", "fresh"), ("f2", "fresh"), ("r1", "retry"), ("r2", "retry")],
    ),
    (
        "the lane bound caps each lane",
        [p(str(i), f"e{i}", attempts=1) for i in range(5)],
        [],
        {},
        [("0", "retry"), ("1", "retry"), ("2", "retry")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("pending", "flights", "circuits", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_plan(
    pending: list[Pending],
    flights: list[Flight],
    circuits: dict[str, Circuit],
    expected: list[tuple[str, str]],
) -> None:
    assert [(q.key, lane) for q, lane in plan(pending, flights, circuits, NOW, L)] == expected


def test_lane_load_moves_slow_fresh_attempts_to_retry() -> None:
    flights = [fl("a"), fl("b", age_s=0.6), fl("c", "retry")]
    assert lane_load(flights, NOW, L) == {"fresh": 1, "retry": 2}


CIRCUIT_STEPS: list[tuple[str, Circuit, bool, Circuit]] = [
    ("a failure counts", Circuit(), False, Circuit(failures=1)),
    ("the Nth consecutive failure opens", Circuit(failures=2), False, Circuit(OPEN, 3, NOW)),
    ("a success resets the count", Circuit(failures=2), True, Circuit()),
    ("a failed probe opens again", Circuit(HALF, 3, 0), False, Circuit(OPEN, 4, NOW)),
    ("a good probe closes", Circuit(HALF, 3, 0), True, Circuit()),
]


@pytest.mark.parametrize(("before", "ok", "after"), [c[1:] for c in CIRCUIT_STEPS],
                         ids=[c[0] for c in CIRCUIT_STEPS])  # fmt: skip
def test_circuit_on_result(before: Circuit, ok: bool, after: Circuit) -> None:
    assert on_result(before, ok, NOW, L) == after


@pytest.mark.parametrize(
    ("opened_s_ago", "state"), [(0, OPEN), (9.9, OPEN), (10, HALF), (60, HALF)]
)
def test_circuit_half_opens_after_cooloff(opened_s_ago: float, state: CircuitState) -> None:
    c = Circuit(OPEN, 3, NOW - int(opened_s_ago * S))
    assert advance(c, NOW, L).state is state
    assert advance(Circuit(failures=2), NOW, L) == Circuit(failures=2)


def test_backoff_grows_exponentially_with_jitter_and_cap() -> None:
    policy = RetryPolicy(base_s=1, cap_s=60)
    rng = random.Random(7)
    for attempts, raw in [(0, 1), (1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (20, 60)]:
        delays = [policy.delay_s(attempts, rng) for _ in range(200)]
        assert all(raw * 0.5 <= d <= raw for d in delays)
        assert max(delays) - min(delays) > raw * 0.3  # jittered, not in lock step


@pytest.mark.parametrize(
    ("url", "allow_http", "refused"),
    [
        ("https://hooks.example.org/a", False, False),
        ("http://127.0.0.1:9000/a", False, False),
        ("http://localhost/a", False, False),
        ("http://[::1]:80/a", False, False),
        ("http://hooks.example.org/a", False, True),
        ("http://10.0.0.5/a", False, True),
        ("http://hooks.example.org/a", True, False),
        ("ftp://hooks.example.org/a", True, True),
    ],
)
def test_webhook_url_policy(url: str, allow_http: bool, refused: bool) -> None:
    assert (webhook_url_problem(url, allow_http) is not None) is refused


def test_expired_only_due_and_past_give_up_age() -> None:
    old = p("old", created=NOW - 100 * S)
    young = p("young", created=NOW - 99 * S)
    not_due = p("later", created=NOW - 200 * S, due=NOW + 1)
    assert expired([old, young, not_due], NOW, 100) == [old]
