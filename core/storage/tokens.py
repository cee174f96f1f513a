"""API tokens, stored as SHA-256 hashes only."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from core.credentials import hash_secret
from core.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    household_id: str | None
    label: str | None

    @property
    def actor(self) -> str:
        if self.role is Role.OPERATOR:
            return f"operator:{self.label or 'unnamed'}"
        return f"resident:{self.household_id}"


async def insert_token(
    conn: aiosqlite.Connection,
    token: str,
    role: Role,
    now_us: int,
    household_id: str | None = None,
    label: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO tokens (token_hash, role, household_id, label, created_us) VALUES (?,?,?,?,?)",
        (hash_secret(token), str(role), household_id, label, now_us),
    )


async def find_principal(conn: aiosqlite.Connection, token: str) -> Principal | None:
    async with conn.execute(
        "SELECT t.role, t.household_id, t.label FROM tokens t"
        " LEFT JOIN households h ON h.household_id = t.household_id"
        " WHERE t.token_hash = ? AND t.revoked_us IS NULL AND h.unenrolled_us IS NULL",
        (hash_secret(token),),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return Principal(Role(row[0]), row[1], row[2])
