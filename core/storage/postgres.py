"""The PostgreSQL adapter: the scale-out engine, selected by `ANSIM_DATABASE_URL`.

Driver: psycopg 3 with psycopg_pool (README "Storage" says why). The store modules are
written with SQLite's `?` and `:name` placeholders; `translate` turns them into psycopg's
`%s` / `%(name)s` once per statement text (cached). Parameters are bound on the client
(`AsyncClientCursor`): the SQL the store modules share uses untyped parameters in
places (`? IS NULL`) that server-side binding cannot type.

Transactions: `BEGIN … COMMIT` at READ COMMITTED. Several writers may run at once; what
must not interleave takes a row lock (`Dialect.lock_rows`, `FOR UPDATE`): the alert
engine locks the households it decides for, in id order, so two writers handling the
same household serialise while different households proceed in parallel.

A connection that breaks (server restarted, network gone) is replaced at the next
statement or transaction outside a transaction; inside one, the error reaches the
caller, whose transaction is then lost as a whole (the bridge retries its batch).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import AsyncClientCursor, AsyncConnection
from psycopg.adapt import Loader
from psycopg_pool import AsyncConnectionPool

from core.storage import wake
from core.storage.pg_schema import PG_MIGRATIONS
from core.storage.port import Conn, Dialect, Params
from core.storage.schema import SCHEMA_VERSION, statements

log = logging.getLogger(__name__)

ERRORS: tuple[type[BaseException], ...] = (psycopg.Error,)

# SQLSTATE classes that pass: connection exceptions, transaction rollback (serialisation,
# deadlock), insufficient resources (disk full, too many connections), operator
# intervention (shutdown, server starting).
_TRANSIENT_CLASSES = ("08", "40", "53", "57")
_MIGRATION_LOCK = 0x616E_7369_6D  # pg_advisory_xact_lock key while migrating ("ansim")


def is_transient_error(exc: BaseException) -> bool:
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate or ""
    if state[:2] in _TRANSIENT_CLASSES:
        return True
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not state


class PgDialect(Dialect):
    name = "postgresql"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})"

    def round(self, expr: str, digits: int) -> str:
        return f"round(({expr})::numeric, {digits})::double precision"

    def random_hex(self, nbytes: int) -> str:
        if nbytes > 16:
            raise ValueError("at most 16 random bytes")
        return f"substr(md5(random()::text || clock_timestamp()::text), 1, {2 * nbytes})"

    def in_json_list(self, column: str) -> str:
        return f"{column} IN (SELECT jsonb_array_elements_text(?::jsonb))"

    def contains(self, haystack: str, needle: str) -> str:
        return f"strpos({haystack}, {needle}) > 0"

    def lock_rows(self) -> str:
        return " FOR UPDATE"


POSTGRES = PgDialect()


@functools.lru_cache(maxsize=4096)
def translate(sql: str, with_params: bool) -> str:
    """SQLite placeholders to psycopg's: `?` → `%s`, `:name` → `%(name)s`, a literal `%`
    doubled (only when there are parameters, as psycopg reads the text then). Quoted
    strings and identifiers are copied as they are; `::type` casts are kept."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            j = sql.index(ch, i + 1)
            while j + 1 < n and sql[j + 1] == ch:  # '' inside a string
                j = sql.index(ch, j + 2)
            chunk = sql[i : j + 1]
            out.append(chunk.replace("%", "%%") if with_params else chunk)
            i = j + 1
        elif ch == "?":
            if i + 1 < n and sql[i + 1].isdigit():
                raise ValueError(f"numbered placeholders are not portable: {sql!r}")
            out.append("%s")
            i += 1
        elif ch == ":":
            if i + 1 < n and sql[i + 1] == ":":
                out.append("::")
                i += 2
                continue
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            if j > i + 1 and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
                out.append(f"%({sql[i + 1 : j]})s")
                i = j
            else:
                out.append(ch)
                i += 1
        elif ch == "%":
            out.append("%%" if with_params else "%")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _clean(value: Any) -> Any:
    if value is True or value is False:  # flags are integer columns, as in SQLite
        return int(value)
    # PostgreSQL text cannot hold NUL; what a sensor sent is kept in bytea (dead letters)
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _params(params: Params) -> Any:
    if not params:
        return None
    if isinstance(params, Mapping):
        return {k: _clean(v) for k, v in params.items()}
    return [_clean(v) for v in params]


class Row(tuple[Any, ...]):
    """A row readable by position and by column name, like `sqlite3.Row`."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    if desc is None:
        return tuple
    cls = _row_class(tuple(c.name for c in desc))
    return cls


class _NumericLoader(Loader):
    """numeric (SUM and AVG of integers) as int when whole, else float — as SQLite gives."""

    def load(self, data: Any) -> Any:
        d = Decimal(bytes(data).decode())
        return int(d) if d == d.to_integral_value() else float(d)


class _Rows:
    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._i = 0
        self.rowcount = rowcount
        self.lastrowid = None

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


class _Execution:
    def __init__(self, run: Any) -> None:
        self._run = run

    def __await__(self) -> Any:
        return self._run().__await__()

    async def __aenter__(self) -> _Rows:
        rows: _Rows = await self._run()
        return rows

    async def __aexit__(self, *_exc: object) -> None:
        return None


async def _run(raw: AsyncConnection[Any], sql: str, params: Params) -> _Rows:
    bound = _params(params)
    async with raw.cursor(row_factory=_row_factory) as cur:
        await cur.execute(translate(sql, bound is not None), bound)
        rows = await cur.fetchall() if cur.description is not None else []
        return _Rows(list(rows), cur.rowcount)


def redacted(url: str) -> str:
    """The URL without its password, for logs and the wake channel."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    host = netloc[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


async def _configure(raw: AsyncConnection[Any]) -> None:
    raw.adapters.register_loader("numeric", _NumericLoader)


async def connect_raw(url: str, application: str = "ansim") -> AsyncConnection[Any]:
    raw = await AsyncConnection.connect(
        url, autocommit=True, cursor_factory=AsyncClientCursor, application_name=application
    )
    await _configure(raw)
    return raw


class PgConn:
    """One PostgreSQL connection in autocommit mode; `transaction()` is BEGIN … COMMIT.
    Owned connections (`url` set) reconnect when broken, between transactions."""

    dialect: Dialect = POSTGRES

    def __init__(self, raw: AsyncConnection[Any], url: str | None = None) -> None:
        self.raw = raw
        self.url = url
        self._depth = 0
        if url is not None:
            wake.register(self, wake.channel_for(redacted(url)))

    async def _ensure(self) -> None:
        if self._depth == 0 and self.url is not None and (self.raw.closed or self.raw.broken):
            log.warning("database connection lost; reconnecting", extra={"db": redacted(self.url)})
            self.raw = await connect_raw(self.url)

    def execute(self, sql: str, params: Params = ()) -> _Execution:
        async def run() -> _Rows:
            await self._ensure()
            return await _run(self.raw, sql, params)

        return _Execution(run)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._ensure()
        batch = [_params(r) for r in rows]
        if not batch:
            return
        async with self.raw.cursor() as cur:
            await cur.executemany(translate(sql, True), batch)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConn]:
        await self._ensure()
        self._depth += 1
        try:
            async with self.raw.transaction():
                try:
                    yield self
                except BaseException:
                    wake.discard(self)
                    raise
            wake.after_commit(self)
        finally:
            self._depth -= 1

    async def close(self) -> None:
        await self.raw.close()


async def connect(url: str, application: str = "ansim") -> PgConn:
    return PgConn(await connect_raw(url, application), url)


async def schema_version(conn: PgConn) -> int:
    await conn.execute("CREATE TABLE IF NOT EXISTS ansim_schema (version BIGINT NOT NULL)")
    row = await (await conn.execute("SELECT max(version) FROM ansim_schema")).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def migrate(conn: PgConn) -> None:
    """The numbered PostgreSQL migrations after the database's version, in one
    transaction under an advisory lock (every process may run this at start)."""
    version = await schema_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema v{version} is newer than this code (v{SCHEMA_VERSION})"
        )
    if version == SCHEMA_VERSION:
        return
    async with conn.transaction():
        await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        version = await schema_version(conn)
        for target, script in PG_MIGRATIONS:
            if target <= version:
                continue
            for statement in statements(script):
                await conn.execute(statement)
            await conn.execute("DELETE FROM ansim_schema")
            await conn.execute("INSERT INTO ansim_schema (version) VALUES (?)", (target,))
            log.info("database migrated", extra={"version": target})


async def open_writer(url: str, application: str = "ansim") -> PgConn:
    conn = await connect(url, application)
    await migrate(conn)
    return conn


class PoolReader:
    """Reads on pooled connections, each statement on whichever is free."""

    dialect: Dialect = POSTGRES

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    def execute(self, sql: str, params: Params = ()) -> _Execution:
        async def run() -> _Rows:
            async with self.pool.connection() as raw:
                return await _run(raw, sql, params)

        return _Execution(run)


class PgStore:
    """A pool for reads and a writer. Writes of one process are serialised by a lock as on
    SQLite (the API's handlers were written for one writer); writers in other processes
    run at the same time, kept apart by row locks where it matters."""

    dialect: Dialect = POSTGRES

    def __init__(self, url: str, pool: AsyncConnectionPool[Any], writer: PgConn) -> None:
        self.url = url
        self.location = redacted(url)
        self.pool = pool
        self.writer: Conn = writer
        self.reader: Any = PoolReader(pool)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, application: str = "ansim", pool_size: int = 4) -> PgStore:
        writer = await open_writer(url, application)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={
                "autocommit": True,
                "cursor_factory": AsyncClientCursor,
                "application_name": application,
            },
            configure=_configure,
            check=AsyncConnectionPool.check_connection,
            open=False,
        )
        await pool.open(wait=True, timeout=30)
        return cls(url, pool, writer)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        async with self._lock, self.writer.transaction() as conn:
            yield conn

    @asynccontextmanager
    async def writer_session(self) -> AsyncIterator[Conn]:
        async with self._lock:
            yield self.writer

    async def connect(self) -> Conn:
        return await connect(self.url)

    async def close(self) -> None:
        await self.pool.close()
        await self.writer.close()
