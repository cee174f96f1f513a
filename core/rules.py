"""The alert rules of SPEC "Alerts", as pure functions that return decisions.

Nothing here does I/O or reads a clock: every function takes `now`, the decision time.
In `live` mode the caller passes the wall clock (events carry their skew-corrected time);
in `replay` mode it passes the event clock (the latest event time it has processed), so a
replay yields the same alerts as live operation.

How a pipeline uses it (one household at a time, inside the transaction that stores the
event; see docs/alerts.md):

    per event     decisions  = evaluate_due(event.event_at (replay) or now (live), ...)
                  decisions += evaluate_event(event, household, sensor, alerts, routine, now)
                  sensor     = apply_event_to_sensor(sensor, event)
    per status    decisions  = evaluate_status(change, sensor)
                  sensor     = apply_status_to_sensor(sensor, change)
    mode change   decisions  = evaluate_mode_change(household, new_mode, changed_at, checks)
    periodic tick decisions  = evaluate_due(now, household, checks, sensors, alerts)
    ack / resolve transition = acknowledge_alert(alert, at, actor) / resolve_alert(...)

and then carries the decisions out: RaiseAlert → insert (ignore when `dedupe_key` exists)
plus notifications; FoldIntoAlert → bump the alert's repeat count and `last_event_at`;
EscalateAlert → mark escalated and notify the centre; ScheduleCheck → upsert by `key`;
ClearCheck → delete by `key`; LearnOpening → `routine = apply_learning(routine, d)`
(also for the LearnOpening an AlertTransition carries).

Decisions made earlier in a batch must be visible to later events of the same household
(pass the alerts and checks including the ones just raised or scheduled).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import AnsimError
from core.models import (
    DEFAULT_NIGHT_WINDOW,
    AlertKind,
    AlertState,
    EventType,
    Mode,
    NightWindow,
    Resolution,
    SensorStatus,
)
from core.routine import (
    DEFAULT_ROUTINE_PARAMS,
    RoutineModel,
    RoutineParams,
    is_unusual,
    observed_days,
    update,
)

ARMED_MODES = frozenset({Mode.AWAY, Mode.NIGHT})


class Recipient(enum.StrEnum):
    RESIDENT = "resident"
    CENTRE = "centre"


RESIDENT_ONLY = frozenset({Recipient.RESIDENT})
CENTRE_ONLY = frozenset({Recipient.CENTRE})
RESIDENT_AND_CENTRE = frozenset({Recipient.RESIDENT, Recipient.CENTRE})


class CheckKind(enum.StrEnum):
    ENTRY_DELAY = "entry_delay"
    DOOR_LEFT_OPEN = "door_left_open"
    OFFLINE_GRACE = "offline_grace"


class AlertAction(enum.StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class AlertTransitionError(AnsimError):
    """A lifecycle step the alert's state does not allow (the API answers 409)."""

    def __init__(self, alert_id: str, state: AlertState, action: AlertAction) -> None:
        allowed = ", ".join(a.value for a in _ALLOWED[state]) or "nothing (it is final)"
        super().__init__(
            f"alert {alert_id} is {state.value}: cannot {action.value} it (allowed: {allowed})"
        )
        self.alert_id = alert_id
        self.state = state
        self.action = action


class HelpStandsError(AnsimError):
    """The resident asked for help on this alert: her own answers no longer move it on (she
    may be made to press "it was me"); only an operator resolves it (the API answers 409)."""

    def __init__(self, alert_id: str, action: AlertAction) -> None:
        super().__init__(
            f"alert {alert_id}: help was asked, so only the control centre can {action.value} it"
        )
        self.alert_id = alert_id
        self.action = action


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Delays and limits of the rules; the defaults are SPEC's."""

    entry_delay: timedelta = timedelta(seconds=30)
    # Openings this soon after arming `away`/`night` are the resident leaving (SPEC: 60 s;
    # 0 here so the bare rules keep judging every armed opening; ANSIM_EXIT_DELAY_S sets it).
    # A household's own `HouseholdState.exit_delay` overrides it.
    exit_delay: timedelta = timedelta(0)
    door_left_open_after: timedelta = timedelta(minutes=10)
    escalation_delay: timedelta = timedelta(minutes=3)
    battery_threshold: int = 20
    heartbeat_interval: timedelta = timedelta(seconds=600)
    missed_heartbeats: int = 3
    offline_grace: timedelta = timedelta(seconds=120)
    # An opening this soon after the door closed is the same opening (contacts bounce when a
    # door swings shut: open-close-open): no new alert, no new learned opening.
    door_bounce: timedelta = timedelta(seconds=2)
    # A repeat within this time of the open alert's last event folds into it.
    fold_window: timedelta = timedelta(hours=1)
    # Openings this close to the last learned one are the same outing: learned once.
    session_gap: timedelta = timedelta(minutes=10)
    # Weight with which an opening that raised night_opening is learned before an answer.
    unconfirmed_weight: float = 0.5
    routine: RoutineParams = DEFAULT_ROUTINE_PARAMS


DEFAULT_POLICY = AlertPolicy()


@dataclass(frozen=True, slots=True)
class DoorEvent:
    """A stored sensor event; `event_at` is the resolved event time (aware)."""

    sensor_id: str
    household_id: str
    type: EventType
    event_at: datetime
    battery: int | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A retained `online`/`offline` status message (the Last Will is `offline`)."""

    sensor_id: str
    household_id: str
    status: SensorStatus
    at: datetime


@dataclass(frozen=True, slots=True)
class HouseholdState:
    household_id: str
    mode: Mode = Mode.DISARMED
    mode_since: datetime | None = None
    timezone: str = "Asia/Seoul"
    night_window: NightWindow = DEFAULT_NIGHT_WINDOW
    exit_delay: timedelta | None = None  # the household's own; None: the policy's

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def armed(self) -> bool:
        return self.mode in ARMED_MODES

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.zone)

    def is_night(self, at: datetime) -> bool:
        return self.night_window.contains(self.local(at).time())

    def exit_delay_for(self, policy: AlertPolicy) -> timedelta:
        return self.exit_delay if self.exit_delay is not None else policy.exit_delay

    def in_exit_delay(self, at: datetime, policy: AlertPolicy) -> bool:
        """Armed, and `at` within the exit delay that the arming started."""
        since = self.mode_since
        return self.armed and since is not None and at < since + self.exit_delay_for(policy)

    def armed_at(self, at: datetime) -> bool:
        """Armed at `at`, as far as the current mode tells (it must predate `at`)."""
        return self.armed and (self.mode_since is None or self.mode_since <= at)


@dataclass(frozen=True, slots=True)
class SensorState:
    """What the rules need to know of a sensor, as it was before the event evaluated."""

    sensor_id: str
    household_id: str
    status: SensorStatus = SensorStatus.UNKNOWN
    status_at: datetime | None = None
    last_seen_at: datetime | None = None
    battery: int | None = None
    door_open_since: datetime | None = None
    door_changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as stored: `event_at` of the event that raised it, `raised_at` the decision
    time, `last_event_at` of the latest folded repeat."""

    alert_id: str
    kind: AlertKind
    state: AlertState
    household_id: str
    sensor_id: str
    event_at: datetime
    raised_at: datetime
    last_event_at: datetime | None = None
    recipients: frozenset[Recipient] = RESIDENT_ONLY
    escalated: bool = False
    resolution: Resolution | None = None
    help_requested: bool = False  # the resident answered "help": only an operator closes it


@dataclass(frozen=True, slots=True)
class PendingCheck:
    """A timer the pipeline keeps until `due_at`, then hands to `evaluate_due`."""

    key: str
    kind: CheckKind
    household_id: str
    sensor_id: str
    event_at: datetime
    due_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind.value,
            "household_id": self.household_id,
            "sensor_id": self.sensor_id,
            "event_at": self.event_at.isoformat(),
            "due_at": self.due_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingCheck:
        return cls(
            key=str(data["key"]),
            kind=CheckKind(data["kind"]),
            household_id=str(data["household_id"]),
            sensor_id=str(data["sensor_id"]),
            event_at=datetime.fromisoformat(str(data["event_at"])),
            due_at=datetime.fromisoformat(str(data["due_at"])),
        )


# ---------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    kind: AlertKind
    household_id: str
    sensor_id: str
    event_at: datetime
    raised_at: datetime
    reason: str
    recipients: frozenset[Recipient]
    dedupe_key: str
    escalate_at: datetime | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class FoldIntoAlert:
    alert_id: str
    kind: AlertKind
    event_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class EscalateAlert:
    alert_id: str
    kind: AlertKind
    household_id: str
    escalated_at: datetime
    reason: str
    recipients: frozenset[Recipient] = CENTRE_ONLY


@dataclass(frozen=True, slots=True)
class ScheduleCheck:
    check: PendingCheck


@dataclass(frozen=True, slots=True)
class ClearCheck:
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class LearnOpening:
    """Teach the household's routine model an opening (`apply_learning` does it).

    Without `resolution` it is a new opening learned with `weight` (skipped when within the
    session gap of the last learned opening). With `resolution` it corrects an opening that
    raised night_opening: "it was me" (false_alarm) tops it up to a full opening,
    `confirmed` takes back what was learned of it."""

    household_id: str
    opened_at: datetime
    timezone: str
    weight: float
    reason: str
    resolution: Resolution | None = None


Decision = RaiseAlert | FoldIntoAlert | EscalateAlert | ScheduleCheck | ClearCheck | LearnOpening


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """The outcome of a lifecycle step, for the alert row and the audit trail."""

    alert_id: str
    from_state: AlertState
    to_state: AlertState
    action: AlertAction
    at: datetime
    actor: str
    resolution: Resolution | None = None
    decisions: tuple[Decision, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------- event rules


def evaluate_event(
    event: DoorEvent,
    household: HouseholdState,
    sensor: SensorState,
    open_alerts: Sequence[AlertView],
    routine: RoutineModel,
    now: datetime,
    policy: AlertPolicy = DEFAULT_POLICY,
) -> list[Decision]:
    """Decisions for one sensor event. `sensor` is the state before this event and
    `open_alerts` the household's alerts not yet resolved."""
    _require_aware(event.event_at, now)
    out: list[Decision] = []
    if event.type is EventType.OPEN:
        out += _on_open(event, household, sensor, open_alerts, routine, now, policy)
    elif event.type is EventType.CLOSE:
        if sensor.door_open_since is not None and event.event_at >= sensor.door_open_since:
            out.append(ClearCheck(_door_key(event.sensor_id), "door closed"))
    elif event.type is EventType.TAMPER:
        out.append(
            _raise_or_fold(
                AlertKind.TAMPER,
                event.sensor_id,
                household,
                event.event_at,
                now,
                open_alerts,
                policy,
                reason="the sensor reported tampering",
                recipients=RESIDENT_AND_CENTRE,
            )
        )
    out += _battery(event, household, sensor, open_alerts, now, policy)
    return out


def _on_open(
    event: DoorEvent,
    household: HouseholdState,
    sensor: SensorState,
    open_alerts: Sequence[AlertView],
    routine: RoutineModel,
    now: datetime,
    policy: AlertPolicy,
) -> list[Decision]:
    out: list[Decision] = []
    at = event.event_at
    newest = sensor.door_changed_at is None or at >= sensor.door_changed_at
    if newest:
        due = at + policy.door_left_open_after
        out.append(ScheduleCheck(_check(CheckKind.DOOR_LEFT_OPEN, event, due)))
    if is_bounce(sensor, at, policy):
        return out  # the door never really shut: the opening was judged and learned already
    if household.armed:
        # A late event from before the current mode was set is not judged by it, nor is an
        # opening within the exit delay that arming started (she is walking out).
        if not household.in_exit_delay(at, policy):
            due = at + policy.entry_delay
            out.append(ScheduleCheck(_check(CheckKind.ENTRY_DELAY, event, due)))
        return out
    local = household.local(at)
    judgement = is_unusual(routine, local, household.night_window, policy.routine)
    cold = observed_days(routine, local) < policy.routine.min_history_days
    weight = 1.0
    if judgement.unusual:
        out.append(
            _raise_or_fold(
                AlertKind.NIGHT_OPENING,
                event.sensor_id,
                household,
                at,
                now,
                open_alerts,
                policy,
                reason=judgement.explanation,
                recipients=RESIDENT_ONLY,
                score=judgement.score,
            )
        )
        # Before the resident answers, an unusual opening teaches the model only half
        # (one intrusion must not make its hour usual); in the cold start it is all there is.
        weight = 1.0 if cold else policy.unconfirmed_weight
    reason = "unusual opening, not yet answered" if weight < 1 else "ordinary opening"
    out.append(LearnOpening(household.household_id, at, household.timezone, weight, reason))
    return out


def is_bounce(sensor: SensorState, at: datetime, policy: AlertPolicy = DEFAULT_POLICY) -> bool:
    """An opening at `at` that is a bounce of the door shutting: the sensor's last change
    was a close (door not open), at most `policy.door_bounce` before `at`."""
    closed_at = sensor.door_changed_at
    return (
        policy.door_bounce > timedelta(0)
        and sensor.door_open_since is None
        and closed_at is not None
        and closed_at <= at <= closed_at + policy.door_bounce
    )


def _battery(
    event: DoorEvent,
    household: HouseholdState,
    sensor: SensorState,
    open_alerts: Sequence[AlertView],
    now: datetime,
    policy: AlertPolicy,
) -> list[Decision]:
    """battery_low once per crossing below the threshold, never while one is unresolved."""
    level, threshold = event.battery, policy.battery_threshold
    if level is None or level >= threshold:
        return []
    if sensor.battery is not None and sensor.battery < threshold:
        return []
    if _find_open(open_alerts, AlertKind.BATTERY_LOW, event.sensor_id) is not None:
        return []
    return [
        RaiseAlert(
            AlertKind.BATTERY_LOW,
            household.household_id,
            event.sensor_id,
            event.event_at,
            now,
            f"battery at {level}% is under {threshold}%: replace it (maintenance)",
            CENTRE_ONLY,
            _dedupe(AlertKind.BATTERY_LOW, event.sensor_id, event.event_at),
        )
    ]


def evaluate_status(
    change: StatusChange, sensor: SensorState, policy: AlertPolicy = DEFAULT_POLICY
) -> list[Decision]:
    """`offline` (the Last Will) starts a grace timer; `online` within it cancels it. The
    alert itself is decided by `evaluate_due` when the grace delay is over."""
    _require_aware(change.at)
    key = _offline_key(change.sensor_id)
    if sensor.status_at is not None and change.at < sensor.status_at:
        return []  # an older status than the one known
    if change.status is SensorStatus.OFFLINE:
        if sensor.status is SensorStatus.OFFLINE:
            return []
        check = PendingCheck(
            key,
            CheckKind.OFFLINE_GRACE,
            change.household_id,
            change.sensor_id,
            change.at,
            change.at + policy.offline_grace,
        )
        return [ScheduleCheck(check)]
    if change.status is SensorStatus.ONLINE:
        return [ClearCheck(key, "sensor back online")]
    return []


def evaluate_mode_change(
    household: HouseholdState,
    new_mode: Mode,
    changed_at: datetime,
    checks: Sequence[PendingCheck],
) -> list[Decision]:
    """Disarming (to `disarmed` or `home`) within the entry delay cancels the intrusion."""
    _require_aware(changed_at)
    if new_mode in ARMED_MODES:
        return []
    return [
        ClearCheck(c.key, f"{new_mode.value} at {changed_at.isoformat()}, within the entry delay")
        for c in checks
        if c.kind is CheckKind.ENTRY_DELAY
        and c.household_id == household.household_id
        and c.event_at <= changed_at <= c.due_at
    ]


# ---------------------------------------------------------------------------- timers


def evaluate_due(
    now: datetime,
    household: HouseholdState,
    checks: Sequence[PendingCheck],
    sensors: Mapping[str, SensorState],
    open_alerts: Sequence[AlertView],
    policy: AlertPolicy = DEFAULT_POLICY,
) -> list[Decision]:
    """Resolve every timer due at `now`: pending checks, escalations, silent sensors.

    Checks not yet due are left alone; a due check always ends with a ClearCheck."""
    _require_aware(now)
    out: list[Decision] = []
    alerts = list(open_alerts)
    for check in sorted(checks, key=lambda c: (c.due_at, c.key)):
        if check.household_id != household.household_id or check.due_at > now:
            continue
        sensor = sensors.get(check.sensor_id)
        decision = _resolve_check(check, household, sensor, alerts, now, policy)
        if decision is not None:
            out.append(decision)
            if isinstance(decision, RaiseAlert):
                alerts.append(_provisional_view(decision))
        out.append(ClearCheck(check.key, f"{check.kind.value} due"))
    out += _silent_sensors(now, household, sensors, alerts, policy)
    out += _escalations(now, household, open_alerts, policy)
    return out


def _resolve_check(
    check: PendingCheck,
    household: HouseholdState,
    sensor: SensorState | None,
    alerts: Sequence[AlertView],
    now: datetime,
    policy: AlertPolicy,
) -> Decision | None:
    if check.kind is CheckKind.ENTRY_DELAY:
        since = household.mode_since
        changed_within = since is not None and check.event_at < since <= check.due_at
        if not household.armed and since is not None and since <= check.due_at:
            return None  # disarmed in time
        if changed_within:
            return None  # the mode changed within the delay: the resident is in control
        return _raise_or_fold(
            AlertKind.INTRUSION,
            check.sensor_id,
            household,
            check.event_at,
            now,
            alerts,
            policy,
            reason=(
                f"door opened while armed {household.mode.value} and not disarmed within"
                f" {policy.entry_delay.total_seconds():g} s"
            ),
            recipients=RESIDENT_ONLY,
        )
    if check.kind is CheckKind.DOOR_LEFT_OPEN:
        if sensor is None or sensor.door_open_since != check.event_at:
            return None  # closed (or reopened: a newer check exists)
        night = household.is_night(check.event_at) or household.is_night(check.due_at)
        if not (night or household.armed):
            return None
        minutes = policy.door_left_open_after.total_seconds() / 60
        when = "at night" if night else f"while armed {household.mode.value}"
        return _raise_or_fold(
            AlertKind.DOOR_LEFT_OPEN,
            check.sensor_id,
            household,
            check.event_at,
            now,
            alerts,
            policy,
            reason=f"door open for more than {minutes:g} min {when}",
            recipients=RESIDENT_ONLY,
        )
    # OFFLINE_GRACE
    if sensor is None or sensor.status is not SensorStatus.OFFLINE:
        return None  # back online within the grace delay (or retired)
    if sensor.status_at is not None and sensor.status_at > check.event_at:
        return None  # a newer outage has its own timer
    grace = policy.offline_grace.total_seconds()
    return _raise_or_fold(
        AlertKind.SENSOR_OFFLINE,
        check.sensor_id,
        household,
        check.event_at,
        now,
        alerts,
        policy,
        reason=f"broker reports the sensor offline (Last Will) for more than {grace:g} s",
        recipients=_offline_recipients(household, now),
        fold_any_age=True,
    )


def _silent_sensors(
    now: datetime,
    household: HouseholdState,
    sensors: Mapping[str, SensorState],
    alerts: Sequence[AlertView],
    policy: AlertPolicy,
) -> list[Decision]:
    out: list[Decision] = []
    limit = policy.heartbeat_interval * policy.missed_heartbeats
    for sensor in sensors.values():
        if sensor.household_id != household.household_id or sensor.last_seen_at is None:
            continue
        if sensor.status in (SensorStatus.RETIRED, SensorStatus.OFFLINE):
            continue  # retired, or the Last Will path owns this outage
        overdue_at = sensor.last_seen_at + limit
        if now < overdue_at + policy.offline_grace:
            continue
        if _find_open(alerts, AlertKind.SENSOR_OFFLINE, sensor.sensor_id) is not None:
            continue
        out.append(
            RaiseAlert(
                AlertKind.SENSOR_OFFLINE,
                household.household_id,
                sensor.sensor_id,
                overdue_at,
                now,
                f"no message for {policy.missed_heartbeats} heartbeat intervals"
                f" (last seen {sensor.last_seen_at.isoformat()})",
                _offline_recipients(household, now),
                _dedupe(AlertKind.SENSOR_OFFLINE, sensor.sensor_id, overdue_at),
            )
        )
    return out


def _escalations(
    now: datetime,
    household: HouseholdState,
    open_alerts: Sequence[AlertView],
    policy: AlertPolicy,
) -> list[Decision]:
    out: list[Decision] = []
    for alert in open_alerts:
        if alert.household_id != household.household_id or alert.state is not AlertState.OPEN:
            continue
        if alert.escalated or Recipient.CENTRE in alert.recipients:
            continue
        if alert.raised_at + policy.escalation_delay > now:
            continue
        delay = policy.escalation_delay.total_seconds()
        out.append(
            EscalateAlert(
                alert.alert_id,
                alert.kind,
                household.household_id,
                now,
                f"not acknowledged within {delay:g} s: escalated to the control centre",
            )
        )
    return out


# ---------------------------------------------------------------------------- sensor state


def apply_event_to_sensor(sensor: SensorState, event: DoorEvent) -> SensorState:
    """The sensor's state after `event` (late events never overwrite newer state)."""
    at = event.event_at
    seen = sensor.last_seen_at if sensor.last_seen_at and sensor.last_seen_at > at else at
    newer = sensor.last_seen_at is None or at >= sensor.last_seen_at
    battery = event.battery if event.battery is not None and newer else sensor.battery
    door_since, changed = sensor.door_open_since, sensor.door_changed_at
    if event.type in (EventType.OPEN, EventType.CLOSE) and (changed is None or at >= changed):
        changed = at
        door_since = at if event.type is EventType.OPEN else None
    return replace(
        sensor,
        last_seen_at=seen,
        battery=battery,
        door_open_since=door_since,
        door_changed_at=changed,
    )


def apply_status_to_sensor(sensor: SensorState, change: StatusChange) -> SensorState:
    if sensor.status_at is not None and change.at < sensor.status_at:
        return sensor
    seen = sensor.last_seen_at
    if change.status is SensorStatus.ONLINE and (seen is None or change.at > seen):
        seen = change.at
    return replace(sensor, status=change.status, status_at=change.at, last_seen_at=seen)


# ---------------------------------------------------------------------------- lifecycle

_ALLOWED: dict[AlertState, tuple[AlertAction, ...]] = {
    AlertState.OPEN: (AlertAction.ACKNOWLEDGE, AlertAction.RESOLVE),
    AlertState.ACKNOWLEDGED: (AlertAction.RESOLVE,),
    AlertState.RESOLVED: (),
}


def next_state(alert_id: str, state: AlertState, action: AlertAction) -> AlertState:
    """open → acknowledged → resolved. Resolving an open alert acknowledges it on the way
    (a resident answering "it was me" at once); everything else raises."""
    if action not in _ALLOWED[state]:
        raise AlertTransitionError(alert_id, state, action)
    return AlertState.ACKNOWLEDGED if action is AlertAction.ACKNOWLEDGE else AlertState.RESOLVED


def _help_stands(alert: AlertView, action: AlertAction, by_resident: bool) -> None:
    """Once she asked for help, the resident cannot acknowledge or resolve it herself."""
    if by_resident and alert.help_requested and alert.state is not AlertState.RESOLVED:
        raise HelpStandsError(alert.alert_id, action)


def acknowledge_alert(
    alert: AlertView, at: datetime, actor: str, by_resident: bool = False
) -> AlertTransition:
    _require_aware(at)
    _help_stands(alert, AlertAction.ACKNOWLEDGE, by_resident)
    to = next_state(alert.alert_id, alert.state, AlertAction.ACKNOWLEDGE)
    return AlertTransition(alert.alert_id, alert.state, to, AlertAction.ACKNOWLEDGE, at, actor)


def resolve_alert(
    alert: AlertView,
    resolution: Resolution,
    at: datetime,
    actor: str,
    household: HouseholdState,
    by_resident: bool = False,
) -> AlertTransition:
    """Resolve (`false_alarm` or `confirmed`). A night_opening's resolution also corrects
    the routine model: see LearnOpening. After a "help" answer only an operator resolves it
    (`HelpStandsError` when `by_resident`)."""
    _require_aware(at)
    _help_stands(alert, AlertAction.RESOLVE, by_resident)
    to = next_state(alert.alert_id, alert.state, AlertAction.RESOLVE)
    decisions: tuple[Decision, ...] = ()
    if alert.kind is AlertKind.NIGHT_OPENING:
        learn = LearnOpening(
            household.household_id,
            alert.event_at,
            household.timezone,
            0.0,
            f"night_opening resolved {resolution.value} by {actor}",
            resolution,
        )
        decisions = (learn,)
    return AlertTransition(
        alert.alert_id, alert.state, to, AlertAction.RESOLVE, at, actor, resolution, decisions
    )


def apply_learning(
    model: RoutineModel, decision: LearnOpening, policy: AlertPolicy = DEFAULT_POLICY
) -> RoutineModel:
    """Carry out a LearnOpening on the household's routine model; returns the new model."""
    params = policy.routine
    local = decision.opened_at.astimezone(ZoneInfo(decision.timezone))
    if decision.resolution is None:
        last = model.last_learned_at
        if last is not None and abs(local - last) < policy.session_gap:
            return model  # the same outing as the last learned opening
        return update(model, local, params, decision.weight)
    # What was learned when it was raised: all of it in the cold start, else a part.
    cold = observed_days(model, local) < params.min_history_days
    learned = 1.0 if cold else policy.unconfirmed_weight
    delta = 1.0 - learned if decision.resolution is Resolution.FALSE_ALARM else -learned
    return update(model, local, params, delta) if delta else model


# ---------------------------------------------------------------------------- helpers


def _raise_or_fold(
    kind: AlertKind,
    sensor_id: str,
    household: HouseholdState,
    event_at: datetime,
    now: datetime,
    alerts: Sequence[AlertView],
    policy: AlertPolicy,
    *,
    reason: str,
    recipients: frozenset[Recipient],
    score: float | None = None,
    fold_any_age: bool = False,
) -> RaiseAlert | FoldIntoAlert:
    existing = _find_open(alerts, kind, sensor_id)
    if existing is not None:
        last = existing.last_event_at or existing.event_at
        if fold_any_age or abs(event_at - last) <= policy.fold_window:
            return FoldIntoAlert(existing.alert_id, kind, event_at, f"repeat: {reason}")
    escalate_at = None if Recipient.CENTRE in recipients else now + policy.escalation_delay
    return RaiseAlert(
        kind,
        household.household_id,
        sensor_id,
        event_at,
        now,
        reason,
        recipients,
        _dedupe(kind, sensor_id, event_at),
        escalate_at,
        score,
    )


def press_alert(
    kind: AlertKind,
    household_id: str,
    at: datetime,
    now: datetime,
    alerts: Sequence[AlertView],
) -> RaiseAlert | FoldIntoAlert:
    """A `help` press or a `duress` disarm: a new alert (not sensor-bound), or a fold into
    the one of that kind still unresolved, whatever its age (she is still in trouble). The
    engine escalates it at once: no escalation delay. Raised to her alone (a help press;
    the escalation adds the centre) or to no one (a duress: the escalation tells only the
    centre)."""
    _require_aware(at, now)
    existing = _find_open(alerts, kind, "")
    if existing is not None:
        return FoldIntoAlert(existing.alert_id, kind, at, f"repeat: {kind.value} pressed again")
    duress = kind is AlertKind.DURESS
    reason = "disarmed with the duress PIN" if duress else "the resident pressed the help button"
    recipients: frozenset[Recipient] = frozenset() if duress else RESIDENT_ONLY
    return RaiseAlert(kind, household_id, "", at, now, reason, recipients,
                      f"{kind.value}:{household_id}:{_utc(at)}", None)  # fmt: skip


def _find_open(alerts: Sequence[AlertView], kind: AlertKind, sensor_id: str) -> AlertView | None:
    found = [
        a
        for a in alerts
        if a.kind is kind and a.sensor_id == sensor_id and a.state is not AlertState.RESOLVED
    ]
    return max(found, key=lambda a: a.last_event_at or a.event_at) if found else None


def _provisional_view(decision: RaiseAlert) -> AlertView:
    """An alert raised earlier in the same evaluation, so later checks fold into it."""
    return AlertView(
        alert_id=f"pending:{decision.dedupe_key}",
        kind=decision.kind,
        state=AlertState.OPEN,
        household_id=decision.household_id,
        sensor_id=decision.sensor_id,
        event_at=decision.event_at,
        raised_at=decision.raised_at,
        recipients=decision.recipients,
    )


def _offline_recipients(household: HouseholdState, now: datetime) -> frozenset[Recipient]:
    return RESIDENT_AND_CENTRE if household.armed or household.is_night(now) else CENTRE_ONLY


def _check(kind: CheckKind, event: DoorEvent, due_at: datetime) -> PendingCheck:
    if kind is CheckKind.DOOR_LEFT_OPEN:
        key = _door_key(event.sensor_id)
    else:
        key = f"{kind.value}:{event.sensor_id}:{_utc(event.event_at)}"
    return PendingCheck(key, kind, event.household_id, event.sensor_id, event.event_at, due_at)


def _door_key(sensor_id: str) -> str:
    return f"{CheckKind.DOOR_LEFT_OPEN.value}:{sensor_id}"


def _offline_key(sensor_id: str) -> str:
    return f"{CheckKind.OFFLINE_GRACE.value}:{sensor_id}"


def _dedupe(kind: AlertKind, sensor_id: str, event_at: datetime) -> str:
    return f"{kind.value}:{sensor_id}:{_utc(event_at)}"


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _require_aware(*values: datetime) -> None:
    for value in values:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("rule times must be timezone-aware")
