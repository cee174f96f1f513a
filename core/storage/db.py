"""Opening the database the settings name: the SQLite file in `ANSIM_DATA_DIR` (the
default), or PostgreSQL at `ANSIM_DATABASE_URL`. The apps open their storage here and
nowhere else; what they get is the port (`core/storage/port.py`)."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from core.settings import Settings
from core.storage import postgres, sqlite
from core.storage.port import Conn, Store

# Every error a database call can raise, whichever the adapter.
DB_ERRORS: tuple[type[BaseException], ...] = sqlite.ERRORS + postgres.ERRORS


def is_postgres(settings: Settings) -> bool:
    return bool(settings.database_url)


def location(settings: Settings) -> str:
    """Where the data is, for logs (no password)."""
    if settings.database_url:
        return postgres.redacted(settings.database_url)
    return str(settings.database)


def is_transient_error(exc: BaseException) -> bool:
    """A failure that passes on its own (locked, busy, full, connection lost): retry the
    same write later. Anything else fails the same way again."""
    return sqlite.is_transient_error(exc) or postgres.is_transient_error(exc)


async def open_store(settings: Settings, application: str = "ansim") -> Store:
    """Migrated, for an app with concurrent work (API, notifier, scheduler)."""
    if settings.database_url:
        return await postgres.PgStore.open(
            settings.database_url, application, settings.pg_pool_size
        )
    return await sqlite.SqliteStore.open(settings.database)


async def open_connection(settings: Settings, application: str = "ansim") -> Conn:
    """One migrated connection (the bridge's writer, the CLI)."""
    if settings.database_url:
        return await postgres.open_writer(settings.database_url, application)
    return await sqlite.open_writer(settings.database)


async def connect(settings: Settings, application: str = "ansim") -> Conn:
    """A side connection (heartbeats), after the schema is in place."""
    if settings.database_url:
        return await postgres.connect(settings.database_url, application)
    return await sqlite.connect(settings.database)


def transaction(conn: Conn) -> AbstractAsyncContextManager[Conn]:
    """The connection's write transaction (BEGIN IMMEDIATE on SQLite, BEGIN on PostgreSQL)."""
    return conn.transaction()


async def checkpoint_forever(settings: Settings, every_s: float, stop: asyncio.Event) -> None:
    """SQLite's WAL checkpoints off the writer; PostgreSQL checkpoints by itself."""
    if settings.database_url:
        await stop.wait()
        return
    await sqlite.checkpoint_forever(settings.database, every_s, stop)


async def open_sqlite(path: Path) -> sqlite.SqliteConn:
    """A migrated SQLite connection on a file (tests and tools)."""
    return await sqlite.open_writer(path)
