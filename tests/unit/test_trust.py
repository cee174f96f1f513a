"""Issue 15 (trust): the exit delay, the help that stands, the incident kinds — pure logic."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.engine import EngineConfig, EngineState, EventInput, HouseholdRecord, TickInput, decide
from core.models import DEFAULT_NIGHT_WINDOW, EventType, Mode
from core.models import SensorStatus as St
from core.routine import RoutineModel
from core.rules import (
    AlertPolicy,
    CheckKind,
    DoorEvent,
    HouseholdState,
    ScheduleCheck,
    SensorState,
    evaluate_event,
)
from core.timeutil import to_us

SEOUL = ZoneInfo("Asia/Seoul")
ARMED_AT = datetime(2026, 11, 2, 14, 0, tzinfo=SEOUL)  # mid-afternoon: no night rules
HH, SID = "hh-1", "door-1"
SENSOR = SensorState(SID, HH, St.ONLINE, ARMED_AT, ARMED_AT, 90)
POLICY = AlertPolicy(exit_delay=timedelta(seconds=60))


def _entry_checks(mode: Mode, opened_after_s: float, **house: object) -> list[ScheduleCheck]:
    household = HouseholdState(HH, mode, ARMED_AT, **house)  # type: ignore[arg-type]
    opened = DoorEvent(SID, HH, EventType.OPEN, ARMED_AT + timedelta(seconds=opened_after_s))
    out = evaluate_event(
        opened, household, SENSOR, [], RoutineModel.empty(ARMED_AT), opened.event_at, POLICY
    )
    return [
        d for d in out if isinstance(d, ScheduleCheck) and d.check.kind is CheckKind.ENTRY_DELAY
    ]


@pytest.mark.parametrize(
    ("mode", "after_s", "own_delay_s", "counts"),
    [
        (Mode.AWAY, 30, None, False),  # walking out 30 s after arming away
        (Mode.NIGHT, 59.9, None, False),
        (Mode.AWAY, 60, None, True),  # the delay is over
        (Mode.AWAY, 600, None, True),
        (Mode.AWAY, -5, None, False),  # before the arming: not judged by it
        (Mode.AWAY, 30, 0, True),  # her own delay: none
        (Mode.AWAY, 30, 20, True),
        (Mode.NIGHT, 100, 120, False),  # her own delay, longer than the service's
        (Mode.NIGHT, 120, 120, True),
    ],
)
def test_openings_within_the_exit_delay_do_not_count(
    mode: Mode, after_s: float, own_delay_s: int | None, counts: bool
) -> None:
    own = None if own_delay_s is None else timedelta(seconds=own_delay_s)
    checks = _entry_checks(mode, after_s, exit_delay=own)
    assert bool(checks) is counts


def test_exit_delay_default_policy_is_zero_so_the_bare_rules_judge_every_armed_opening() -> None:
    household = HouseholdState(HH, Mode.AWAY, ARMED_AT)
    opened = DoorEvent(SID, HH, EventType.OPEN, ARMED_AT)
    out = evaluate_event(opened, household, SENSOR, [], RoutineModel.empty(ARMED_AT), ARMED_AT)
    assert any(isinstance(d, ScheduleCheck) and d.check.kind is CheckKind.ENTRY_DELAY for d in out)


def _record(exit_delay: timedelta | None) -> HouseholdRecord:
    return HouseholdRecord(
        household_id=HH,
        timezone="Asia/Seoul",
        night_window=DEFAULT_NIGHT_WINDOW,
        webhook_url=None,
        segment_id=None,
        mode=Mode.AWAY,
        mode_since_us=to_us(ARMED_AT),
        mode_history=((to_us(ARMED_AT), Mode.AWAY),),
        sensors={SID: SENSOR},
        exit_delay=exit_delay,
    )


@pytest.mark.parametrize(
    ("own", "raised"),
    [(None, []), (timedelta(0), ["intrusion"]), (timedelta(seconds=10), ["intrusion"])],
)
def test_engine_uses_the_household_exit_delay_over_the_policy(
    own: timedelta | None, raised: list[str]
) -> None:
    opened = DoorEvent(SID, HH, EventType.OPEN, ARMED_AT + timedelta(seconds=30))
    later = ARMED_AT + timedelta(seconds=120)
    changes = decide(
        EngineState({HH: _record(own)}),
        [EventInput(opened, opened.event_at), TickInput(later)],
        EngineConfig(policy=POLICY),
        later,
    )
    kinds = [str(a.kind) for a in changes.alerts if hasattr(a, "kind")]
    assert kinds == raised
