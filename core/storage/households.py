"""Households: enrolment and lookup."""

from __future__ import annotations

from dataclasses import dataclass

from core.storage.port import Conn


@dataclass(frozen=True, slots=True)
class HouseholdRow:
    household_id: str
    name: str
    lat: float
    lon: float
    timezone: str
    night_window: str
    webhook_url: str | None
    segment_id: str | None
    mode: str
    mode_since_us: int
    created_us: int
    exit_delay_s: int | None = None  # the household's own (None: ANSIM_EXIT_DELAY_S)


async def insert_household(
    conn: Conn,
    *,
    household_id: str,
    name: str,
    lat: float,
    lon: float,
    timezone: str,
    night_window: str,
    webhook_url: str | None,
    webhook_secret: str | None,
    segment_id: str | None,
    now_us: int,
    exit_delay_s: int | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO households (household_id, name, lat, lon, timezone, night_window,"
        " webhook_url, webhook_secret, segment_id, mode, mode_since_us, created_us,"
        " exit_delay_s) VALUES (?,?,?,?,?,?,?,?,?,'disarmed',?,?,?)",
        (household_id, name, lat, lon, timezone, night_window, webhook_url, webhook_secret,
         segment_id, now_us, now_us, exit_delay_s),
    )  # fmt: skip


async def set_exit_delay(conn: Conn, household_id: str, exit_delay_s: int | None) -> bool:
    """The household's own exit delay (None: back to ANSIM_EXIT_DELAY_S); False if unknown."""
    cur = await conn.execute(
        "UPDATE households SET exit_delay_s = ? WHERE household_id = ? AND unenrolled_us IS NULL",
        (exit_delay_s, household_id),
    )
    return cur.rowcount > 0


async def set_duress_pin_hash(conn: Conn, household_id: str, pin_hash: str | None) -> bool:
    """Set (or clear, None) the hash of the household's duress PIN; False: no household."""
    cur = await conn.execute(
        "UPDATE households SET duress_pin_hash = ? WHERE household_id = ?"
        " AND unenrolled_us IS NULL",
        (pin_hash, household_id),
    )
    return cur.rowcount > 0


async def duress_pin_hash(conn: Conn, household_id: str) -> str | None:
    async with conn.execute(
        "SELECT duress_pin_hash FROM households WHERE household_id = ? AND unenrolled_us IS NULL",
        (household_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else row[0]


async def get_household(conn: Conn, household_id: str) -> HouseholdRow | None:
    async with conn.execute(
        "SELECT household_id, name, lat, lon, timezone, night_window, webhook_url, segment_id,"
        " mode, mode_since_us, created_us, exit_delay_s FROM households"
        " WHERE household_id = ? AND unenrolled_us IS NULL",
        (household_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else HouseholdRow(*row)


async def household_state(conn: Conn, household_id: str) -> int | bool | None:
    """False when the household never existed, None while enrolled, else `unenrolled_us`."""
    async with conn.execute(
        "SELECT unenrolled_us FROM households WHERE household_id = ?", (household_id,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return False
    return None if row[0] is None else int(row[0])


async def erase_household(conn: Conn, household_id: str, now_us: int) -> dict[str, int]:
    """Unenrol: erase the household's personal data (inside the caller's write transaction).

    The row stays as an anonymous tombstone (ids referenced by alerts): name blanked,
    location zeroed, webhook and its secret removed, segment link dropped. Its tokens are
    revoked; raw door events, heartbeat rollups, dead letters of its sensors, arming
    history, learned routine, timers and undelivered notifications are deleted. Alerts
    stay (they carry no personal data); its resolved alerts must already have been copied
    to the anonymous incidents table. Sensors are retired by the caller (broker first).
    """
    counts: dict[str, int] = {}
    pks_sql = "SELECT sensor_pk FROM sensors WHERE household_id = ?"
    ids_sql = "SELECT sensor_id FROM sensors WHERE household_id = ?"
    for name, sql in (
        ("events", f"DELETE FROM events WHERE sensor_pk IN ({pks_sql})"),
        ("heartbeat_days", f"DELETE FROM heartbeat_days WHERE sensor_pk IN ({pks_sql})"),
        ("dead_letters", f"DELETE FROM dead_letters WHERE sensor_id IN ({ids_sql})"),
        (
            "dead_letter_tallies",
            f"DELETE FROM dead_letter_tallies WHERE sensor_id IN ({ids_sql})",
        ),
        ("mode_changes", "DELETE FROM mode_changes WHERE household_id = ?"),
        ("routines", "DELETE FROM routines WHERE household_id = ?"),
        ("timers", "DELETE FROM timers WHERE household_id = ?"),
        ("notifications", "DELETE FROM outbox WHERE household_id = ? AND state = 'pending'"),
        ("notification_urls", "UPDATE outbox SET url = NULL WHERE household_id = ?"),
        (
            "tokens",
            "UPDATE tokens SET revoked_us = ? WHERE household_id = ? AND revoked_us IS NULL",
        ),
    ):
        params: tuple[object, ...] = (household_id,) if name != "tokens" else (now_us, household_id)
        cur = await conn.execute(sql, params)
        counts[name] = max(cur.rowcount, 0)
    await conn.execute(
        "UPDATE households SET name = '', lat = 0, lon = 0, webhook_url = NULL,"
        " duress_pin_hash = NULL, webhook_secret = NULL, segment_id = NULL, unenrolled_us = ?"
        " WHERE household_id = ?",
        (now_us, household_id),
    )
    return counts
