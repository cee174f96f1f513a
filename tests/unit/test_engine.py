"""The pure alert engine: loaded state + inputs in, one Changes value out (no database)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from core.engine import (
    AcknowledgeInput,
    AlertAnswered,
    AlertEscalated,
    AlertFolded,
    AlertRaised,
    Changes,
    EngineConfig,
    EngineState,
    EscalateInput,
    EventInput,
    HouseholdRecord,
    Input,
    ModeChangeInput,
    ResolveInput,
    StatusInput,
    TickInput,
    decide,
)
from core.models import (
    DEFAULT_NIGHT_WINDOW,
    AlertKind,
    AlertState,
    EventType,
    Mode,
    Resolution,
    SensorStatus,
)
from core.rules import (
    AlertTransitionError,
    AlertView,
    DoorEvent,
    HouseholdState,
    PendingCheck,
    Recipient,
    SensorState,
    StatusChange,
)
from core.rules import CheckKind as CK
from core.timeutil import to_us

T0 = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)  # 14:00 in Seoul: daytime
HH, S1 = "hh-1", "se-1"
CONFIG = EngineConfig(centre_url="https://centre.example/hook")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ids() -> Callable[[str], str]:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}-{next(counter)}"


def household(
    mode: Mode = Mode.DISARMED,
    since_s: float = -3600,
    history: tuple[tuple[float, Mode], ...] = (),
    sensors: dict[str, SensorState] | None = None,
    checks: tuple[PendingCheck, ...] = (),
    alerts: tuple[AlertView, ...] = (),
    webhook: str | None = "https://resident.example/hook",
) -> HouseholdRecord:
    return HouseholdRecord(
        household_id=HH,
        timezone="Asia/Seoul",
        night_window=DEFAULT_NIGHT_WINDOW,
        webhook_url=webhook,
        segment_id="seg-1",
        mode=mode,
        mode_since_us=to_us(at(since_s)),
        mode_history=tuple((to_us(at(s)), m) for s, m in history),
        sensors=sensors if sensors is not None else {S1: SensorState(S1, HH, SensorStatus.ONLINE)},
        checks={c.key: c for c in checks},
        alerts=alerts,
    )


def opened(seconds: float, now_s: float | None = None, tick_first: bool = False) -> EventInput:
    event = DoorEvent(S1, HH, EventType.OPEN, at(seconds))
    return EventInput(event, at(seconds if now_s is None else now_s), tick_first)


def open_alert(
    kind: AlertKind, raised_s: float, state: AlertState = AlertState.OPEN, escalated: bool = False
) -> AlertView:
    t = at(raised_s)
    return AlertView("al-old", kind, state, HH, S1, t, t, t, escalated=escalated)


def run(record: HouseholdRecord | None, inputs: list[Input], known: frozenset[str] = frozenset()
        ) -> Changes:  # fmt: skip
    households = {} if record is None else {HH: record}
    state = EngineState(households, known)
    return decide(state, inputs, CONFIG, at(1000), ids())


@dataclass(frozen=True)
class Case:
    name: str
    record: HouseholdRecord | None
    inputs: list[Input]
    raised: list[AlertKind] = field(default_factory=list)
    folded: int = 0
    escalated: int = 0
    timers_set: list[CK] = field(default_factory=list)
    timers_cleared: int = 0
    silenced: list[str] = field(default_factory=list)
    outbox: list[str] = field(default_factory=list)  # recipients, in order
    known: frozenset[str] = frozenset()


ENTRY = PendingCheck(f"entry_delay:{S1}:{at(0).isoformat()}", CK.ENTRY_DELAY, HH, S1, at(0),
                     at(30))  # fmt: skip
OFFLINE = PendingCheck(f"offline_grace:{S1}", CK.OFFLINE_GRACE, HH, S1, at(0), at(120))
SILENT = {S1: SensorState(S1, HH, SensorStatus.ONLINE, at(-4000), at(-4000))}
DEDUPE_INTRUSION = f"intrusion:{S1}:{at(0).isoformat()}"

CASES = [
    Case("household not loaded: nothing", None, [opened(0), TickInput(at(60))]),
    Case(
        "opened while away: the entry delay and door timers, no alert yet",
        household(Mode.AWAY),
        [opened(0)],
        timers_set=[CK.DOOR_LEFT_OPEN, CK.ENTRY_DELAY],
    ),
    Case(
        "not disarmed within the delay: intrusion to the resident",
        household(Mode.AWAY, checks=(ENTRY,)),
        [TickInput(at(31))],
        raised=[AlertKind.INTRUSION],
        timers_cleared=1,
        outbox=["resident"],
    ),
    Case(
        "a timer not due yet is left alone",
        household(Mode.AWAY, checks=(ENTRY,)),
        [TickInput(at(29))],
    ),
    Case(
        "disarmed within the delay: the timer goes, no alert",
        household(Mode.AWAY, checks=(ENTRY,)),
        [ModeChangeInput(HH, Mode.DISARMED, at(10)), TickInput(at(31))],
        timers_cleared=1,
    ),
    Case(
        "disarm recorded after the opening but before it in time: no entry delay",
        household(Mode.DISARMED, history=((-100, Mode.AWAY), (-5, Mode.DISARMED))),
        [opened(0)],
        timers_set=[CK.DOOR_LEFT_OPEN, CK.ENTRY_DELAY][:1],
    ),
    Case(
        "opened before the first recorded change: judged disarmed",
        household(Mode.AWAY, history=((10, Mode.AWAY),)),
        [opened(0)],
        timers_set=[CK.DOOR_LEFT_OPEN],
    ),
    Case(
        "replay: due timers fire at the event time before the event",
        household(Mode.AWAY, checks=(ENTRY,)),
        [opened(40, tick_first=True)],
        raised=[AlertKind.INTRUSION],
        timers_cleared=1,
        outbox=["resident"],
        timers_set=[CK.DOOR_LEFT_OPEN, CK.ENTRY_DELAY],
    ),
    Case(
        "a dedupe key already stored is not raised again",
        household(Mode.AWAY, checks=(ENTRY,)),
        [TickInput(at(31))],
        timers_cleared=1,
        known=frozenset({DEDUPE_INTRUSION}),
    ),
    Case(
        "a repeat folds into the open alert",
        household(Mode.AWAY, checks=(ENTRY,), alerts=(open_alert(AlertKind.INTRUSION, -60),)),
        [TickInput(at(31))],
        folded=1,
        timers_cleared=1,
    ),
    Case(
        "not acknowledged in time: escalated to the centre",
        household(alerts=(open_alert(AlertKind.TAMPER, -600),)),
        [TickInput(at(0))],
        escalated=1,
        outbox=["centre"],
    ),
    Case(
        "escalated once, even when asked twice",
        household(alerts=(open_alert(AlertKind.TAMPER, 0),)),
        [EscalateInput("al-old", HH, "op", "by op"), EscalateInput("al-old", HH, "op", "again")],
        escalated=1,
        outbox=["centre"],
    ),
    Case(
        "an alert already escalated is not escalated again",
        household(alerts=(open_alert(AlertKind.TAMPER, 0, escalated=True),)),
        [EscalateInput("al-old", HH, "op", "by op")],
    ),
    Case(
        "tamper: resident and centre at once",
        household(),
        [EventInput(DoorEvent(S1, HH, EventType.TAMPER, at(0)), at(0))],
        raised=[AlertKind.TAMPER],
        outbox=["centre", "resident"],
    ),
    Case(
        "silent for 3 heartbeats and the grace: offline, marked silenced",
        household(sensors=SILENT),
        [TickInput(at(0))],
        raised=[AlertKind.SENSOR_OFFLINE],
        silenced=[S1],
        outbox=["centre"],
    ),
    Case(
        "the same silence ticked twice raises once",
        household(sensors=SILENT),
        [TickInput(at(0)), TickInput(at(1))],
        raised=[AlertKind.SENSOR_OFFLINE],
        silenced=[S1],
        outbox=["centre"],
    ),
    Case(
        "Last Will starts the grace timer",
        household(),
        [StatusInput(StatusChange(S1, HH, SensorStatus.OFFLINE, at(0)), at(0))],
        timers_set=[CK.OFFLINE_GRACE],
    ),
    Case(
        "back online within the grace: the timer goes",
        household(
            sensors={S1: SensorState(S1, HH, SensorStatus.OFFLINE, at(0))}, checks=(OFFLINE,)
        ),
        [
            StatusInput(StatusChange(S1, HH, SensorStatus.ONLINE, at(60)), at(60)),
            TickInput(at(200)),
        ],
        timers_cleared=1,
    ),
    Case(
        "battery under the threshold: maintenance to the centre",
        household(),
        [EventInput(DoorEvent(S1, HH, EventType.HEARTBEAT, at(0), battery=10), at(0))],
        raised=[AlertKind.BATTERY_LOW],
        outbox=["centre"],
    ),
    Case(
        "no webhook: the resident's notification has no url but is still an item",
        household(Mode.AWAY, checks=(ENTRY,), webhook=None),
        [TickInput(at(31))],
        raised=[AlertKind.INTRUSION],
        timers_cleared=1,
        outbox=["resident"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide(case: Case) -> None:
    changes = run(case.record, case.inputs, case.known)
    raised = [a for a in changes.alerts if isinstance(a, AlertRaised)]
    assert [a.kind for a in raised] == case.raised
    assert sum(isinstance(a, AlertFolded) for a in changes.alerts) == case.folded
    assert sum(isinstance(a, AlertEscalated) for a in changes.alerts) == case.escalated
    assert sorted(c.kind for c in changes.timers_set) == sorted(case.timers_set)
    assert len(changes.timers_cleared) == case.timers_cleared
    assert list(changes.sensors_silenced) == case.silenced
    assert [o.recipient for o in changes.outbox] == case.outbox
    assert changes.raised == [a.alert_id for a in raised]
    assert changes.raised_dedupe_keys == {a.dedupe_key for a in raised}


def test_raised_alert_carries_what_the_row_needs() -> None:
    changes = run(household(Mode.AWAY, checks=(ENTRY,)), [TickInput(at(31))])
    (alert,) = changes.alerts
    assert isinstance(alert, AlertRaised)
    assert alert.alert_id == "al-1" and alert.household_id == HH and alert.sensor_id == S1
    assert alert.event_at == at(0) and alert.raised_at == at(31)
    assert alert.escalate_at == at(31) + timedelta(minutes=3)
    assert alert.event_offset_min == 540 and alert.segment_id == "seg-1"
    assert alert.dedupe_key == DEDUPE_INTRUSION and alert.recipients == {Recipient.RESIDENT}
    (item,) = changes.outbox
    assert item.notification_id == "al-1.alert.raised.resident"
    assert item.url == "https://resident.example/hook"
    assert '"event_ts":"2026-11-21T14:00:00.000+09:00"' in item.body  # the household's zone
    assert '"created_at":"2026-11-21T05:16:40.000Z"' in item.body  # recorded_at


def test_door_state_follows_the_events_and_is_written_once_per_sensor() -> None:
    closed = EventInput(DoorEvent(S1, HH, EventType.CLOSE, at(5)), at(5))
    changes = run(household(), [opened(0), closed])
    (door,) = changes.sensor_doors
    assert door.sensor_id == S1 and door.door_open_since is None and door.door_changed_at == at(5)
    assert changes.timers_cleared == (f"door_left_open:{S1}",)  # set then cleared: one DELETE
    assert changes.timers_set == ()


def test_learning_creates_the_routine_model() -> None:
    changes = run(household(), [opened(0)])
    (routine,) = changes.routines
    assert routine.household_id == HH and routine.model.last_learned_at is not None


@pytest.mark.parametrize(
    ("state", "make", "to_state"),
    [
        (AlertState.OPEN, lambda v: AcknowledgeInput(v, "op", at(0)), AlertState.ACKNOWLEDGED),
        (AlertState.OPEN, lambda v: ResolveInput(v, Resolution.CONFIRMED, "op", at(0),
                                                 HouseholdState(HH)), AlertState.RESOLVED),
        (AlertState.ACKNOWLEDGED, lambda v: ResolveInput(v, Resolution.FALSE_ALARM, "op", at(0),
                                                         HouseholdState(HH)), AlertState.RESOLVED),
    ],
)  # fmt: skip
def test_answers(state: AlertState, make: Callable[[AlertView], Input], to_state: AlertState
                 ) -> None:  # fmt: skip
    view = open_alert(AlertKind.TAMPER, 0, state=state)
    changes = run(household(alerts=(view,)), [make(view)])
    assert changes.alerts == (AlertAnswered("al-old", state, to_state, "op",
                                            getattr(make(view), "resolution", None)),)  # fmt: skip


def test_an_answer_the_state_does_not_allow_raises() -> None:
    view = open_alert(AlertKind.TAMPER, 0, state=AlertState.RESOLVED)
    with pytest.raises(AlertTransitionError):
        run(household(), [AcknowledgeInput(view, "op", at(0))])


def test_resolving_a_night_opening_corrects_the_routine() -> None:
    view = open_alert(AlertKind.NIGHT_OPENING, 0)
    resolve = ResolveInput(view, Resolution.FALSE_ALARM, "resident", at(10), HouseholdState(HH))
    changes = run(household(alerts=(view,)), [resolve])
    assert [r.household_id for r in changes.routines] == [HH]


def test_the_state_passed_in_is_not_changed() -> None:
    record = household(Mode.AWAY, checks=(ENTRY,))
    state = EngineState({HH: record})
    decide(state, [TickInput(at(31)), opened(40)], CONFIG, at(1000), ids())
    assert state.households[HH] is record
    assert list(record.checks) == [ENTRY.key] and record.alerts == () and record.routine is None
    assert record.sensors[S1].door_open_since is None


def test_the_engine_does_no_io() -> None:
    """core/engine.py imports neither a driver, a network library nor a clock."""
    import ast
    from pathlib import Path

    import core.engine

    tree = ast.parse(Path(core.engine.__file__).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    banned = {"aiosqlite", "sqlite3", "psycopg", "asyncpg", "paho", "httpx", "fastapi",
              "asyncio", "socket", "time", "os", "core.storage", "core.broker"}  # fmt: skip
    assert not {n for n in names if any(n == b or n.startswith(b + ".") for b in banned)}
    assert "datetime.now" not in Path(core.engine.__file__).read_text()
