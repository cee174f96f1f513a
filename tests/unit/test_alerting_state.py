"""The household's mode as of an event's time, from its mode history: what makes a replay
give the same alerts as live operation, whatever order the bridge and API see things in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.engine import HouseholdRecord
from core.models import DEFAULT_NIGHT_WINDOW, Mode
from core.timeutil import to_us

T0 = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)


def ctx(changes: list[tuple[int, Mode]], mode: Mode = Mode.DISARMED) -> HouseholdRecord:
    history = tuple((to_us(T0 + timedelta(seconds=s)), m) for s, m in changes)
    return HouseholdRecord(
        "hh-1", "Asia/Seoul", DEFAULT_NIGHT_WINDOW, None, None, mode, to_us(T0), history
    )


@pytest.mark.parametrize(
    ("changes", "at_s", "mode", "since_s"),
    [
        ([(0, Mode.AWAY), (40, Mode.DISARMED)], 20, Mode.AWAY, 0),  # opened while away
        ([(0, Mode.AWAY), (40, Mode.DISARMED)], 40, Mode.DISARMED, 40),  # at the change
        ([(0, Mode.AWAY), (40, Mode.DISARMED)], 90, Mode.DISARMED, 40),
        ([(10, Mode.NIGHT)], 5, Mode.DISARMED, None),  # before every recorded change
    ],
)
def test_state_at_follows_the_history(
    changes: list[tuple[int, Mode]], at_s: int, mode: Mode, since_s: int | None
) -> None:
    state = ctx(changes).state_at(T0 + timedelta(seconds=at_s))
    assert state.mode is mode
    expected = None if since_s is None else T0 + timedelta(seconds=since_s)
    assert state.mode_since == expected


def test_without_history_the_current_mode_counts() -> None:
    state = ctx([], mode=Mode.HOME).state_at(T0 + timedelta(hours=1))
    assert state.mode is Mode.HOME and state.mode_since == T0
