"""Storage of the alert engine's state: `load` what the pure engine (`core.engine`) needs
for some households, `save` the `Changes` it returns — alerts, their transitions, timers,
routine models, sensors' door state and the notification outbox — inside the caller's
transaction, so an alert and its notifications commit with the event that raised them.

    state   = await load(conn, household_ids)
    changes = await decide_stored(conn, state, inputs, config, recorded_at)
    await save(conn, changes)

or all three at once: `evaluate(conn, household_ids, inputs, config, recorded_at)` (the
API and the scheduler). The bridge runs the steps itself, between inserting a batch's
events and updating its sensors (broker_bridge/bridge.py `_commit`).

This is the only module that reads or writes the engine's tables for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.engine import (
    AlertAnswered,
    AlertEscalated,
    AlertFolded,
    AlertHelpAsked,
    AlertRaised,
    Changes,
    EngineConfig,
    EngineState,
    HouseholdRecord,
    Input,
    decide,
)
from core.models import AlertKind, AlertState, Mode, NightWindow, Resolution, SensorStatus
from core.routine import RoutineModel
from core.rules import AlertPolicy, AlertView, PendingCheck, Recipient, SensorState
from core.settings import Settings
from core.storage import alerts as alert_rows
from core.storage.outbox import enqueue
from core.storage.port import Conn
from core.timeutil import from_us, to_us

MODE_HISTORY_KEEP = 64
_CHUNK = 500  # households per IN (...) list


def build_policy(settings: Settings) -> AlertPolicy:
    """The rules' delays and limits from the `ANSIM_` settings (SPEC's defaults)."""
    return AlertPolicy(
        entry_delay=timedelta(seconds=settings.entry_delay_s),
        exit_delay=timedelta(seconds=settings.exit_delay_s),
        door_left_open_after=timedelta(seconds=settings.door_left_open_s),
        escalation_delay=timedelta(seconds=settings.escalation_delay_s),
        battery_threshold=settings.battery_low_pct,
        heartbeat_interval=timedelta(seconds=settings.heartbeat_interval_s),
        offline_grace=timedelta(seconds=settings.offline_grace_s),
        door_bounce=timedelta(milliseconds=settings.door_bounce_ms),
    )


def build_config(settings: Settings) -> EngineConfig:
    return EngineConfig(policy=build_policy(settings), centre_url=settings.centre_webhook_url)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


def _us(at: datetime | None) -> int | None:
    return None if at is None else to_us(at)


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
        help_requested=r.help_us is not None,
    )


# ---------------------------------------------------------------------------- load


async def load(conn: Conn, household_ids: Iterable[str]) -> EngineState:
    """The engine state of the enrolled households among `household_ids` (in that order).

    Called inside the write transaction that will `save` the changes. On PostgreSQL the
    households' rows are locked first (`FOR UPDATE`, in id order so two writers never
    wait on each other in a circle): another writer deciding for one of them waits for
    this COMMIT and then loads what it saved; other households are not held up. SQLite's
    BEGIN IMMEDIATE holds the database's one write lock already."""
    ids = list(dict.fromkeys(household_ids))
    households: dict[str, HouseholdRecord] = {}
    lock = conn.dialect.lock_rows()
    if lock:
        ordered = sorted(ids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            await conn.execute(
                "SELECT household_id FROM households WHERE household_id IN"
                f" ({','.join('?' * len(chunk))}) ORDER BY household_id{lock}",
                chunk,
            )
    for start in range(0, len(ids), _CHUNK):
        households |= await _load_chunk(conn, ids[start : start + _CHUNK])
    return EngineState({h: households[h] for h in ids if h in households})


async def _load_chunk(conn: Conn, ids: list[str]) -> dict[str, HouseholdRecord]:
    marks = ",".join("?" * len(ids))
    rows: dict[str, Any] = {}
    async with conn.execute(
        "SELECT household_id, timezone, night_window, webhook_url, segment_id, mode,"
        f" mode_since_us, exit_delay_s FROM households WHERE household_id IN ({marks})"
        " AND unenrolled_us IS NULL",
        ids,
    ) as cur:
        for r in await cur.fetchall():
            rows[r[0]] = r
    history: dict[str, list[tuple[int, Mode]]] = {h: [] for h in rows}
    async with conn.execute(
        "SELECT household_id, mode, at_us FROM (SELECT household_id, mode, at_us,"
        " mode_change_id, ROW_NUMBER() OVER (PARTITION BY household_id"
        " ORDER BY at_us DESC, mode_change_id DESC) AS rn FROM mode_changes"
        f" WHERE household_id IN ({marks})) AS recent WHERE rn <= {MODE_HISTORY_KEEP}"
        " ORDER BY household_id, at_us, mode_change_id",
        ids,
    ) as cur:
        for hid, mode, at_us in await cur.fetchall():
            if hid in history:
                history[hid].append((at_us, Mode(mode)))
    sensors: dict[str, dict[str, SensorState]] = {h: {} for h in rows}
    async with conn.execute(
        "SELECT sensor_id, household_id, status, status_us, last_seen_us, battery,"
        " door_open_since_us, door_changed_us FROM sensors"
        f" WHERE household_id IN ({marks}) AND retired_us IS NULL",
        ids,
    ) as cur:
        for r in await cur.fetchall():
            if r[1] in sensors:
                sensors[r[1]][r[0]] = SensorState(
                    sensor_id=r[0],
                    household_id=r[1],
                    status=SensorStatus(r[2]),
                    status_at=_dt(r[3]),
                    last_seen_at=_dt(r[4]),
                    battery=r[5],
                    door_open_since=_dt(r[6]),
                    door_changed_at=_dt(r[7]),
                )
    checks: dict[str, dict[str, PendingCheck]] = {h: {} for h in rows}
    async with conn.execute(
        "SELECT key, kind, household_id, sensor_id, event_us, due_us FROM timers"
        f" WHERE household_id IN ({marks})",
        ids,
    ) as cur:
        for key, kind, hid, sid, ev_us, due_us in await cur.fetchall():
            if hid in checks:
                checks[hid][key] = PendingCheck.from_dict(
                    {"key": key, "kind": kind, "household_id": hid, "sensor_id": sid,
                     "event_at": from_us(ev_us).isoformat(),
                     "due_at": from_us(due_us).isoformat()}
                )  # fmt: skip
    alerts: dict[str, list[AlertView]] = {h: [] for h in rows}
    for row in await alert_rows.open_alerts_for(conn, ids):
        if row.household_id in alerts:
            alerts[row.household_id].append(alert_view(row))
    routines: dict[str, RoutineModel] = {}
    async with conn.execute(
        f"SELECT household_id, model FROM routines WHERE household_id IN ({marks})", ids
    ) as cur:
        for hid, model in await cur.fetchall():
            routines[hid] = RoutineModel.from_dict(json.loads(model))
    out: dict[str, HouseholdRecord] = {}
    for hid, r in rows.items():
        out[hid] = HouseholdRecord(
            household_id=hid,
            timezone=str(r[1]),
            night_window=NightWindow.parse(str(r[2])),
            webhook_url=None if r[3] is None else str(r[3]),
            segment_id=None if r[4] is None else str(r[4]),
            mode=Mode(r[5]),
            mode_since_us=int(r[6]),
            mode_history=tuple(history[hid]),
            sensors=sensors[hid],
            checks=checks[hid],
            alerts=tuple(alerts[hid]),
            routine=routines.get(hid),
            exit_delay=None if r[7] is None else timedelta(seconds=int(r[7])),
        )
    return out


async def stored_dedupe_keys(conn: Conn, keys: Iterable[str]) -> set[str]:
    """Which of `keys` an alert (in any state) already holds."""
    wanted = list(keys)
    found: set[str] = set()
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        marks = ",".join("?" * len(chunk))
        async with conn.execute(
            f"SELECT dedupe_key FROM alerts WHERE dedupe_key IN ({marks})", chunk
        ) as cur:
            found |= {r[0] for r in await cur.fetchall()}
    return found


async def decide_stored(
    conn: Conn,
    state: EngineState,
    inputs: Sequence[Input],
    config: EngineConfig,
    recorded_at: datetime,
) -> Changes:
    """`decide`, knowing which of the alerts it raises are stored already: the keys it
    wants are looked up and, when some exist, it runs again with them known (rare: the
    keys are per sensor and event time). Reads only."""
    asked: set[str] = set()
    while True:
        changes = decide(state, inputs, config, recorded_at)
        new = changes.raised_dedupe_keys - asked
        if not new:
            return changes
        asked |= new
        stored = await stored_dedupe_keys(conn, new)
        if not stored:
            return changes
        state = state.with_known(stored)


# ---------------------------------------------------------------------------- save


async def save(conn: Conn, changes: Changes) -> list[str]:
    """Write `changes`, a few statements for the whole batch (each awaited statement is a
    round trip to the database thread). Returns the ids of the alerts inserted."""
    now = to_us(changes.recorded_at)
    inserted: list[str] = []
    skipped: set[str] = set()
    for a in changes.alerts:
        if isinstance(a, AlertRaised):
            ok = await alert_rows.insert_alert(
                conn,
                alert_id=a.alert_id,
                household_id=a.household_id,
                sensor_id=a.sensor_id or None,  # help, duress: no sensor
                kind=str(a.kind),
                event_us=to_us(a.event_at),
                event_offset_min=a.event_offset_min,
                reason=a.reason,
                detail=a.detail,
                now_us=now,
                raised_us=to_us(a.raised_at),
                escalate_due_us=_us(a.escalate_at),
                recipients=",".join(sorted(str(r) for r in a.recipients)),
                dedupe_key=a.dedupe_key,
                score=a.score,
                segment_id=a.segment_id,
            )
            # the state said the key was free; a writer that did not load it may have won
            (inserted.append if ok else skipped.add)(a.alert_id)
        elif isinstance(a, AlertFolded):
            await alert_rows.fold_into(conn, a.alert_id, to_us(a.event_at), now)
        elif isinstance(a, AlertEscalated):
            await alert_rows.set_alert_state(
                conn, a.alert_id, str(a.state), to_state=str(a.state), action="escalate",
                actor=a.actor, now_us=now,
            )  # fmt: skip
        elif isinstance(a, AlertHelpAsked):
            await alert_rows.set_alert_state(
                conn, a.alert_id, str(a.state), to_state=str(a.state), action="help",
                actor=a.actor, now_us=now,
            )  # fmt: skip
        elif isinstance(a, AlertAnswered):
            await alert_rows.set_alert_state(
                conn, a.alert_id, str(a.from_state), to_state=str(a.to_state),
                action="acknowledge" if a.resolution is None else "resolve", actor=a.actor,
                now_us=now, resolution=None if a.resolution is None else str(a.resolution),
            )  # fmt: skip
    for item in changes.outbox:
        if item.alert_id in skipped:
            continue
        await enqueue(
            conn,
            notification_id=item.notification_id,
            alert_id=item.alert_id,
            recipient=item.recipient,
            household_id=item.household_id,
            url=item.url,
            body=item.body,
            now_us=now,
        )
    if changes.sensor_doors:
        await conn.executemany(
            "UPDATE sensors SET door_open_since_us = ?, door_changed_us = ? WHERE sensor_id = ?",
            [(_us(d.door_open_since), _us(d.door_changed_at), d.sensor_id)
             for d in changes.sensor_doors],
        )  # fmt: skip
    if changes.sensors_silenced:
        await conn.executemany(
            "UPDATE sensors SET status = 'offline', status_reason = 'heartbeat_missed',"
            " status_us = ? WHERE sensor_id = ? AND status != 'retired'",
            [(now, sid) for sid in changes.sensors_silenced],
        )
    if changes.timers_cleared:
        await conn.executemany(
            "DELETE FROM timers WHERE key = ?", [(k,) for k in changes.timers_cleared]
        )
    if changes.timers_set:
        await conn.executemany(
            "INSERT INTO timers (key, household_id, sensor_id, kind, event_us, due_us,"
            " created_us) VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET"
            " kind = excluded.kind, event_us = excluded.event_us, due_us = excluded.due_us",
            [(c.key, c.household_id, c.sensor_id, str(c.kind), to_us(c.event_at),
              to_us(c.due_at), now) for c in changes.timers_set],
        )  # fmt: skip
    if changes.routines:
        await conn.executemany(
            "INSERT INTO routines (household_id, model, updated_us) VALUES (?,?,?)"
            " ON CONFLICT (household_id) DO UPDATE SET model = excluded.model,"
            " updated_us = excluded.updated_us",
            [(r.household_id, json.dumps(r.model.to_dict()), now) for r in changes.routines],
        )
    return inserted


@dataclass(frozen=True, slots=True)
class Evaluated:
    state: EngineState  # as loaded
    changes: Changes
    raised: list[str]  # the alerts inserted


async def evaluate(
    conn: Conn,
    household_ids: Iterable[str],
    inputs: Sequence[Input],
    config: EngineConfig,
    recorded_at: datetime,
) -> Evaluated:
    """load → decide → save in the caller's transaction."""
    state = await load(conn, household_ids)
    changes = await decide_stored(conn, state, inputs, config, recorded_at)
    return Evaluated(state, changes, await save(conn, changes))


# ---------------------------------------------------------------------------- what is due


async def households_due(
    conn: Conn, now_us: int, silent_before_us: int, limit: int = 2000
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


async def read_event_clock(conn: Conn) -> int | None:
    async with conn.execute("SELECT now_us FROM event_clock WHERE id = 1") as cur:
        row = await cur.fetchone()
    return None if row is None else int(row[0])


async def advance_event_clock(conn: Conn, now_us: int) -> None:
    await conn.execute(
        "INSERT INTO event_clock (id, now_us) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET now_us ="
        f" {conn.dialect.greatest('event_clock.now_us', 'excluded.now_us')}",
        (now_us,),
    )
