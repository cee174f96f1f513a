"""Anonymous incidents: resolved alerts of the incident kinds copied without a household
id, located at the household's street segment, so they keep counting after the household
is erased (SPEC "Privacy"); and the households behind each segment (k-anonymity)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.grading import Incident
from core.models import INCIDENT_KINDS
from core.storage.port import Conn
from core.timeutil import from_us


async def sync_incidents(conn: Conn, now_us: int, household_id: str | None = None) -> int:
    """Copy resolved alerts of enrolled households, of the kinds that are about the street
    (`core.models.INCIDENT_KINDS`; the others never feed the grades, whatever their
    resolution), into the anonymous `incidents` table
    (inside the caller's write transaction). The copy keeps no household id; its location
    is the middle of the household's street segment, or — when it has none — the
    household's location rounded to 4 decimals. A changed resolution is updated.
    Returns the rows inserted or updated."""
    d = conn.dialect
    sql = (
        "INSERT INTO incidents (incident_id, source_key, segment_id, lat, lon, occurred_us,"
        " resolution, kind, recorded_us)"
        f" SELECT 'inc-' || {d.random_hex(8)}, a.alert_id,"
        " COALESCE(s.segment_id, a.segment_id, h.segment_id),"
        f" COALESCE(s.mid_lat, {d.round('h.lat', 4)}), COALESCE(s.mid_lon, {d.round('h.lon', 4)}),"
        " a.event_us, a.resolution, a.kind, ?"
        " FROM alerts a JOIN households h ON h.household_id = a.household_id"
        " LEFT JOIN segments s ON s.segment_id = COALESCE(a.segment_id, h.segment_id)"
        " WHERE a.state = 'resolved' AND a.resolution IN ('confirmed', 'false_alarm')"
        f" AND a.kind IN ({','.join('?' * len(INCIDENT_KINDS))})"
        " AND h.unenrolled_us IS NULL"
    )
    params: list[Any] = [now_us, *sorted(INCIDENT_KINDS)]
    if household_id is not None:
        sql += " AND a.household_id = ?"
        params.append(household_id)
    sql += (
        " ON CONFLICT (source_key) DO UPDATE SET resolution = excluded.resolution"
        " WHERE incidents.resolution IS DISTINCT FROM excluded.resolution"
    )
    cur = await conn.execute(sql, params)
    return max(cur.rowcount, 0)


async def load_incidents(conn: Conn, since_us: int = 0) -> list[Incident]:
    async with conn.execute(
        "SELECT incident_id, lat, lon, occurred_us, resolution, kind FROM incidents"
        " WHERE occurred_us >= ?",
        (since_us,),
    ) as cur:
        rows = await cur.fetchall()
    return [
        Incident.from_resolution(r[0], float(r[1]), float(r[2]), from_us(int(r[3])), r[4], r[5])
        for r in rows
    ]


async def households_per_segment(
    conn: Conn, segment_ids: Sequence[str] | None = None
) -> dict[str, int]:
    """Enrolled households behind each segment (all segments, or those given)."""
    sql = (
        "SELECT segment_id, COUNT(*) FROM households"
        " WHERE unenrolled_us IS NULL AND segment_id IS NOT NULL"
    )
    params: tuple[Any, ...] = ()
    if segment_ids is not None:
        sql += f" AND {conn.dialect.in_json_list('segment_id')}"
        params = (json.dumps(list(segment_ids)),)
    sql += " GROUP BY segment_id"
    async with conn.execute(sql, params) as cur:
        return {r[0]: int(r[1]) for r in await cur.fetchall()}
