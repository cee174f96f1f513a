"""The SQLite adapter: the embedded default. One file in `ANSIM_DATA_DIR`, WAL, a busy
timeout so the bridge, API and scheduler processes can share it, writes in
`BEGIN IMMEDIATE` transactions (one writer at a time, database-wide), reads on a
connection of their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from core.storage import wake
from core.storage.port import SQLITE, Conn, Params
from core.storage.schema import MIGRATIONS, SCHEMA_VERSION, statements

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 15_000

# Failures that go away on their own: another writer holds the lock, or the disk is full
# (space comes back). Anything else a commit raises will fail the same way again.
_TRANSIENT_CODES = {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL"}

ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error,)


def is_transient_error(exc: BaseException) -> bool:
    """A locked/busy or full database: retry the same write later, it will succeed."""
    if not isinstance(exc, sqlite3.Error):
        return False
    name = getattr(exc, "sqlite_errorname", None) or ""
    if "_".join(name.split("_")[:2]) in _TRANSIENT_CODES:
        return True  # SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE, ... too
    text = str(exc).lower()
    return "database is locked" in text or "is busy" in text or "disk is full" in text


class SqliteConn:
    """One aiosqlite connection in autocommit mode (`isolation_level=None`)."""

    dialect = SQLITE

    def __init__(self, raw: aiosqlite.Connection, path: Path) -> None:
        self.raw = raw
        self.path = path
        self.execute = raw.execute  # no extra hop on the hot path
        wake.register(self, wake.channel_for(os.path.abspath(path)))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> Any:
        return await self.raw.executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteConn]:
        """BEGIN IMMEDIATE … COMMIT, ROLLBACK on any error."""
        await self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            wake.discard(self)
            await self.raw.execute("ROLLBACK")
            raise
        else:
            await self.raw.execute("COMMIT")
            wake.after_commit(self)  # new outbox rows: the notifier reads them now

    async def close(self) -> None:
        await self.raw.close()


async def connect(path: Path, *, readonly: bool = False) -> SqliteConn:
    path.parent.mkdir(parents=True, exist_ok=True)
    if readonly:
        raw = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        raw = await aiosqlite.connect(path, isolation_level=None)
    raw.row_factory = sqlite3.Row
    await raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        await raw.execute("PRAGMA journal_mode = WAL")
        await raw.execute("PRAGMA synchronous = NORMAL")
    await raw.execute("PRAGMA foreign_keys = ON")
    return SqliteConn(raw, path)


async def schema_version(conn: SqliteConn) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: SqliteConn) -> None:
    """Create or upgrade the schema, one numbered migration after another, in one
    transaction; safe to run from every process at start."""
    version = await schema_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema v{version} is newer than this code (v{SCHEMA_VERSION})"
        )
    if version == SCHEMA_VERSION:
        return
    async with conn.transaction():
        version = await schema_version(conn)  # another process may have migrated meanwhile
        for target, script in MIGRATIONS:
            if target <= version:
                continue
            for statement in statements(script):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {target}")


async def open_writer(path: Path) -> SqliteConn:
    conn = await connect(path)
    await migrate(conn)
    return conn


async def checkpoint_forever(path: Path, every_s: float, stop: asyncio.Event) -> None:
    """Checkpoint the WAL from a connection (and thread) of its own, so that the hot
    writer, whose automatic checkpoint is turned off, never pays for one inside its
    COMMIT. PASSIVE: copies what it can without waiting on readers or writers."""
    conn = await connect(path)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
            try:
                await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # busy or full: the next round tries again
                log.warning("checkpoint failed", extra={"error": str(exc)})
    finally:
        await conn.close()


async def turn_off_autocheckpoint(conn: SqliteConn) -> None:
    await conn.execute("PRAGMA wal_autocheckpoint = 0")


class _Rows:
    """A cursor whose rows were all fetched at once (so its statement is finished)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._i = 0
        self.rowcount = rowcount

    async def fetchone(self) -> Any:
        if self._i >= len(self._rows):
            return None
        self._i += 1
        return self._rows[self._i - 1]

    async def fetchall(self) -> list[Any]:
        rest, self._i = self._rows[self._i :], len(self._rows)
        return rest

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> _Rows:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None


class _Read:
    def __init__(self, reader: SerialReader, sql: str, params: Params) -> None:
        self.reader, self.sql, self.params = reader, sql, params

    async def _run(self) -> _Rows:
        async with self.reader.lock:
            cursor = await self.reader.conn.raw.execute(self.sql, self.params)
            try:
                rows = list(await cursor.fetchall())
                return _Rows(rows, cursor.rowcount)
            finally:
                await cursor.close()

    def __await__(self) -> Any:
        return self._run().__await__()

    async def __aenter__(self) -> _Rows:
        return await self._run()

    async def __aexit__(self, *_exc: object) -> None:
        return None


class SerialReader:
    """The read connection, one statement at a time, each read to the end before the next
    starts. Interleaved half-read cursors would keep one read transaction open and serve
    an old snapshot (a household enrolled a moment ago would be 'not found')."""

    dialect = SQLITE

    def __init__(self, conn: SqliteConn) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()

    def execute(self, sql: str, params: Params = ()) -> _Read:
        return _Read(self, sql, params)

    async def close(self) -> None:
        await self.conn.close()


class SqliteStore:
    """One writer connection (writes serialised by a lock, each in BEGIN IMMEDIATE) and
    one reader connection, as datasette does. For apps with concurrent requests."""

    dialect = SQLITE

    def __init__(self, path: Path, writer: SqliteConn, reader: SqliteConn) -> None:
        self.path = path
        self.location = os.path.abspath(path)  # as SqliteConn names its wake channel
        self.writer: Conn = writer
        self.reader: Any = SerialReader(reader)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        writer = await open_writer(path)
        reader = await connect(path)
        await reader.execute("PRAGMA query_only = ON")
        return cls(path, writer, reader)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        async with self._lock, self.writer.transaction() as conn:
            yield conn

    @asynccontextmanager
    async def writer_session(self) -> AsyncIterator[Conn]:
        """The writer, exclusively, for work that commits in several transactions."""
        async with self._lock:
            yield self.writer

    async def connect(self) -> Conn:
        return await connect(self.path)

    async def close(self) -> None:
        await self.reader.close()
        await self.writer.close()
