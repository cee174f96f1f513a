"""Isolate the items that make a batch commit fail, by splitting the batch in halves.

Pure: the commit, the test for a transient failure and the wait before retrying one are
passed in. A transient failure (a locked or full database) retries the same part, so a
part is never committed twice; any other failure splits the part until the failing
items stand alone. With k poisoned items among n, about 2·k·log2(n) extra commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Isolated(Generic[T, R]):
    """What came of a batch: the results of the parts that committed, in order, and each
    item that failed on its own with its exception."""

    results: list[R] = field(default_factory=list)
    failed: list[tuple[T, BaseException]] = field(default_factory=list)
    commits: int = 0


async def commit_isolating(
    items: Sequence[T],
    commit: Callable[[Sequence[T]], Awaitable[R]],
    is_transient: Callable[[Exception], bool],
    on_transient: Callable[[Exception], Awaitable[None]],
) -> Isolated[T, R]:
    """Commit `items` as one part; when that fails for a lasting reason, commit each half
    (first half first, so order is kept), down to single items. Never raises for a
    lasting failure of `commit`; a transient one is awaited with `on_transient` and the
    same part tried again."""
    out: Isolated[T, R] = Isolated()

    async def attempt(part: Sequence[T]) -> None:
        while True:
            out.commits += 1
            try:
                out.results.append(await commit(part))
                return
            except Exception as exc:
                if is_transient(exc):
                    await on_transient(exc)
                    continue
                if len(part) <= 1:
                    out.failed.extend((item, exc) for item in part)
                    return
            mid = len(part) // 2
            await attempt(part[:mid])
            await attempt(part[mid:])
            return

    if items:
        await attempt(items)
    return out
