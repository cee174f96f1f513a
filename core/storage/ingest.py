"""Writes of the ingest pipeline: one transaction per batch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.dead_letter_cap import DeadLetterCap
from core.ingest import Classified, DeadLetter, SensorRef, summarise_sensors
from core.storage.db import transaction
from core.storage.dead_letters import store_dead_letters
from core.storage.port import Conn

_EVENT_COLS = 11
_CHUNK = 2500  # rows per multi-row INSERT (11 bound values each, under SQLite's 32766)


@dataclass(frozen=True, slots=True)
class StoreResult:
    stored: int
    duplicates: int
    heartbeats: int
    statuses: int
    dead_letters: int
    stored_keys: frozenset[tuple[int, int, int]]
    # the dead letters stored whole; the rest of `dead_letters` were only counted (the cap)
    dead_letters_stored: tuple[DeadLetter, ...] = ()

    @property
    def dead_letters_suppressed(self) -> int:
        return self.dead_letters - len(self.dead_letters_stored)


async def lookup_sensors(conn: Conn, sensor_ids: Iterable[str]) -> dict[str, SensorRef]:
    ids = list(sensor_ids)
    out: dict[str, SensorRef] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        async with conn.execute(
            "SELECT sensor_pk, sensor_id, household_id, retired_us, last_heartbeat_boot,"
            f" last_heartbeat_seq FROM sensors WHERE sensor_id IN ({marks})",
            chunk,
        ) as cur:
            for row in await cur.fetchall():
                hb = None if row[4] is None else (int(row[4]), int(row[5]))
                out[row[1]] = SensorRef(row[0], row[1], row[2], row[3] is not None, hb)
    return out


def _day(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d")


async def store_batch(
    conn: Conn,
    batch: Classified,
    dead_letter_cap: DeadLetterCap | None = None,
) -> StoreResult:
    """One transaction: `insert_events`, then `update_sensors` (no alert rules: the bridge's
    pipeline runs them in between, see broker_bridge/bridge.py `_commit`)."""
    async with transaction(conn):
        stored_keys = await insert_events(conn, batch)
        return await update_sensors(conn, batch, stored_keys, dead_letter_cap)


async def insert_events(conn: Conn, batch: Classified) -> set[tuple[int, int, int]]:
    """Insert the batch's events; the keys of those new (a repeat inserts nothing).
    Runs in the caller's transaction and touches no sensor row."""
    stored_keys: set[tuple[int, int, int]] = set()
    events = batch.events
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        values = ",".join(["(" + ",".join("?" * _EVENT_COLS) + ")"] * len(chunk))
        params: list[object] = []
        for e in chunk:
            params += (
                e.sensor_pk, e.boot, e.seq, e.event_us, e.device_us, e.offset_min,
                e.received_us, str(e.type), e.battery, e.rssi, int(e.skewed),
            )  # fmt: skip
        async with conn.execute(
            "INSERT INTO events (sensor_pk, boot, seq, event_us, device_us, offset_min,"
            " received_us, type, battery, rssi, skewed) VALUES "
            + values
            + " ON CONFLICT DO NOTHING RETURNING sensor_pk, boot, seq",
            params,
        ) as cur:
            for row in await cur.fetchall():
                stored_keys.add((row[0], row[1], row[2]))
    return stored_keys


async def update_sensors(
    conn: Conn,
    batch: Classified,
    stored_keys: set[tuple[int, int, int]],
    dead_letter_cap: DeadLetterCap | None = None,
) -> StoreResult:
    """After the events (and the alert rules): sensor state, heartbeat rollups, statuses
    and dead letters (those over `dead_letter_cap` only counted), in the caller's
    transaction."""
    hb_keys = {h.key for h in batch.heartbeats}
    if batch.heartbeats:
        await conn.executemany(
            "INSERT INTO heartbeat_days (sensor_pk, day, count, min_battery) VALUES (?,?,1,?)"
            " ON CONFLICT (sensor_pk, day) DO UPDATE SET count = heartbeat_days.count + 1,"
            " min_battery = "
            + conn.dialect.least(
                "COALESCE(heartbeat_days.min_battery, excluded.min_battery)",
                "COALESCE(excluded.min_battery, heartbeat_days.min_battery)",
            ),
            [(h.sensor_pk, _day(h.event_us), h.battery) for h in batch.heartbeats],
        )

    updates = summarise_sensors(
        [*batch.events, *batch.heartbeats, *batch.heartbeat_duplicates], stored_keys, hb_keys
    )
    if updates:
        d = conn.dialect
        await conn.executemany(
            f"""UPDATE sensors SET
                battery = CASE WHEN :battery IS NOT NULL
                    AND :newest >= COALESCE(last_seen_us, -1) THEN :battery ELSE battery END,
                rssi = CASE WHEN :rssi IS NOT NULL
                    AND :newest >= COALESCE(last_seen_us, -1) THEN :rssi ELSE rssi END,
                last_seen_us = {d.greatest("COALESCE(last_seen_us, 0)", ":newest")},
                clock_skew_s = CASE WHEN :skew IS NOT NULL
                    AND :received >= COALESCE(last_received_us, 0) THEN :skew
                    ELSE clock_skew_s END,
                clock_skewed = CASE WHEN :skewed IS NOT NULL
                    AND :received >= COALESCE(last_received_us, 0) THEN :skewed
                    ELSE clock_skewed END,
                last_received_us = {d.greatest("COALESCE(last_received_us, 0)", ":received")},
                last_boot = CASE WHEN last_boot IS NULL OR :boot > last_boot
                    OR (:boot = last_boot AND :seq > last_seq) THEN :boot ELSE last_boot END,
                last_seq = CASE WHEN last_boot IS NULL OR :boot > last_boot
                    OR (:boot = last_boot AND :seq > last_seq) THEN :seq ELSE last_seq END,
                last_heartbeat_boot = CASE WHEN :hb_boot IS NOT NULL AND (
                    last_heartbeat_boot IS NULL OR :hb_boot > last_heartbeat_boot
                    OR (:hb_boot = last_heartbeat_boot AND :hb_seq > last_heartbeat_seq))
                    THEN :hb_boot ELSE last_heartbeat_boot END,
                last_heartbeat_seq = CASE WHEN :hb_boot IS NOT NULL AND (
                    last_heartbeat_boot IS NULL OR :hb_boot > last_heartbeat_boot
                    OR (:hb_boot = last_heartbeat_boot AND :hb_seq > last_heartbeat_seq))
                    THEN :hb_seq ELSE last_heartbeat_seq END,
                last_tamper_us = CASE WHEN :tamper IS NOT NULL
                    THEN {d.greatest("COALESCE(last_tamper_us, 0)", ":tamper")}
                    ELSE last_tamper_us END,
                status = CASE WHEN status = 'unknown'
                    OR (status = 'offline' AND status_reason = 'heartbeat_missed'
                        AND :received > COALESCE(status_us, 0))
                    THEN 'online' ELSE status END,
                status_reason = CASE WHEN status = 'unknown'
                    OR (status = 'offline' AND status_reason = 'heartbeat_missed'
                        AND :received > COALESCE(status_us, 0))
                    THEN 'traffic' ELSE status_reason END,
                status_us = CASE WHEN status = 'unknown'
                    OR (status = 'offline' AND status_reason = 'heartbeat_missed'
                        AND :received > COALESCE(status_us, 0))
                    THEN :received ELSE status_us END,
                events_stored = events_stored + :stored,
                heartbeats = heartbeats + :heartbeats,
                duplicates = duplicates + :duplicates
            WHERE sensor_pk = :pk""",
            [
                {
                    "pk": u.sensor_pk,
                    "newest": u.newest_event_us,
                    "received": u.newest_received_us,
                    "battery": u.battery,
                    "rssi": u.rssi,
                    "skew": u.skew_s,
                    "skewed": None if u.skewed is None else int(u.skewed),
                    "boot": u.last_boot_seq[0],
                    "seq": u.last_boot_seq[1],
                    "hb_boot": None if u.last_heartbeat is None else u.last_heartbeat[0],
                    "hb_seq": None if u.last_heartbeat is None else u.last_heartbeat[1],
                    "tamper": u.tamper_us,
                    "stored": u.stored,
                    "heartbeats": u.heartbeats,
                    "duplicates": u.duplicates,
                }
                for u in updates
            ],
        )

    if batch.statuses:
        await conn.executemany(
            "UPDATE sensors SET status = :status, status_reason = 'broker',"
            " status_us = :received WHERE sensor_pk = :pk"
            " AND :received >= COALESCE(status_us, 0) AND retired_us IS NULL",
            [
                {"status": s.status, "received": s.received_us, "pk": s.sensor_pk}
                for s in batch.statuses
            ],
        )

    capped = await store_dead_letters(conn, batch.dead, dead_letter_cap or DeadLetterCap())
    duplicates = sum(u.duplicates for u in updates) if updates else 0
    return StoreResult(
        stored=len(stored_keys),
        duplicates=duplicates,
        heartbeats=len(batch.heartbeats),
        statuses=len(batch.statuses),
        dead_letters=len(batch.dead),
        stored_keys=frozenset(stored_keys),
        dead_letters_stored=tuple(capped.store),
    )
