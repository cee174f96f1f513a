"""The dead-letter cap decision: stored whole while under the cap, counted beyond it."""

from __future__ import annotations

import pytest

from core.dead_letter_cap import (
    DeadLetterCap,
    dead_letter_source,
    decide_dead_letters,
    window_start_us,
)
from core.ingest import DeadLetter

HOUR_US = 3600 * 1_000_000
T0 = 1_800_000_000 * 1_000_000 - 1_800_000_000 * 1_000_000 % HOUR_US  # a window start


def _dead(
    sensor_id: str | None, at_us: int, reason: str = "bad_json", topic: str = ""
) -> DeadLetter:
    return DeadLetter(
        topic=topic or f"ansim/v1/sensors/{sensor_id}/event",
        sensor_id=sensor_id,
        reason=reason,
        detail=f"{reason} at {at_us}",
        payload=b"{",
        payload_size=1,
        received_us=at_us,
    )


def test_first_cap_stored_rest_counted_with_last_reason() -> None:
    dead = [_dead("s-a", T0 + i, "bad_json" if i < 9 else "oversize") for i in range(10)]
    out = decide_dead_letters(dead, {}, DeadLetterCap(cap=3, window_s=3600))
    assert out.store == dead[:3]
    (tally,) = out.tallies.values()
    assert (tally.source, tally.window_start_us) == ("s-a", T0)
    assert (tally.stored, tally.suppressed) == (3, 7)
    assert (tally.first_us, tally.last_us) == (T0, T0 + 9)
    assert tally.last_reason == "oversize" and tally.last_detail == f"oversize at {T0 + 9}"
    assert out.suppressed == 7


def test_counts_already_stored_in_the_window_are_honoured() -> None:
    dead = [_dead("s-a", T0 + 10 + i) for i in range(5)]
    out = decide_dead_letters(dead, {("s-a", T0): 2}, DeadLetterCap(cap=3, window_s=3600))
    assert out.store == dead[:1]
    assert out.suppressed == 4
    full = decide_dead_letters(dead, {("s-a", T0): 3}, DeadLetterCap(cap=3, window_s=3600))
    assert full.store == [] and full.suppressed == 5


def test_each_sensor_has_its_own_cap() -> None:
    dead = [_dead("s-flood", T0 + i) for i in range(50)] + [_dead("s-quiet", T0 + 60)]
    out = decide_dead_letters(dead, {}, DeadLetterCap(cap=5, window_s=3600))
    assert [d.sensor_id for d in out.store] == ["s-flood"] * 5 + ["s-quiet"]
    assert out.tallies[("s-flood", T0)].suppressed == 45
    assert out.tallies[("s-quiet", T0)].suppressed == 0


def test_a_new_window_starts_a_new_allowance() -> None:
    dead = [_dead("s-a", T0 + i) for i in range(4)] + [
        _dead("s-a", T0 + HOUR_US + i) for i in range(4)
    ]
    out = decide_dead_letters(dead, {}, DeadLetterCap(cap=2, window_s=3600))
    assert out.store == dead[0:2] + dead[4:6]
    assert {k: t.suppressed for k, t in out.tallies.items()} == {
        ("s-a", T0): 2,
        ("s-a", T0 + HOUR_US): 2,
    }


def test_topics_naming_no_sensor_are_capped_per_topic() -> None:
    a = [_dead(None, T0 + i, "unknown_topic", topic="weird/a") for i in range(4)]
    b = [_dead(None, T0 + 10, "unknown_topic", topic="weird/b")]
    out = decide_dead_letters(a + b, {}, DeadLetterCap(cap=1, window_s=3600))
    assert out.store == [a[0], b[0]]
    assert dead_letter_source(a[0]) == "topic:weird/a"
    assert out.tallies[("topic:weird/a", T0)].suppressed == 3


def test_cap_zero_counts_every_one_and_stores_none() -> None:
    dead = [_dead("s-a", T0 + i) for i in range(3)]
    out = decide_dead_letters(dead, {}, DeadLetterCap(cap=0, window_s=60))
    assert out.store == [] and out.suppressed == 3


@pytest.mark.parametrize(
    ("received_us", "window_s", "start_us"),
    [
        (T0, 3600, T0),
        (T0 + HOUR_US - 1, 3600, T0),
        (T0 + HOUR_US, 3600, T0 + HOUR_US),
        (T0 + 90_000_000, 60, T0 + 60_000_000),
    ],
)
def test_windows_are_aligned_to_the_epoch(received_us: int, window_s: int, start_us: int) -> None:
    assert window_start_us(received_us, window_s) == start_us


@pytest.mark.parametrize(("cap", "window_s"), [(-1, 3600), (10, 0)])
def test_invalid_policy_refused(cap: int, window_s: int) -> None:
    with pytest.raises(ValueError):
        DeadLetterCap(cap, window_s)
