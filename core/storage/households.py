"""Households: enrolment and lookup."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite


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


async def insert_household(
    conn: aiosqlite.Connection,
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
) -> None:
    await conn.execute(
        "INSERT INTO households (household_id, name, lat, lon, timezone, night_window,"
        " webhook_url, webhook_secret, segment_id, mode, mode_since_us, created_us)"
        " VALUES (?,?,?,?,?,?,?,?,?,'disarmed',?,?)",
        (household_id, name, lat, lon, timezone, night_window, webhook_url, webhook_secret,
         segment_id, now_us, now_us),
    )  # fmt: skip


async def get_household(conn: aiosqlite.Connection, household_id: str) -> HouseholdRow | None:
    async with conn.execute(
        "SELECT household_id, name, lat, lon, timezone, night_window, webhook_url, segment_id,"
        " mode, mode_since_us, created_us FROM households"
        " WHERE household_id = ? AND unenrolled_us IS NULL",
        (household_id,),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else HouseholdRow(*row)
