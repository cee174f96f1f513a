"""The alert engine, pure: the loaded state of some households and a sequence of inputs in,
one `Changes` value out. No I/O, no clock: every time comes in with the inputs, the
recording time (`recorded_at`, the wall clock the caller stamps rows with) and new ids
through `new_id`.

    state   = load(conn, household_ids)                  (core.storage.alert_state)
    changes = decide(state, inputs, config, recorded_at)
    save(conn, changes)                                   (core.storage.alert_state)

Inputs are handled in the order given, each household seeing what earlier inputs decided
(alerts raised or folded, timers set or cleared, sensor door state, routine learned):

- `EventInput`   a stored door event (or heartbeat): the household's timers due at the
                 event time first when `tick_first` (replay: timers follow the event clock),
                 then `evaluate_event` with the sensor as it was before the event;
- `StatusInput`  a broker status (Last Will / online);
- `TickInput`    every loaded household's timers, escalations and silent sensors at `now`;
- `ModeChangeInput`  a recorded arming/disarming;
- `AcknowledgeInput`, `ResolveInput`, `EscalateInput`  an operator's or resident's answer;
- `HelpInput`    the resident's "help": escalated at once, and from then on her own
                 acknowledge/resolve is refused (`HelpStandsError`): only an operator closes it.
- `HelpPressInput`  the help button, at any time: a `help` alert, to her webhook and to the
                 control centre at once (help stands on it); a press while one is open folds.
- `DuressInput`  a disarm with her duress PIN: a `duress` alert for the control centre only
                 (nothing to her webhook); a repeat while one is open folds.

The household's mode is taken *as of the event time* from its mode history, so a resident
who disarms a few seconds after opening the door is judged the same whether the engine
sees the opening before or after the disarm (and replays match live runs).

A raised alert whose `dedupe_key` is already stored is not raised again; the keys the state
knows are `EngineState.known_dedupe_keys` (the storage side looks up the keys a first
`decide` wants to raise and runs it again when some exist: `raised_dedupe_keys`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.credentials import new_id as random_id
from core.models import AlertKind, AlertState, Mode, NightWindow, Resolution, SensorStatus
from core.notify import AlertFacts, build_notifications
from core.routine import RoutineModel
from core.rules import (
    DEFAULT_POLICY,
    AlertPolicy,
    AlertView,
    ClearCheck,
    Decision,
    DoorEvent,
    EscalateAlert,
    FoldIntoAlert,
    HouseholdState,
    LearnOpening,
    PendingCheck,
    RaiseAlert,
    Recipient,
    ScheduleCheck,
    SensorState,
    StatusChange,
    acknowledge_alert,
    apply_event_to_sensor,
    apply_learning,
    apply_status_to_sensor,
    evaluate_due,
    evaluate_event,
    evaluate_mode_change,
    evaluate_status,
    press_alert,
    resolve_alert,
)
from core.timeutil import from_us, offset_minutes, rfc3339, to_us

# ---------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class HouseholdRecord:
    """One enrolled household as loaded: settings, mode (with its recent history, ascending
    by time), sensors, pending timers, alerts not yet resolved, routine model."""

    household_id: str
    timezone: str
    night_window: NightWindow
    webhook_url: str | None
    segment_id: str | None
    mode: Mode
    mode_since_us: int
    mode_history: tuple[tuple[int, Mode], ...] = ()
    sensors: Mapping[str, SensorState] = field(default_factory=dict)
    checks: Mapping[str, PendingCheck] = field(default_factory=dict)
    alerts: tuple[AlertView, ...] = ()
    routine: RoutineModel | None = None
    exit_delay: timedelta | None = None  # the household's own; None: the policy's

    def state_at(self, at: datetime) -> HouseholdState:
        """The household as of `at`: the last mode change at or before it."""
        times = [t for t, _ in self.mode_history]
        i = bisect_right(times, to_us(at))
        if i > 0:
            since: int | None
            since, mode = self.mode_history[i - 1]
        elif self.mode_history:  # before every recorded change: the household was disarmed
            mode, since = Mode.DISARMED, None
        else:
            mode, since = self.mode, self.mode_since_us
        return HouseholdState(
            household_id=self.household_id,
            mode=mode,
            mode_since=None if since is None else from_us(since),
            timezone=self.timezone,
            night_window=self.night_window,
            exit_delay=self.exit_delay,
        )


@dataclass(frozen=True, slots=True)
class EngineState:
    households: Mapping[str, HouseholdRecord] = field(default_factory=dict)
    known_dedupe_keys: frozenset[str] = frozenset()

    def with_known(self, keys: Iterable[str]) -> EngineState:
        return replace(self, known_dedupe_keys=self.known_dedupe_keys | frozenset(keys))


@dataclass(frozen=True, slots=True)
class EngineConfig:
    policy: AlertPolicy = DEFAULT_POLICY
    centre_url: str | None = None


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class EventInput:
    event: DoorEvent
    now: datetime
    tick_first: bool = False  # replay: the household's timers due at the event time first


@dataclass(frozen=True, slots=True)
class StatusInput:
    change: StatusChange
    now: datetime


@dataclass(frozen=True, slots=True)
class TickInput:
    now: datetime


@dataclass(frozen=True, slots=True)
class ModeChangeInput:
    household_id: str
    mode: Mode
    at: datetime


@dataclass(frozen=True, slots=True)
class AcknowledgeInput:
    alert: AlertView
    actor: str
    at: datetime
    by_resident: bool = False  # refused after a "help" answer (HelpStandsError)


@dataclass(frozen=True, slots=True)
class ResolveInput:
    alert: AlertView
    resolution: Resolution
    actor: str
    at: datetime
    household: HouseholdState
    by_resident: bool = False  # refused after a "help" answer (HelpStandsError)


@dataclass(frozen=True, slots=True)
class HelpInput:
    """The resident answered "help": the alert goes to the control centre at once (told that
    it is a help request even when it was escalated already) and stays with it."""

    alert_id: str
    household_id: str
    actor: str


@dataclass(frozen=True, slots=True)
class HelpPressInput:
    """The help button (resident or operator), not an answer to an alert."""

    household_id: str
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DuressInput:
    """A disarm with the duress PIN (the disarm itself is a `ModeChangeInput`)."""

    household_id: str
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class EscalateInput:
    alert_id: str
    household_id: str
    actor: str
    reason: str


Input = (
    EventInput
    | StatusInput
    | TickInput
    | ModeChangeInput
    | AcknowledgeInput
    | ResolveInput
    | EscalateInput
    | HelpInput
    | HelpPressInput
    | DuressInput
)

# ---------------------------------------------------------------------------- changes


@dataclass(frozen=True, slots=True)
class AlertRaised:
    alert_id: str
    household_id: str
    sensor_id: str
    kind: AlertKind
    event_at: datetime
    event_offset_min: int
    raised_at: datetime
    escalate_at: datetime | None
    reason: str
    recipients: frozenset[Recipient]
    dedupe_key: str
    score: float | None
    segment_id: str | None

    @property
    def detail(self) -> dict[str, Any]:
        return {"score": self.score} if self.score is not None else {}


@dataclass(frozen=True, slots=True)
class AlertFolded:
    alert_id: str
    event_at: datetime


@dataclass(frozen=True, slots=True)
class AlertEscalated:
    alert_id: str
    state: AlertState  # unchanged by escalating
    actor: str


@dataclass(frozen=True, slots=True)
class AlertAnswered:
    """An acknowledgement or a resolution (`resolution` set)."""

    alert_id: str
    from_state: AlertState
    to_state: AlertState
    actor: str
    resolution: Resolution | None = None


@dataclass(frozen=True, slots=True)
class AlertHelpAsked:
    """The resident asked for help on the alert (its state is unchanged)."""

    alert_id: str
    state: AlertState
    actor: str


AlertChange = AlertRaised | AlertFolded | AlertEscalated | AlertAnswered | AlertHelpAsked


@dataclass(frozen=True, slots=True)
class SensorDoor:
    sensor_id: str
    door_open_since: datetime | None
    door_changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RoutineUpdate:
    household_id: str
    model: RoutineModel


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    notification_id: str
    alert_id: str
    recipient: str
    household_id: str
    url: str | None
    body: str


@dataclass(frozen=True, slots=True)
class Changes:
    """What one `decide` changed. `alerts` and `outbox` keep the order they were decided
    in; timers, sensors and routines are the final state of what was touched."""

    recorded_at: datetime
    alerts: tuple[AlertChange, ...] = ()
    outbox: tuple[OutboxEntry, ...] = ()
    timers_set: tuple[PendingCheck, ...] = ()
    timers_cleared: tuple[str, ...] = ()
    sensor_doors: tuple[SensorDoor, ...] = ()
    sensors_silenced: tuple[str, ...] = ()  # offline from `recorded_at` (no heartbeat)
    routines: tuple[RoutineUpdate, ...] = ()

    @property
    def raised(self) -> list[str]:
        return [a.alert_id for a in self.alerts if isinstance(a, AlertRaised)]

    @property
    def escalated(self) -> list[str]:
        return [a.alert_id for a in self.alerts if isinstance(a, AlertEscalated)]

    @property
    def raised_dedupe_keys(self) -> set[str]:
        return {a.dedupe_key for a in self.alerts if isinstance(a, AlertRaised)}

    @property
    def empty(self) -> bool:
        return not (
            self.alerts or self.outbox or self.timers_set or self.timers_cleared
            or self.sensor_doors or self.sensors_silenced or self.routines
        )  # fmt: skip


# ---------------------------------------------------------------------------- the engine


@dataclass(slots=True)
class _Household:
    """The working copy of one household during a `decide`."""

    record: HouseholdRecord
    sensors: dict[str, SensorState]
    checks: dict[str, PendingCheck]
    alerts: list[AlertView]
    routine: RoutineModel | None
    sensors_dirty: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    checks_dirty: set[str] = field(default_factory=set)
    routine_dirty: bool = False

    def routine_for(self, at: datetime) -> RoutineModel:
        if self.routine is None:
            self.routine = RoutineModel.empty(started_at=at)
            self.routine_dirty = True
        return self.routine


class _Run:
    def __init__(
        self,
        state: EngineState,
        config: EngineConfig,
        recorded_at: datetime,
        new_id: Callable[[str], str],
    ) -> None:
        self.policy = config.policy
        self.centre_url = config.centre_url
        self.recorded_at = recorded_at
        self.new_id = new_id
        self.known = set(state.known_dedupe_keys)
        self.households = {
            hid: _Household(r, dict(r.sensors), dict(r.checks), list(r.alerts), r.routine)
            for hid, r in state.households.items()
        }
        self.alerts: list[AlertChange] = []
        self.outbox: list[OutboxEntry] = []

    # inputs -------------------------------------------------------------------------
    def handle(self, item: Input) -> None:
        if isinstance(item, EventInput):
            self.on_event(item)
        elif isinstance(item, StatusInput):
            self.on_status(item)
        elif isinstance(item, TickInput):
            for each in self.households.values():
                self.on_tick(each, item.now)
        elif isinstance(item, ModeChangeInput):
            self.on_mode_change(item)
        elif isinstance(item, AcknowledgeInput):
            t = acknowledge_alert(item.alert, item.at, item.actor, item.by_resident)
            self.alerts.append(AlertAnswered(t.alert_id, t.from_state, t.to_state, t.actor))
        elif isinstance(item, ResolveInput):
            t = resolve_alert(
                item.alert, item.resolution, item.at, item.actor, item.household, item.by_resident
            )
            self.alerts.append(
                AlertAnswered(t.alert_id, t.from_state, t.to_state, t.actor, t.resolution)
            )
            resolved_in = self.households.get(item.alert.household_id)
            if resolved_in is not None:
                self.apply(resolved_in, list(t.decisions))
        elif isinstance(item, HelpPressInput | DuressInput):
            pressed_in = self.households.get(item.household_id)
            if pressed_in is not None:
                self.press(pressed_in, item)
        elif isinstance(item, HelpInput):
            helped_in = self.households.get(item.household_id)
            if helped_in is not None:
                self.ask_help(helped_in, item.alert_id, item.actor)
        else:
            escalated_in = self.households.get(item.household_id)
            if escalated_in is not None:
                self.escalate(escalated_in, item.alert_id, item.actor, item.reason)

    def on_event(self, item: EventInput) -> None:
        event = item.event
        h = self.households.get(event.household_id)
        if h is None:
            return
        if item.tick_first:
            self.on_tick(h, event.event_at)
        sensor = h.sensors.get(event.sensor_id) or SensorState(event.sensor_id, event.household_id)
        household = h.record.state_at(event.event_at)
        decisions = evaluate_event(
            event, household, sensor, h.alerts, h.routine_for(event.event_at), item.now,
            self.policy,
        )  # fmt: skip
        h.sensors[event.sensor_id] = apply_event_to_sensor(sensor, event)
        h.sensors_dirty.add(event.sensor_id)
        self.apply(h, decisions)

    def on_status(self, item: StatusInput) -> None:
        change = item.change
        h = self.households.get(change.household_id)
        if h is None:
            return
        sensor = h.sensors.get(change.sensor_id) or SensorState(
            change.sensor_id, change.household_id
        )
        decisions = evaluate_status(change, sensor, self.policy)
        h.sensors[change.sensor_id] = apply_status_to_sensor(sensor, change)
        self.apply(h, decisions)

    def on_tick(self, h: _Household, now: datetime) -> None:
        decisions = evaluate_due(
            now, h.record.state_at(now), list(h.checks.values()), h.sensors, h.alerts,
            self.policy,
        )  # fmt: skip
        self.apply(h, decisions)

    def on_mode_change(self, item: ModeChangeInput) -> None:
        h = self.households.get(item.household_id)
        if h is None:
            return
        history = sorted([*h.record.mode_history, (to_us(item.at), item.mode)], key=lambda x: x[0])
        h.record = replace(h.record, mode_history=tuple(history))
        decisions = evaluate_mode_change(
            h.record.state_at(item.at), item.mode, item.at, list(h.checks.values())
        )
        self.apply(h, decisions)

    # decisions ----------------------------------------------------------------------
    def apply(self, h: _Household, decisions: Sequence[Decision]) -> None:
        for d in decisions:
            if isinstance(d, RaiseAlert):
                self.raise_alert(h, d)
            elif isinstance(d, FoldIntoAlert):
                self.alerts.append(AlertFolded(d.alert_id, d.event_at))
                h.alerts = [
                    replace(a, last_event_at=max(a.last_event_at or a.event_at, d.event_at))
                    if a.alert_id == d.alert_id
                    else a
                    for a in h.alerts
                ]
            elif isinstance(d, EscalateAlert):
                self.escalate(h, d.alert_id, "rules", d.reason)
            elif isinstance(d, ScheduleCheck):
                h.checks[d.check.key] = d.check
                h.checks_dirty.add(d.check.key)
            elif isinstance(d, ClearCheck):
                if h.checks.pop(d.key, None) is not None or d.key in h.checks_dirty:
                    h.checks_dirty.add(d.key)
            elif isinstance(d, LearnOpening):
                h.routine = apply_learning(h.routine_for(d.opened_at), d, self.policy)
                h.routine_dirty = True

    def raise_alert(self, h: _Household, d: RaiseAlert) -> str | None:
        if d.dedupe_key in self.known:
            return None  # already stored (or raised earlier in this run)
        self.known.add(d.dedupe_key)
        r = h.record
        alert_id = self.new_id("al")
        local = d.event_at.astimezone(ZoneInfo(r.timezone))
        self.alerts.append(
            AlertRaised(
                alert_id=alert_id, household_id=r.household_id, sensor_id=d.sensor_id,
                kind=d.kind, event_at=d.event_at, event_offset_min=offset_minutes(local),
                raised_at=d.raised_at, escalate_at=d.escalate_at, reason=d.reason,
                recipients=d.recipients, dedupe_key=d.dedupe_key, score=d.score,
                segment_id=r.segment_id,
            )
        )  # fmt: skip
        h.alerts.append(
            AlertView(alert_id, d.kind, AlertState.OPEN, r.household_id, d.sensor_id, d.event_at,
                      d.raised_at, d.event_at, d.recipients)
        )  # fmt: skip
        if d.kind is AlertKind.SENSOR_OFFLINE:
            sensor = h.sensors.get(d.sensor_id)
            if sensor is not None and sensor.status is not SensorStatus.OFFLINE:
                # silence, not a Last Will: the sensor is offline from now on
                h.sensors[d.sensor_id] = replace(sensor, status=SensorStatus.OFFLINE,
                                                 status_at=d.raised_at)  # fmt: skip
                h.silent.add(d.sensor_id)
        facts = self._facts(h, alert_id, str(d.kind), "open", d.sensor_id, d.event_at, d.reason)
        self._notify(h, facts, "alert.raised", {str(x) for x in d.recipients})
        return alert_id

    def press(self, h: _Household, item: HelpPressInput | DuressInput) -> None:
        """A help press or a duress disarm: raised at once to the control centre (a help
        press also to her webhook; a duress never), or folded into the one still open."""
        duress = isinstance(item, DuressInput)
        kind = AlertKind.DURESS if duress else AlertKind.HELP
        d = press_alert(kind, h.record.household_id, item.at, self.recorded_at, h.alerts)
        if isinstance(d, FoldIntoAlert):
            self.apply(h, [d])
            return
        alert_id = self.raise_alert(h, d)
        if alert_id is None:
            return
        if duress:
            self.escalate(h, alert_id, item.actor, d.reason)
        else:
            self.ask_help(h, alert_id, item.actor)

    def ask_help(self, h: _Household, alert_id: str, actor: str) -> None:
        view = next((a for a in h.alerts if a.alert_id == alert_id), None)
        if view is None or view.help_requested or view.state is AlertState.RESOLVED:
            return
        self.alerts.append(AlertHelpAsked(alert_id, view.state, actor))
        h.alerts = [replace(a, help_requested=True) if a.alert_id == alert_id else a
                    for a in h.alerts]  # fmt: skip
        reason = "the resident asked for help"
        if not view.escalated:
            self.escalate(h, alert_id, actor, reason, help_requested=True)
            return
        facts = self._facts(
            h, alert_id, str(view.kind), str(view.state), view.sensor_id, view.event_at, reason,
            escalated=True, help_requested=True,
        )  # fmt: skip
        self._notify(h, facts, "alert.help", {"centre"})

    def escalate(
        self, h: _Household, alert_id: str, actor: str, reason: str, help_requested: bool = False
    ) -> None:
        view = next((a for a in h.alerts if a.alert_id == alert_id), None)
        if view is None or view.escalated or view.state is AlertState.RESOLVED:
            return
        self.alerts.append(AlertEscalated(alert_id, view.state, actor))
        h.alerts = [
            replace(a, escalated=True, recipients=a.recipients | {Recipient.CENTRE})
            if a.alert_id == alert_id
            else a
            for a in h.alerts
        ]
        facts = self._facts(
            h, alert_id, str(view.kind), str(view.state), view.sensor_id, view.event_at, reason,
            escalated=True, help_requested=help_requested or view.help_requested,
        )  # fmt: skip
        self._notify(h, facts, "alert.escalated", {"centre"})

    def _facts(self, h: _Household, alert_id: str, kind: str, state: str, sensor_id: str,
               event_at: datetime, reason: str, escalated: bool = False,
               help_requested: bool = False) -> AlertFacts:  # fmt: skip
        return AlertFacts(
            alert_id=alert_id,
            kind=kind,
            state=state,
            household_id=h.record.household_id,
            sensor_id=sensor_id or None,
            event_ts=rfc3339(event_at.astimezone(ZoneInfo(h.record.timezone))),
            reason=reason,
            escalated=escalated,
            help_requested=help_requested,
        )

    def _notify(self, h: _Household, facts: AlertFacts, what: str, to: set[str]) -> None:
        created = rfc3339(self.recorded_at)
        for item in build_notifications(
            facts, what, to, h.record.webhook_url, self.centre_url, created
        ):
            self.outbox.append(
                OutboxEntry(item.notification_id, facts.alert_id, item.recipient,
                            h.record.household_id, item.url, item.body)
            )  # fmt: skip

    # result ----------------------------------------------------------------------------
    def changes(self) -> Changes:
        doors: list[SensorDoor] = []
        silenced: list[str] = []
        timers_set: list[PendingCheck] = []
        timers_cleared: list[str] = []
        routines: list[RoutineUpdate] = []
        for h in self.households.values():
            for sid in h.sensors_dirty | h.silent:
                sensor = h.sensors.get(sid)
                if sensor is not None:
                    doors.append(SensorDoor(sid, sensor.door_open_since, sensor.door_changed_at))
            silenced += sorted(h.silent)
            for key in h.checks_dirty:
                check = h.checks.get(key)
                if check is None:
                    timers_cleared.append(key)
                else:
                    timers_set.append(check)
            if h.routine_dirty and h.routine is not None:
                routines.append(RoutineUpdate(h.record.household_id, h.routine))
        return Changes(
            recorded_at=self.recorded_at,
            alerts=tuple(self.alerts),
            outbox=tuple(self.outbox),
            timers_set=tuple(timers_set),
            timers_cleared=tuple(timers_cleared),
            sensor_doors=tuple(doors),
            sensors_silenced=tuple(silenced),
            routines=tuple(routines),
        )


def decide(
    state: EngineState,
    inputs: Iterable[Input],
    config: EngineConfig,
    recorded_at: datetime,
    new_id: Callable[[str], str] = random_id,
) -> Changes:
    """Run `inputs`, in order, over `state`; households not in `state` are left alone
    (not enrolled, or not loaded). Raises `AlertTransitionError` for an answer the alert's
    state does not allow."""
    run = _Run(state, config, recorded_at, new_id)
    for item in inputs:
        run.handle(item)
    return run.changes()
