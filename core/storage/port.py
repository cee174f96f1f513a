"""The storage port: what every store function and app depends on, whatever the database.

Two adapters implement it — `core/storage/sqlite.py` (the embedded default: one file, WAL,
one writer, `BEGIN IMMEDIATE`) and `core/storage/postgres.py` (the scale-out engine:
psycopg 3 and its pool, row locks). The store modules (`events`, `alerts`, `outbox`, …)
are written once against `Conn`; where the two SQL dialects differ they ask
`conn.dialect` for the fragment (`greatest`, `random_hex`, `in_json_list`, …) and
the adapter's `Dialect` subclass answers — the only SQL that is not shared.

A `Conn` is one connection:

* `execute(sql, params)` is awaited for its `Result`, or used as
  `async with conn.execute(...) as cur:`; `?` placeholders (and `:name` with a mapping).
  Outside a transaction each statement commits on its own (autocommit).
* `executemany(sql, rows)` runs one statement for each row.
* `transaction()` is the one write transaction per adapter: everything inside commits
  together or not at all; a `Conn` holds at most one open at a time.

A `Store` is what the API, the notifier and the scheduler open: one serialised writer
(`write()` for one transaction, `writer_session()` for work that commits in several),
a `reader` for reads, and `connect()` for a side connection (heartbeats).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeAlias, runtime_checkable

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]


class Result(Protocol):
    """The outcome of one statement: its rows (all fetched) and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    async def fetchone(self) -> Any: ...

    async def fetchall(self) -> Iterable[Any]: ...


class Execution(Protocol):
    """What `Conn.execute` returns: awaitable, or an async context manager, for a Result."""

    def __await__(self) -> Generator[Any, None, Result]: ...

    async def __aenter__(self) -> Result: ...

    async def __aexit__(self, *exc: Any) -> Any: ...


class Dialect:
    """SQL fragments that differ between the engines. This base class is SQLite's; the
    PostgreSQL adapter overrides what differs. Each returns a piece of SQL text."""

    name = "sqlite"

    def greatest(self, a: str, b: str) -> str:
        """The larger of two values (SQLite's two-argument MAX)."""
        return f"MAX({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"MIN({a}, {b})"

    def round(self, expr: str, digits: int) -> str:
        """A real rounded to `digits` decimals, as a real."""
        return f"round({expr}, {digits})"

    def random_hex(self, nbytes: int) -> str:
        """2·nbytes random lowercase hex digits."""
        return f"lower(hex(randomblob({nbytes})))"

    def in_json_list(self, column: str) -> str:
        """`column` is one of the values of a JSON array passed as the one parameter."""
        return f"{column} IN (SELECT value FROM json_each(?))"

    def contains(self, haystack: str, needle: str) -> str:
        """A boolean: `needle` occurs in `haystack`."""
        return f"instr({haystack}, {needle}) > 0"

    def lock_rows(self) -> str:
        """Appended to a SELECT inside a write transaction: lock the rows it reads until
        COMMIT. SQLite's BEGIN IMMEDIATE already holds the one write lock: nothing."""
        return ""

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgresql"


SQLITE = Dialect()


@runtime_checkable
class Conn(Protocol):
    dialect: Dialect

    def execute(self, sql: str, params: Params = ()) -> Execution: ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> Any: ...

    def transaction(self) -> AbstractAsyncContextManager[Conn]: ...

    async def close(self) -> None: ...


class Reader(Protocol):
    dialect: Dialect

    def execute(self, sql: str, params: Params = ()) -> Execution: ...


class Store(Protocol):
    """An opened database for an app with concurrent work (the API, notifier, scheduler)."""

    dialect: Dialect
    reader: Any
    writer: Conn
    location: str

    def write(self) -> AbstractAsyncContextManager[Conn]: ...

    def writer_session(self) -> AbstractAsyncContextManager[Conn]: ...

    async def connect(self) -> Conn: ...

    async def close(self) -> None: ...


async def rows_of(conn: Conn | Reader, sql: str, params: Params = ()) -> list[Any]:
    """All rows of one query."""
    result = await conn.execute(sql, params)
    return list(await result.fetchall())


__all__ = ["SQLITE", "Conn", "Dialect", "Params", "Reader", "Result", "Store", "rows_of"]
