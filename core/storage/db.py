"""Connections. WAL, a busy timeout so the bridge, API and scheduler processes can share
one file, writes in `BEGIN IMMEDIATE` transactions, reads on separate connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from core.storage import wake
from core.storage.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 15_000

# Failures that go away on their own: another writer holds the lock, or the disk is full
# (space comes back). Anything else a commit raises will fail the same way again.
_TRANSIENT_CODES = {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL"}


def is_transient_error(exc: BaseException) -> bool:
    """A locked/busy or full database: retry the same write later, it will succeed."""
    if not isinstance(exc, sqlite3.Error):
        return False
    name = getattr(exc, "sqlite_errorname", None) or ""
    if "_".join(name.split("_")[:2]) in _TRANSIENT_CODES:
        return True  # SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE, ... too
    text = str(exc).lower()
    return "database is locked" in text or "is busy" in text or "disk is full" in text


async def connect(path: Path, *, readonly: bool = False) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    if readonly:
        conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
    await conn.execute("PRAGMA foreign_keys = ON")
    return conn


async def migrate(conn: aiosqlite.Connection) -> None:
    """Create or upgrade the schema, one numbered migration after another, in one
    transaction; safe to run from every process at start."""
    version = await _user_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema v{version} is newer than this code (v{SCHEMA_VERSION})"
        )
    if version == SCHEMA_VERSION:
        return
    await conn.execute("BEGIN IMMEDIATE")
    try:
        version = await _user_version(conn)  # another process may have migrated meanwhile
        for target, script in MIGRATIONS:
            if target <= version:
                continue
            for statement in _statements(script):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {target}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise


async def _user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def _statements(script: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf = []
    return out


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


async def open_database(path: Path) -> aiosqlite.Connection:
    conn = await connect(path)
    await migrate(conn)
    wake.register(conn, path)
    return conn


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """A write transaction: BEGIN IMMEDIATE … COMMIT, ROLLBACK on any error."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        wake.discard(conn)
        await conn.execute("ROLLBACK")
        raise
    else:
        await conn.execute("COMMIT")
        wake.after_commit(conn)  # new outbox rows: the notifier reads them now


class _Rows:
    """A cursor whose rows were all fetched at once (so its statement is finished)."""

    def __init__(self, rows: list[Any], description: Any, rowcount: int) -> None:
        self._rows = rows
        self._i = 0
        self.description = description
        self.rowcount = rowcount

    async def fetchone(self) -> Any:
        if self._i >= len(self._rows):
            return None
        self._i += 1
        return self._rows[self._i - 1]

    async def fetchall(self) -> list[Any]:
        rest, self._i = self._rows[self._i :], len(self._rows)
        return rest

    async def fetchmany(self, size: int = 1) -> list[Any]:
        chunk = self._rows[self._i : self._i + size]
        self._i += len(chunk)
        return chunk

    def __aiter__(self) -> _Rows:
        return self

    async def __anext__(self) -> Any:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> _Rows:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None


class _Read:
    def __init__(self, reader: SerialReader, sql: str, params: Any) -> None:
        self.reader, self.sql, self.params = reader, sql, params

    async def _run(self) -> _Rows:
        async with self.reader.lock:
            cursor = await self.reader.conn.execute(self.sql, self.params)
            try:
                rows = list(await cursor.fetchall())
                return _Rows(rows, cursor.description, cursor.rowcount)
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

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()

    def execute(self, sql: str, params: Any = ()) -> _Read:
        return _Read(self, sql, params)

    async def close(self) -> None:
        await self.conn.close()


class Database:
    """One writer connection (writes serialised by a lock, each in BEGIN IMMEDIATE) and
    one reader connection, as datasette does. For apps with concurrent requests."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.writer = writer
        self.reader: Any = SerialReader(reader)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        writer = await open_database(path)
        reader = await connect(path)
        await reader.execute("PRAGMA query_only = ON")
        return cls(writer, reader)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock, transaction(self.writer) as conn:
            yield conn

    @asynccontextmanager
    async def writer_session(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer, exclusively, for work that commits in several transactions."""
        async with self._lock:
            yield self.writer

    async def close(self) -> None:
        await self.reader.close()
        await self.writer.close()
