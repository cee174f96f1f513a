"""Read queries for the web console: the fleet table and the audit log, both filterable
and paged by a keyset cursor (no OFFSET)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.storage.port import Conn


@dataclass(frozen=True, slots=True)
class FleetFilter:
    """What the operator asked for; `None` means "any"."""

    status: str | None = None  # online, offline, unknown, retired
    low_battery_below: int | None = None  # battery strictly under this percent
    tamper: bool | None = None  # a tamper event was ever seen
    clock_skewed: bool | None = None
    household_id: str | None = None
    include_retired: bool = False


@dataclass(frozen=True, slots=True)
class FleetRow:
    sensor_pk: int
    sensor_id: str
    household_id: str
    household_name: str | None
    status: str
    status_reason: str | None
    status_us: int | None
    last_seen_us: int | None
    battery: int | None
    rssi: int | None
    clock_skew_s: float | None
    clock_skewed: bool
    last_tamper_us: int | None
    retired_us: int | None
    timezone: str | None


def _fleet_where(f: FleetFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if not f.include_retired and f.status != "retired":
        clauses.append("s.retired_us IS NULL")
    if f.status is not None:
        clauses.append("s.status = ?")
        params.append(f.status)
    if f.low_battery_below is not None:
        clauses.append("s.battery IS NOT NULL AND s.battery < ?")
        params.append(f.low_battery_below)
    if f.tamper is not None:
        clauses.append("s.last_tamper_us IS NOT NULL" if f.tamper else "s.last_tamper_us IS NULL")
    if f.clock_skewed is not None:
        clauses.append("s.clock_skewed = ?")
        params.append(1 if f.clock_skewed else 0)
    if f.household_id is not None:
        clauses.append("s.household_id = ?")
        params.append(f.household_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


async def list_fleet(
    conn: Conn, flt: FleetFilter, limit: int, after_pk: int | None = None
) -> list[FleetRow]:
    """Sensors in provisioning order (`sensor_pk`), continuing after `after_pk`."""
    where, params = _fleet_where(flt)
    if after_pk is not None:
        where += (" AND " if where else " WHERE ") + "s.sensor_pk > ?"
        params.append(after_pk)
    sql = (
        "SELECT s.sensor_pk, s.sensor_id, s.household_id, h.name, s.status, s.status_reason,"
        " s.status_us, s.last_seen_us, s.battery, s.rssi, s.clock_skew_s, s.clock_skewed,"
        " s.last_tamper_us, s.retired_us, h.timezone"
        " FROM sensors s LEFT JOIN households h ON h.household_id = s.household_id"
        f"{where} ORDER BY s.sensor_pk LIMIT ?"
    )
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    out: list[FleetRow] = []
    for r in rows:
        values = list(r)
        values[11] = bool(values[11])
        out.append(FleetRow(*values))
    return out


async def summarise_fleet(conn: Conn, low_battery_below: int) -> dict[str, int]:
    """Counts over the sensors in service, for the fleet table's header."""
    async with conn.execute(
        "SELECT COUNT(*),"
        " COALESCE(SUM(status = 'online'), 0),"
        " COALESCE(SUM(status = 'offline'), 0),"
        " COALESCE(SUM(battery IS NOT NULL AND battery < ?), 0),"
        " COALESCE(SUM(last_tamper_us IS NOT NULL), 0),"
        " COALESCE(SUM(clock_skewed = 1), 0)"
        " FROM sensors WHERE retired_us IS NULL",
        (low_battery_below,),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    keys = ("total", "online", "offline", "low_battery", "tamper", "clock_skewed")
    return {k: int(v) for k, v in zip(keys, row, strict=True)}


async def list_audit(
    conn: Conn,
    limit: int,
    before_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first; `action` matches a prefix (`sensor.` finds every sensor action)."""
    clauses: list[str] = []
    params: list[Any] = []
    if before_id is not None:
        clauses.append("audit_id < ?")
        params.append(before_id)
    if actor is not None:
        clauses.append("actor = ?")
        params.append(actor)
    if action is not None:
        clauses.append("substr(action, 1, ?) = ?")
        params.extend([len(action), action])
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    params.append(limit)
    async with conn.execute(
        "SELECT audit_id, at_us, actor, action, target, detail FROM audit_log"
        f"{where} ORDER BY audit_id DESC LIMIT ?",
        params,
    ) as cur:
        rows = await cur.fetchall()
    return [
        {
            "audit_id": r[0],
            "at_us": r[1],
            "actor": r[2],
            "action": r[3],
            "target": r[4],
            "detail": json.loads(r[5] or "{}"),
        }
        for r in rows
    ]
