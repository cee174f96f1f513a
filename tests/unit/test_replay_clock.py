"""The replay event clock: one far-ahead sensor among others cannot move it; a second
sensor agreeing, or a replay with only one sensor, can."""

from __future__ import annotations

from core.replay_clock import ReplayClock

DAY = 86_400_000_000
T0 = 1_780_000_000_000_000
FAR = T0 + 973 * 365 * DAY  # a device saying year 2999


def _run(clock: ReplayClock, start: int, events: list[tuple[str, int]]) -> int:
    now = start
    for sensor, at in events:
        now = clock.observe(now, sensor, at)
    return now


def test_follows_events_and_never_goes_back() -> None:
    c = ReplayClock(DAY)
    assert _run(c, T0, [("a", T0 + 5), ("b", T0 - 100), ("a", T0 + 60_000_000)]) == T0 + 60_000_000


def test_first_event_sets_an_empty_clock() -> None:
    assert ReplayClock(DAY).observe(0, "a", T0) == T0


def test_one_sensor_far_ahead_among_others_is_held() -> None:
    c = ReplayClock(DAY)
    now = _run(c, 0, [("a", T0), ("b", T0 + 10)])
    now = _run(c, now, [("bad", FAR)] * 5 + [("a", T0 + 20)])
    assert now == T0 + 20 and c.is_held("bad")
    # the others keep the clock moving; the bad one never does
    now = _run(c, now, [("b", T0 + DAY // 2), ("bad", FAR + 1), ("a", T0 + DAY)])
    assert now == T0 + DAY


def test_a_gap_in_a_replay_is_bridged_when_a_second_sensor_agrees() -> None:
    c = ReplayClock(DAY)
    now = _run(c, 0, [("a", T0), ("b", T0 + 10)])
    later = T0 + 3 * DAY
    now = c.observe(now, "a", later)
    assert now == T0 + 10  # alone so far
    now = c.observe(now, "b", later + 5)
    assert now == later  # two agree: the clock jumps to the earlier of them
    assert c.observe(now, "b", later + 6) == later + 6 and not c.is_held("a")


def test_a_single_sensor_replay_jumps_on_its_own_word() -> None:
    c = ReplayClock(DAY)
    now = _run(c, 0, [("only", T0), ("only", T0 + 3600_000_000)])
    assert c.observe(now, "only", T0 + 5 * DAY) == T0 + 5 * DAY


def test_within_the_margin_one_sensor_is_enough() -> None:
    c = ReplayClock(DAY)
    now = _run(c, 0, [("a", T0), ("b", T0)])
    assert c.observe(now, "a", T0 + DAY) == T0 + DAY
