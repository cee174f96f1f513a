"""Issue 15 (trust): the exit delay, the help that stands, the incident kinds — pure logic."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.engine import (
    AlertAnswered,
    AlertEscalated,
    AlertHelpAsked,
    EngineConfig,
    EngineState,
    EventInput,
    HelpInput,
    HouseholdRecord,
    ResolveInput,
    TickInput,
    decide,
)
from core.grading import Incident
from core.models import (
    DEFAULT_NIGHT_WINDOW,
    INCIDENT_KINDS,
    AlertKind,
    AlertState,
    EventType,
    Mode,
    Resolution,
    is_incident,
)
from core.models import SensorStatus as St
from core.replay_clock import replay_mode_at
from core.routine import RoutineModel
from core.rules import (
    AlertPolicy,
    AlertView,
    CheckKind,
    DoorEvent,
    HelpStandsError,
    HouseholdState,
    ScheduleCheck,
    SensorState,
    acknowledge_alert,
    evaluate_event,
    resolve_alert,
)
from core.storage.schema import SCHEMA_V7
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


# ---------------------------------------------------------------------------- help stands

RAISED_AT = ARMED_AT + timedelta(minutes=5)


def _view(state: AlertState = AlertState.OPEN, help_requested: bool = False) -> AlertView:
    return AlertView(
        "al-1", AlertKind.INTRUSION, state, HH, SID, RAISED_AT, RAISED_AT,
        help_requested=help_requested,
    )  # fmt: skip


def _state(view: AlertView, escalated: bool = False) -> EngineState:
    record = replace(_record(None), alerts=(replace(view, escalated=escalated),))
    return EngineState({HH: record})


@pytest.mark.parametrize("by_resident", [True, False])
@pytest.mark.parametrize("state", [AlertState.OPEN, AlertState.ACKNOWLEDGED])
def test_after_help_only_an_operator_resolves(by_resident: bool, state: AlertState) -> None:
    view = _view(state, help_requested=True)
    house_now = HouseholdState(HH)
    for resolution in (Resolution.FALSE_ALARM, Resolution.CONFIRMED):
        if by_resident:
            with pytest.raises(HelpStandsError):
                resolve_alert(view, resolution, RAISED_AT, "resident:hh-1", house_now, True)
        else:
            t = resolve_alert(view, resolution, RAISED_AT, "operator:x", house_now, False)
            assert t.to_state is AlertState.RESOLVED and t.resolution is resolution
    if state is AlertState.OPEN and by_resident:
        with pytest.raises(HelpStandsError):
            acknowledge_alert(view, RAISED_AT, "resident:hh-1", by_resident=True)


def test_without_help_the_resident_still_resolves_it_was_me() -> None:
    t = resolve_alert(
        _view(), Resolution.FALSE_ALARM, RAISED_AT, "resident:hh-1", HouseholdState(HH), True
    )
    assert t.to_state is AlertState.RESOLVED


def test_engine_help_then_it_was_me_is_refused_and_the_centre_told_once() -> None:
    now = RAISED_AT + timedelta(seconds=10)
    helped = decide(_state(_view()), [HelpInput("al-1", HH, "resident:hh-1")],
                    EngineConfig(centre_url="https://centre.example/h"), now)  # fmt: skip
    assert [type(a) for a in helped.alerts] == [AlertHelpAsked, AlertEscalated]
    (centre,) = [o for o in helped.outbox if o.recipient == "centre"]
    body = json.loads(centre.body)
    assert body["notification"] == "alert.escalated" and body["help_requested"] is True
    assert body["reason"] == "the resident asked for help"
    # the stored alert now says help was asked: her "it was me" is refused...
    asked = _view(help_requested=True)
    it_was_me = ResolveInput(asked, Resolution.FALSE_ALARM, "resident:hh-1", now,
                             HouseholdState(HH), by_resident=True)  # fmt: skip
    with pytest.raises(HelpStandsError):
        decide(_state(asked, escalated=True), [it_was_me], EngineConfig(), now)
    # ... an operator's resolves it; asking again changes nothing
    by_operator = replace(it_was_me, actor="operator:centre", by_resident=False)
    done = decide(_state(asked, escalated=True), [by_operator], EngineConfig(), now)
    assert [a.to_state for a in done.alerts if isinstance(a, AlertAnswered)] == [
        AlertState.RESOLVED
    ]
    again = decide(_state(asked, escalated=True), [HelpInput("al-1", HH, "r")], EngineConfig(), now)
    assert again.empty


def test_engine_help_on_an_escalated_alert_tells_the_centre_it_is_a_help_request() -> None:
    now = RAISED_AT + timedelta(minutes=4)
    done = decide(_state(_view(), escalated=True), [HelpInput("al-1", HH, "resident:hh-1")],
                  EngineConfig(centre_url="https://centre.example/h"), now)  # fmt: skip
    assert [type(a) for a in done.alerts] == [AlertHelpAsked]
    (centre,) = done.outbox
    assert json.loads(centre.body)["notification"] == "alert.help"
    assert json.loads(centre.body)["help_requested"] is True


# ---------------------------------------------------------------------------- incident kinds


@pytest.mark.parametrize(
    ("kind", "resolution", "incident"),
    [
        (AlertKind.INTRUSION, Resolution.CONFIRMED, True),
        (AlertKind.NIGHT_OPENING, "confirmed", True),
        (AlertKind.INTRUSION, Resolution.FALSE_ALARM, False),
        (AlertKind.NIGHT_OPENING, None, False),
        (AlertKind.BATTERY_LOW, Resolution.CONFIRMED, False),
        (AlertKind.SENSOR_OFFLINE, Resolution.CONFIRMED, False),
        (AlertKind.TAMPER, Resolution.CONFIRMED, False),
        ("door_left_open", "confirmed", False),
    ],
)
def test_only_street_kinds_confirmed_are_incidents(
    kind: AlertKind | str, resolution: Resolution | str | None, incident: bool
) -> None:
    assert is_incident(kind, resolution) is incident
    inc = Incident.from_resolution("i", 37.5, 126.9, ARMED_AT, resolution, kind)
    assert inc.confirmed is incident


def test_incident_kinds_and_the_v7_repair_agree() -> None:
    # help and duress (v8, issue 15 panic) did not exist when v7 repaired the incidents
    assert {str(k) for k in INCIDENT_KINDS} == {"intrusion", "night_opening", "help", "duress"}
    assert "kind NOT IN ('intrusion', 'night_opening')" in SCHEMA_V7
    # a row whose kind is not known: its resolution alone decides (as before)
    assert Incident.from_resolution("i", 37.5, 126.9, ARMED_AT, "confirmed").confirmed


# ---------------------------------------------------------------------------- replay mode changes


@pytest.mark.parametrize(
    ("latest_event_us", "latest_mode_us", "at_us"),
    [
        (None, None, 0),  # nothing yet: before any event at all
        (1_000, None, 1_001),  # right after her latest event
        (1_000, 5_000, 5_001),  # after her latest mode change, so the new one is in force
        (9_000, 5_000, 9_001),
        (None, 7, 8),
    ],
)
def test_replay_mode_change_without_at_goes_right_after_her_latest_event(
    latest_event_us: int | None, latest_mode_us: int | None, at_us: int
) -> None:
    assert replay_mode_at(latest_event_us, latest_mode_us) == at_us
