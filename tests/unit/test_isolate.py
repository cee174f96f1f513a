"""Splitting a failing batch: the pure logic, and which real SQLite errors are transient."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.isolate import commit_isolating
from core.storage.db import is_transient_error


class Poison(Exception):
    pass


class Locked(Exception):
    pass


def _run(
    items: list[int], bad: set[int], locked_first: int = 0
) -> tuple[list[list[int]], list[int], int, int]:
    committed: list[list[int]] = []
    waits = 0
    locks = {"left": locked_first}

    async def commit(part: Sequence[int]) -> list[int]:
        if locks["left"] > 0:
            locks["left"] -= 1
            raise Locked("database is locked")
        if bad & set(part):
            raise Poison(f"row {sorted(bad & set(part))[0]}")
        committed.append(list(part))
        return list(part)

    async def wait(_exc: Exception) -> None:
        nonlocal waits
        waits += 1

    out = asyncio.run(commit_isolating(items, commit, lambda e: isinstance(e, Locked), wait))
    assert out.results == committed
    return committed, [i for i, _e in out.failed], waits, out.commits


@pytest.mark.parametrize(
    ("n", "bad"),
    [(1, set()), (10, set()), (1, {0}), (2, {1}), (7, {3}), (100, {0, 99}), (64, {5, 6, 40}),
     (9, set(range(9))), (2000, {1234})],
)  # fmt: skip
def test_only_the_failing_items_are_left_out_order_kept(n: int, bad: set[int]) -> None:
    committed, failed, waits, commits = _run(list(range(n)), bad)
    flat = [i for part in committed for i in part]
    assert flat == [i for i in range(n) if i not in bad]  # every good one once, in order
    assert failed == sorted(bad)
    assert waits == 0
    if not bad:
        assert commits == 1  # the common case costs nothing extra
    if len(bad) == 1 and n > 1:
        assert commits <= 2 * n.bit_length() + 1


def test_transient_failure_retries_the_same_part_never_splits() -> None:
    committed, failed, waits, commits = _run(list(range(50)), set(), locked_first=3)
    assert committed == [list(range(50))] and failed == [] and waits == 3 and commits == 4


def test_transient_during_a_split_retries_that_part_only() -> None:
    calls: list[list[int]] = []
    state = {"locked_once": False}

    async def commit(part: Sequence[int]) -> int:
        calls.append(list(part))
        if 3 in part:
            raise Poison("3")
        if part == [4, 5] and not state["locked_once"]:
            state["locked_once"] = True
            raise Locked("busy")
        return len(part)

    async def wait(_exc: Exception) -> None:
        return None

    out = asyncio.run(
        commit_isolating(list(range(6)), commit, lambda e: isinstance(e, Locked), wait)
    )
    assert [i for i, _ in out.failed] == [3]
    assert sum(out.results) == 5
    assert calls.count([4, 5]) == 2  # retried in place, nothing committed twice


def test_empty_batch_commits_nothing() -> None:
    assert _run([], set())[3] == 0


def test_real_sqlite_errors_are_classified(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER PRIMARY KEY CHECK (x > 0))")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("BEGIN IMMEDIATE")
    assert is_transient_error(locked.value), locked.value
    holder.execute("ROLLBACK")
    with pytest.raises(sqlite3.IntegrityError) as check:
        other.execute("INSERT INTO t VALUES (-1)")
    assert not is_transient_error(check.value)
    with pytest.raises(OverflowError) as overflow:
        other.execute("INSERT INTO t VALUES (?)", (2**64,))
    assert not is_transient_error(overflow.value)
    with pytest.raises(sqlite3.OperationalError) as syntax:
        other.execute("INSERT INTO nope VALUES (1)")
    assert not is_transient_error(syntax.value)
    other.execute("CREATE TABLE big (b BLOB)")
    other.execute("PRAGMA max_page_count = 8")  # a full disk, as SQLite reports it
    with pytest.raises(sqlite3.OperationalError) as full:
        other.execute("INSERT INTO big VALUES (zeroblob(100000))")
    assert getattr(full.value, "sqlite_errorname", "") == "SQLITE_FULL"
    assert is_transient_error(full.value)
    assert not is_transient_error(ValueError("database is locked"))
    holder.close()
    other.close()
