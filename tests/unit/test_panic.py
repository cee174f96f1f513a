"""Issue 14 item 11, issue 15 items 9-10 (panic), pure: the help button, the duress disarm
and door bounce in the engine and the rules (no database)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from core.engine import (
    AlertEscalated,
    AlertFolded,
    AlertHelpAsked,
    AlertRaised,
    Changes,
    DuressInput,
    EngineState,
    EventInput,
    HelpPressInput,
    HouseholdRecord,
    Input,
    ModeChangeInput,
    decide,
)
from core.models import (
    INCIDENT_KINDS,
    AlertKind,
    AlertState,
    EventType,
    Mode,
    Resolution,
    is_incident,
)
from core.rules import (
    DEFAULT_POLICY,
    AlertPolicy,
    AlertView,
    DoorEvent,
    FoldIntoAlert,
    HelpStandsError,
    HouseholdState,
    RaiseAlert,
    Recipient,
    SensorState,
    acknowledge_alert,
    is_bounce,
    press_alert,
    resolve_alert,
)
from tests.unit.test_engine import CONFIG, HH, S1, at, household, ids


def run(record: HouseholdRecord, inputs: list[Input], policy: AlertPolicy | None = None) -> Changes:
    config = CONFIG if policy is None else replace(CONFIG, policy=policy)
    return decide(EngineState({HH: record}), inputs, config, at(0), ids())


def _targets(changes: Changes) -> list[tuple[str, str]]:
    return [(o.recipient, json.loads(o.body)["notification"]) for o in changes.outbox]


# ---------------------------------------------------------------------------- help button


def test_help_press_raises_to_her_and_the_centre_at_once() -> None:
    c = run(household(), [HelpPressInput(HH, "resident:hh-1", at(0))])
    raised = [a for a in c.alerts if isinstance(a, AlertRaised)]
    assert [a.kind for a in raised] == [AlertKind.HELP]
    assert raised[0].escalate_at is None and raised[0].sensor_id == ""
    assert any(isinstance(a, AlertEscalated) for a in c.alerts)  # no escalation delay
    assert any(isinstance(a, AlertHelpAsked) for a in c.alerts)  # help stands on it
    assert sorted(_targets(c)) == [("centre", "alert.escalated"), ("resident", "alert.raised")]
    centre = next(json.loads(o.body) for o in c.outbox if o.recipient == "centre")
    assert centre["help_requested"] is True and centre["kind"] == "help"


def test_a_press_while_one_is_open_folds_into_it_and_notifies_no_one_again() -> None:
    open_help = AlertView("al-9", AlertKind.HELP, AlertState.ACKNOWLEDGED, HH, "", at(-600),
                          at(-600), recipients=frozenset(Recipient), escalated=True,
                          help_requested=True)  # fmt: skip
    c = run(household(alerts=(open_help,)), [HelpPressInput(HH, "resident:hh-1", at(0))])
    assert c.alerts == (AlertFolded("al-9", at(0)),) and c.outbox == ()
    # two presses in one run: one alert, the second folds
    c = run(household(), [HelpPressInput(HH, "r", at(0)), HelpPressInput(HH, "r", at(1))])
    assert len(c.raised) == 1 and isinstance(c.alerts[-1], AlertFolded)
    # a resolved one does not take the new press
    done = replace(open_help, state=AlertState.RESOLVED)
    assert isinstance(press_alert(AlertKind.HELP, HH, at(0), at(0), [done]), RaiseAlert)
    assert isinstance(press_alert(AlertKind.HELP, HH, at(0), at(0), [open_help]), FoldIntoAlert)


def test_the_resident_cannot_close_her_own_help_press() -> None:
    view = AlertView("al-1", AlertKind.HELP, AlertState.OPEN, HH, "", at(0), at(0),
                     escalated=True, help_requested=True)  # fmt: skip
    with pytest.raises(HelpStandsError):
        resolve_alert(view, Resolution.FALSE_ALARM, at(5), "r", HouseholdState(HH), True)
    with pytest.raises(HelpStandsError):
        acknowledge_alert(view, at(5), "r", True)
    done = resolve_alert(view, Resolution.CONFIRMED, at(5), "operator:x", HouseholdState(HH))
    assert done.to_state is AlertState.RESOLVED


# ---------------------------------------------------------------------------- duress


def test_duress_goes_to_the_centre_only() -> None:
    c = run(
        household(mode=Mode.AWAY),
        [ModeChangeInput(HH, Mode.HOME, at(0)), DuressInput(HH, "resident:hh-1", at(0))],
    )
    raised = [a for a in c.alerts if isinstance(a, AlertRaised)]
    assert [a.kind for a in raised] == [AlertKind.DURESS] and raised[0].recipients == frozenset()
    assert _targets(c) == [("centre", "alert.escalated")]  # nothing for her webhook
    # again while it is open: folded, still nothing for her
    view = AlertView(raised[0].alert_id, AlertKind.DURESS, AlertState.OPEN, HH, "", at(0),
                     at(0), recipients=frozenset({Recipient.CENTRE}), escalated=True)  # fmt: skip
    again = run(household(alerts=(view,)), [DuressInput(HH, "r", at(30))])
    assert again.alerts == (AlertFolded(view.alert_id, at(30)),) and again.outbox == ()


@pytest.mark.parametrize(
    ("kind", "resolution", "incident"),
    [
        (AlertKind.HELP, Resolution.CONFIRMED, True),
        (AlertKind.HELP, Resolution.FALSE_ALARM, False),  # pressed by mistake
        (AlertKind.DURESS, Resolution.CONFIRMED, True),
        (AlertKind.DURESS, Resolution.FALSE_ALARM, False),
        (AlertKind.DURESS, None, False),
        (AlertKind.TAMPER, Resolution.CONFIRMED, False),
    ],
)
def test_confirmed_help_and_duress_are_incidents(
    kind: AlertKind, resolution: Resolution | None, incident: bool
) -> None:
    assert is_incident(kind, resolution) is incident
    assert {AlertKind.HELP, AlertKind.DURESS} <= INCIDENT_KINDS


# ---------------------------------------------------------------------------- door bounce


def _ev(kind: EventType, s: float) -> DoorEvent:
    return DoorEvent(S1, HH, kind, at(s))


@pytest.mark.parametrize(
    ("open_since", "changed", "reopen", "bounce"),
    [
        (None, 10.0, 11.5, True),  # closed at 10, reopened 1.5 s later
        (None, 10.0, 12.0, True),  # exactly 2 s
        (None, 10.0, 12.1, False),
        (None, 10.0, 9.0, False),  # a late event from before the close
        (5.0, 5.0, 6.0, False),  # the door was open: not a bounce of a close
        (None, None, 1.0, False),  # never seen a change
    ],
)
def test_is_bounce(
    open_since: float | None, changed: float | None, reopen: float, bounce: bool
) -> None:
    sensor = SensorState(
        S1, HH,
        door_open_since=None if open_since is None else at(open_since),
        door_changed_at=None if changed is None else at(changed),
    )  # fmt: skip
    assert is_bounce(sensor, at(reopen), DEFAULT_POLICY) is bounce
    assert is_bounce(sensor, at(reopen), replace(DEFAULT_POLICY, door_bounce=timedelta(0))) is False


def _events(*steps: tuple[EventType, float]) -> list[Input]:
    return [EventInput(_ev(k, s), at(s)) for k, s in steps]


OCO = ((EventType.OPEN, 0.0), (EventType.CLOSE, 1.0), (EventType.OPEN, 2.5))


def test_armed_open_close_open_within_2_s_is_one_intrusion() -> None:
    policy = replace(DEFAULT_POLICY, entry_delay=timedelta(seconds=30))
    c = run(household(mode=Mode.AWAY), _events(*OCO), policy)
    entry = [t for t in c.timers_set if t.kind.value == "entry_delay"]
    assert len(entry) == 1  # one opening judged: one intrusion when it falls due
    off = replace(policy, door_bounce=timedelta(0))
    c = run(household(mode=Mode.AWAY), _events(*OCO), off)
    assert len([t for t in c.timers_set if t.kind.value == "entry_delay"]) == 2


def test_a_bounce_is_one_learned_opening() -> None:
    c = run(household(), _events(*OCO), replace(DEFAULT_POLICY, session_gap=timedelta(0)))
    learned = c.routines[0].model
    off = (
        run(
            household(),
            _events(*OCO),
            replace(DEFAULT_POLICY, session_gap=timedelta(0), door_bounce=timedelta(0)),
        )
        .routines[0]
        .model
    )
    assert learned != off  # without the bounce rule the reopening is learned once more
    once = run(household(), _events((EventType.OPEN, 0.0)), DEFAULT_POLICY).routines[0].model
    assert learned == once
    # and the door is open again, so door_left_open is watched from the reopening
    (door,) = [t for t in c.timers_set if t.kind.value == "door_left_open"]
    assert door.event_at == at(2.5)


def test_a_real_reopening_after_the_bounce_window_counts() -> None:
    steps = ((EventType.OPEN, 0.0), (EventType.CLOSE, 1.0), (EventType.OPEN, 4.0))
    c = run(household(mode=Mode.AWAY), _events(*steps))
    assert len([t for t in c.timers_set if t.kind.value == "entry_delay"]) == 2


def test_duress_pin_hash_is_slow_salted_and_checked() -> None:
    from core.credentials import hash_pin, pin_matches

    a, b = hash_pin("2580"), hash_pin("2580")
    assert a != b and a.startswith("scrypt$")  # a random salt per PIN
    assert pin_matches("2580", a) and pin_matches("2580", b)
    assert not pin_matches("2581", a)
    assert not pin_matches("2580", "0" * 64)  # an old fast hash never matches
