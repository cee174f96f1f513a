"""API tokens, stored as SHA-256 hashes only."""

from __future__ import annotations

from dataclasses import dataclass

from core.credentials import hash_secret
from core.models import Role
from core.storage.port import Conn


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
    conn: Conn,
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


async def find_principal(conn: Conn, token: str) -> Principal | None:
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


TOKEN_ID_LEN = 12  # a token's id: the first hex digits of its stored hash (not the secret)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    role: Role
    household_id: str | None
    label: str | None
    created_us: int
    revoked_us: int | None


async def list_tokens(conn: Conn) -> list[TokenInfo]:
    async with conn.execute(
        "SELECT token_hash, role, household_id, label, created_us, revoked_us FROM tokens"
        " ORDER BY created_us, token_hash"
    ) as cur:
        rows = await cur.fetchall()
    return [TokenInfo(r[0][:TOKEN_ID_LEN], Role(r[1]), r[2], r[3], int(r[4]), r[5]) for r in rows]


async def revoke_token(conn: Conn, token_id: str, now_us: int) -> TokenInfo:
    """Revoke the one token whose id starts with `token_id` (at least 6 hex digits).
    Raises LookupError (none or several match) or ValueError (already revoked / bad id)."""
    token_id = token_id.strip().lower()
    if len(token_id) < 6 or any(c not in "0123456789abcdef" for c in token_id):
        raise ValueError(f"a token id is at least 6 hex digits, not {token_id!r}")
    if len(token_id) > TOKEN_ID_LEN:
        raise ValueError(f"a token id has at most {TOKEN_ID_LEN} hex digits")
    matches = [t for t in await list_tokens(conn) if t.token_id.startswith(token_id)]
    if not matches:
        raise LookupError(f"no token with id {token_id!r}")
    if len(matches) > 1:
        raise LookupError(f"{len(matches)} tokens have an id starting {token_id!r}: give more")
    token = matches[0]
    if token.revoked_us is not None:
        raise ValueError(f"token {token.token_id} is already revoked")
    await conn.execute(
        "UPDATE tokens SET revoked_us = ?"
        " WHERE substr(token_hash, 1, ?) = ? AND revoked_us IS NULL",
        (now_us, TOKEN_ID_LEN, token.token_id),
    )
    return token
