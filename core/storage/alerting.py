"""Carry out the alert rules: load what the pure rules in `core.rules` need, hand them each
event / status / tick / mode change / answer, and write what they decide — alerts, their
transitions, timers, routine models and the notification outbox — inside the caller's
transaction, so an alert and its notifications commit with the event that raised them.

The household's mode is taken *as of the event time* from its mode history, so a resident
who disarms a few seconds after opening the door is judged the same whether the bridge
sees the opening before or after the API records the disarm (and replays match live runs).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiosqlite

from core.credentials import new_id
from core.models import (
    AlertKind,
    AlertState,
    Mode,
    NightWindow,
    Resolution,
    SensorStatus,
)
from core.notify import AlertFacts, build_notifications
from core.routine import RoutineModel
from core.rules import (
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
    apply_event_to_sensor,
    apply_learning,
    apply_status_to_sensor,
    evaluate_due,
    evaluate_event,
    evaluate_mode_change,
    evaluate_status,
)
from core.settings import Settings
from core.storage import alerts as alert_rows
from core.storage.outbox import enqueue
from core.timeutil import from_us, offset_minutes, rfc3339, to_us

MODE_HISTORY_KEEP = 64


def build_policy(settings: Settings) -> AlertPolicy:
    """The rules' delays and limits from the `ANSIM_` settings (SPEC's defaults)."""
    return AlertPolicy(
        entry_delay=timedelta(seconds=settings.entry_delay_s),
        door_left_open_after=timedelta(seconds=settings.door_left_open_s),
        escalation_delay=timedelta(seconds=settings.escalation_delay_s),
        battery_threshold=settings.battery_low_pct,
        heartbeat_interval=timedelta(seconds=settings.heartbeat_interval_s),
        offline_grace=timedelta(seconds=settings.offline_grace_s),
    )


def _dt(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


@dataclass(slots=True)
class HouseholdCtx:
    household_id: str
    timezone: str
    night_window: NightWindow
    webhook_url: str | None
    segment_id: str | None
    mode: Mode
    mode_since_us: int
    mode_times: list[int] = field(default_factory=list)  # ascending at_us
    mode_values: list[Mode] = field(default_factory=list)
    sensors: dict[str, SensorState] = field(default_factory=dict)
    sensors_dirty: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    checks: dict[str, PendingCheck] = field(default_factory=dict)
    checks_dirty: set[str] = field(default_factory=set)
    alerts: list[AlertView] = field(default_factory=list)
    routine: RoutineModel | None = None
    routine_dirty: bool = False

    def state_at(self, at: datetime) -> HouseholdState:
        """The household as of `at`: the last mode change at or before it."""
        at_us = to_us(at)
        i = bisect_right(self.mode_times, at_us)
        if i > 0:
            mode, since = self.mode_values[i - 1], self.mode_times[i - 1]
        elif self.mode_times:  # before every recorded change: the household was disarmed
            mode, since = Mode.DISARMED, None
        else:
            mode, since = self.mode, self.mode_since_us
        return HouseholdState(
            household_id=self.household_id,
            mode=mode,
            mode_since=_dt(since),
            timezone=self.timezone,
            night_window=self.night_window,
        )

    def routine_for(self, at: datetime) -> RoutineModel:
        if self.routine is None:
            self.routine = RoutineModel.empty(started_at=at)
            self.routine_dirty = True
        return self.routine


def alert_view(r: alert_rows.AlertRow) -> AlertView:
    recipients = frozenset(Recipient(x) for x in r.recipients.split(",") if x)
    return AlertView(
        alert_id=r.alert_id,
        kind=AlertKind(r.kind),
        state=AlertState(r.state),
        household_id=r.household_id,
        sensor_id=r.sensor_id or "",
        event_at=from_us(r.event_us),
        raised_at=from_us(r.raised_us),
        last_event_at=from_us(r.last_event_us),
        recipients=recipients,
        escalated=r.escalated_us is not None,
        resolution=Resolution(r.resolution) if r.resolution else None,
    )


class AlertEngine:
    """One engine per transaction: load(), then on_* calls, then flush()."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        policy: AlertPolicy,
        centre_url: str | None,
        wall_now_us: int,
    ) -> None:
        self.conn = conn
        self.policy = policy
        self.centre_url = centre_url
        self.wall_now_us = wall_now_us
        self.ctx: dict[str, HouseholdCtx] = {}
        self.raised: list[str] = []

    # loading ----------------------------------------------------------------------
    async def load(self, household_ids: set[str] | list[str]) -> None:
        ids = [h for h in household_ids if h not in self.ctx]
        for start in range(0, len(ids), 500):
            await self._load_chunk(ids[start : start + 500])

    async def _load_chunk(self, ids: list[str]) -> None:
        marks = ",".join("?" * len(ids))
        async with self.conn.execute(
            "SELECT household_id, timezone, night_window, webhook_url, segment_id, mode,"
            f" mode_since_us FROM households WHERE household_id IN ({marks})"
            " AND unenrolled_us IS NULL",
            ids,
        ) as cur:
            for r in await cur.fetchall():
                self.ctx[r[0]] = HouseholdCtx(
                    household_id=r[0],
                    timezone=r[1],
                    night_window=NightWindow.parse(r[2]),
                    webhook_url=r[3],
                    segment_id=r[4],
                    mode=Mode(r[5]),
                    mode_since_us=r[6],
                )
        async with self.conn.execute(
            "SELECT household_id, mode, at_us FROM (SELECT household_id, mode, at_us,"
            " mode_change_id, ROW_NUMBER() OVER (PARTITION BY household_id"
            " ORDER BY at_us DESC, mode_change_id DESC) AS rn FROM mode_changes"
            f" WHERE household_id IN ({marks})) WHERE rn <= {MODE_HISTORY_KEEP}"
            " ORDER BY household_id, at_us, mode_change_id",
            ids,
        ) as cur:
            for hid, mode, at_us in await cur.fetchall():
                c = self.ctx.get(hid)
                if c is not None:
                    c.mode_times.append(at_us)
                    c.mode_values.append(Mode(mode))
        async with self.conn.execute(
            "SELECT sensor_id, household_id, status, status_us, last_seen_us, battery,"
            " door_open_since_us, door_changed_us FROM sensors"
            f" WHERE household_id IN ({marks}) AND retired_us IS NULL",
            ids,
        ) as cur:
            for r in await cur.fetchall():
                c = self.ctx.get(r[1])
                if c is None:
                    continue
                c.sensors[r[0]] = SensorState(
                    sensor_id=r[0],
                    household_id=r[1],
                    status=SensorStatus(r[2]),
                    status_at=_dt(r[3]),
                    last_seen_at=_dt(r[4]),
                    battery=r[5],
                    door_open_since=_dt(r[6]),
                    door_changed_at=_dt(r[7]),
                )
        async with self.conn.execute(
            "SELECT key, kind, household_id, sensor_id, event_us, due_us FROM timers"
            f" WHERE household_id IN ({marks})",
            ids,
        ) as cur:
            for key, kind, hid, sid, ev_us, due_us in await cur.fetchall():
                c = self.ctx.get(hid)
                if c is not None:
                    c.checks[key] = PendingCheck.from_dict(
                        {"key": key, "kind": kind, "household_id": hid, "sensor_id": sid,
                         "event_at": from_us(ev_us).isoformat(),
                         "due_at": from_us(due_us).isoformat()}
                    )  # fmt: skip
        for row in await alert_rows.open_alerts_for(self.conn, ids):
            c = self.ctx.get(row.household_id)
            if c is not None:
                c.alerts.append(alert_view(row))
        async with self.conn.execute(
            f"SELECT household_id, model FROM routines WHERE household_id IN ({marks})", ids
        ) as cur:
            for hid, model in await cur.fetchall():
                c = self.ctx.get(hid)
                if c is not None:
                    c.routine = RoutineModel.from_dict(json.loads(model))

    # inputs -------------------------------------------------------------------------
    async def on_event(self, event: DoorEvent, now: datetime, replay: bool) -> None:
        c = self.ctx.get(event.household_id)
        if c is None:
            return
        if replay:  # timers follow the event clock
            await self.on_tick(c, event.event_at)
        sensor = c.sensors.get(event.sensor_id) or SensorState(event.sensor_id, event.household_id)
        household = c.state_at(event.event_at)
        decisions = evaluate_event(
            event, household, sensor, c.alerts, c.routine_for(event.event_at), now, self.policy
        )
        c.sensors[event.sensor_id] = apply_event_to_sensor(sensor, event)
        c.sensors_dirty.add(event.sensor_id)
        await self.apply(c, decisions, now)

    async def on_status(self, change: StatusChange, now: datetime) -> None:
        c = self.ctx.get(change.household_id)
        if c is None:
            return
        sensor = c.sensors.get(change.sensor_id) or SensorState(
            change.sensor_id, change.household_id
        )
        decisions = evaluate_status(change, sensor, self.policy)
        c.sensors[change.sensor_id] = apply_status_to_sensor(sensor, change)
        await self.apply(c, decisions, now)

    async def on_tick(self, c: HouseholdCtx, now: datetime) -> None:
        decisions = evaluate_due(
            now, c.state_at(now), list(c.checks.values()), c.sensors, c.alerts, self.policy
        )
        await self.apply(c, decisions, now)

    async def tick_all(self, now: datetime) -> None:
        for c in list(self.ctx.values()):
            await self.on_tick(c, now)

    async def on_mode_change(self, household_id: str, mode: Mode, at: datetime) -> None:
        c = self.ctx.get(household_id)
        if c is None:
            return
        c.mode_times.append(to_us(at))
        c.mode_values.append(mode)
        order = sorted(range(len(c.mode_times)), key=lambda i: c.mode_times[i])
        c.mode_times = [c.mode_times[i] for i in order]
        c.mode_values = [c.mode_values[i] for i in order]
        decisions = evaluate_mode_change(c.state_at(at), mode, at, list(c.checks.values()))
        await self.apply(c, decisions, at)

    # decisions ----------------------------------------------------------------------
    async def apply(self, c: HouseholdCtx, decisions: list[Decision], now: datetime) -> None:
        for d in decisions:
            if isinstance(d, RaiseAlert):
                await self._raise(c, d)
            elif isinstance(d, FoldIntoAlert):
                await alert_rows.fold_into(
                    self.conn, d.alert_id, to_us(d.event_at), self.wall_now_us
                )
                c.alerts = [
                    replace(a, last_event_at=max(a.last_event_at or a.event_at, d.event_at))
                    if a.alert_id == d.alert_id
                    else a
                    for a in c.alerts
                ]
            elif isinstance(d, EscalateAlert):
                await self.escalate(c, d.alert_id, "rules", d.reason)
            elif isinstance(d, ScheduleCheck):
                c.checks[d.check.key] = d.check
                c.checks_dirty.add(d.check.key)
            elif isinstance(d, ClearCheck):
                if c.checks.pop(d.key, None) is not None or d.key in c.checks_dirty:
                    c.checks_dirty.add(d.key)
            elif isinstance(d, LearnOpening):
                c.routine = apply_learning(c.routine_for(d.opened_at), d, self.policy)
                c.routine_dirty = True

    def _facts(self, c: HouseholdCtx, alert_id: str, kind: str, state: str, sensor_id: str,
               event_at: datetime, reason: str, escalated: bool = False) -> AlertFacts:  # fmt: skip
        return AlertFacts(
            alert_id=alert_id,
            kind=kind,
            state=state,
            household_id=c.household_id,
            sensor_id=sensor_id or None,
            event_ts=rfc3339(event_at.astimezone(ZoneInfo(c.timezone))),
            reason=reason,
            escalated=escalated,
        )

    async def _raise(self, c: HouseholdCtx, d: RaiseAlert) -> None:
        alert_id = new_id("al")
        local = d.event_at.astimezone(ZoneInfo(c.timezone))
        inserted = await alert_rows.insert_alert(
            self.conn,
            alert_id=alert_id,
            household_id=c.household_id,
            sensor_id=d.sensor_id,
            kind=str(d.kind),
            event_us=to_us(d.event_at),
            event_offset_min=offset_minutes(local),
            reason=d.reason,
            detail={"score": d.score} if d.score is not None else {},
            now_us=self.wall_now_us,
            raised_us=to_us(d.raised_at),
            escalate_due_us=None if d.escalate_at is None else to_us(d.escalate_at),
            recipients=",".join(sorted(str(r) for r in d.recipients)),
            dedupe_key=d.dedupe_key,
            score=d.score,
            segment_id=c.segment_id,
        )
        if not inserted:
            return
        self.raised.append(alert_id)
        c.alerts.append(
            AlertView(alert_id, d.kind, AlertState.OPEN, c.household_id, d.sensor_id, d.event_at,
                      d.raised_at, d.event_at, d.recipients)
        )  # fmt: skip
        if d.kind is AlertKind.SENSOR_OFFLINE:
            sensor = c.sensors.get(d.sensor_id)
            if sensor is not None and sensor.status is not SensorStatus.OFFLINE:
                # silence, not a Last Will: the sensor is offline from now on
                c.sensors[d.sensor_id] = replace(sensor, status=SensorStatus.OFFLINE,
                                                 status_at=d.raised_at)  # fmt: skip
                c.silent.add(d.sensor_id)
        facts = self._facts(c, alert_id, str(d.kind), "open", d.sensor_id, d.event_at, d.reason)
        await self._notify(c, facts, "alert.raised", {str(r) for r in d.recipients})

    async def escalate(self, c: HouseholdCtx, alert_id: str, actor: str, reason: str) -> bool:
        view = next((a for a in c.alerts if a.alert_id == alert_id), None)
        row = await alert_rows.get_alert(self.conn, alert_id)
        if row is None or row.escalated_us is not None or row.state == "resolved":
            return False
        await alert_rows.set_state(
            self.conn, row, to_state=row.state, action="escalate", actor=actor,
            now_us=self.wall_now_us,
        )  # fmt: skip
        if view is not None:
            c.alerts = [
                replace(a, escalated=True, recipients=a.recipients | {Recipient.CENTRE})
                if a.alert_id == alert_id
                else a
                for a in c.alerts
            ]
        facts = self._facts(
            c, alert_id, row.kind, row.state, row.sensor_id or "", from_us(row.event_us), reason,
            escalated=True,
        )  # fmt: skip
        await self._notify(c, facts, "alert.escalated", {"centre"})
        return True

    async def _notify(self, c: HouseholdCtx, facts: AlertFacts, what: str, to: set[str]) -> None:
        created = rfc3339(from_us(self.wall_now_us))
        for item in build_notifications(facts, what, to, c.webhook_url, self.centre_url, created):
            await enqueue(
                self.conn,
                notification_id=item.notification_id,
                alert_id=facts.alert_id,
                recipient=item.recipient,
                household_id=c.household_id,
                url=item.url,
                body=item.body,
                now_us=self.wall_now_us,
            )

    # writing back -------------------------------------------------------------------
    async def flush(self) -> None:
        """Write back what changed, a few `executemany` calls for the whole batch (each
        awaited statement is a round trip to the database thread)."""
        doors: list[tuple[int | None, int | None, str]] = []
        silent: list[tuple[int, str]] = []
        deleted: list[tuple[str]] = []
        upserts: list[tuple[str, str, str, str, int, int, int]] = []
        routines: list[tuple[str, str, int]] = []
        for c in self.ctx.values():
            for sid in c.sensors_dirty | c.silent:
                sensor = c.sensors.get(sid)
                if sensor is not None:
                    doors.append(
                        (None if sensor.door_open_since is None else to_us(sensor.door_open_since),
                         None if sensor.door_changed_at is None else to_us(sensor.door_changed_at),
                         sid)
                    )  # fmt: skip
            silent += [(self.wall_now_us, sid) for sid in c.silent]
            for key in c.checks_dirty:
                check = c.checks.get(key)
                if check is None:
                    deleted.append((key,))
                else:
                    upserts.append(
                        (key, check.household_id, check.sensor_id, str(check.kind),
                         to_us(check.event_at), to_us(check.due_at), self.wall_now_us)
                    )  # fmt: skip
            if c.routine_dirty and c.routine is not None:
                routines.append((c.household_id, json.dumps(c.routine.to_dict()), self.wall_now_us))
            c.sensors_dirty.clear()
            c.silent.clear()
            c.checks_dirty.clear()
            c.routine_dirty = False
        if doors:
            await self.conn.executemany(
                "UPDATE sensors SET door_open_since_us = ?, door_changed_us = ?"
                " WHERE sensor_id = ?",
                doors,
            )
        if silent:
            await self.conn.executemany(
                "UPDATE sensors SET status = 'offline', status_reason = 'heartbeat_missed',"
                " status_us = ? WHERE sensor_id = ? AND status != 'retired'",
                silent,
            )
        if deleted:
            await self.conn.executemany("DELETE FROM timers WHERE key = ?", deleted)
        if upserts:
            await self.conn.executemany(
                "INSERT INTO timers (key, household_id, sensor_id, kind, event_us, due_us,"
                " created_us) VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET"
                " kind = excluded.kind, event_us = excluded.event_us, due_us = excluded.due_us",
                upserts,
            )
        if routines:
            await self.conn.executemany(
                "INSERT INTO routines (household_id, model, updated_us) VALUES (?,?,?)"
                " ON CONFLICT (household_id) DO UPDATE SET model = excluded.model,"
                " updated_us = excluded.updated_us",
                routines,
            )


async def households_due(
    conn: aiosqlite.Connection, now_us: int, silent_before_us: int, limit: int = 2000
) -> list[str]:
    """Households with a timer due, an escalation due, or a sensor gone silent."""
    async with conn.execute(
        "SELECT household_id FROM timers WHERE due_us <= ?"
        " UNION SELECT household_id FROM alerts WHERE state = 'open' AND escalated_us IS NULL"
        " AND escalate_due_us <= ?"
        " UNION SELECT household_id FROM sensors WHERE retired_us IS NULL"
        " AND status NOT IN ('offline', 'retired') AND last_seen_us < ? LIMIT ?",
        (now_us, now_us, silent_before_us, limit),
    ) as cur:
        return [r[0] for r in await cur.fetchall()]


async def read_event_clock(conn: aiosqlite.Connection) -> int | None:
    async with conn.execute("SELECT now_us FROM event_clock WHERE id = 1") as cur:
        row = await cur.fetchone()
    return None if row is None else int(row[0])


async def advance_event_clock(conn: aiosqlite.Connection, now_us: int) -> None:
    await conn.execute(
        "INSERT INTO event_clock (id, now_us) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET now_us = MAX(now_us, excluded.now_us)",
        (now_us,),
    )
