"""One active scheduler among several: leadership is the `scheduler` lease in the database.

Every scheduler process tries to take the lease; the one that holds it runs the jobs and
renews it every `ANSIM_SCHEDULER_RENEW_S`; the others stand by, trying again at the same
pace, and take it once it has gone `ANSIM_SCHEDULER_LEASE_S` without renewal (the leader
died or lost the database). A leader that cannot renew before its lease runs out stops its
jobs first (it fences itself) and goes back to standing by, so two leaders never run at
once as long as their clocks agree to within the lease minus the renewal period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from core.storage.leases import SCHEDULER_LEASE as LEASE
from core.storage.leases import acquire_lock, lock_holder, release_lock, renew_lock
from core.storage.port import Reader, Store

log = logging.getLogger("ansim.scheduler")


def _now_us() -> int:
    return time.time_ns() // 1000


class Leadership:
    def __init__(self, db: Store, holder: str, lease_s: float, renew_s: float) -> None:
        self.db = db
        self.holder = holder
        self.lease_us = int(lease_s * 1e6)
        self.renew_s = renew_s
        self.lost = asyncio.Event()

    async def _try(self) -> bool:
        async with self.db.write() as conn:
            taken, _who, _since = await acquire_lock(
                conn, LEASE, self.holder, _now_us(), self.lease_us
            )
        return taken

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Stand by until this process leads (True) or `stop` is set (False)."""
        said = False
        while not stop.is_set():
            try:
                if await self._try():
                    self.lost.clear()
                    log.info("leading: this scheduler runs the jobs", extra={"holder": self.holder})
                    return True
                if not said:
                    who = await leader(self.db.reader)
                    log.info("standing by", extra={"holder": self.holder, "leader": who})
                    said = True
            except Exception as exc:
                log.warning("leadership check failed; will retry", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.renew_s)
        return False

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew until `stop`; sets `lost` when the lease cannot be kept (taken by another,
        or not renewed in time because the database did not answer)."""
        deadline = time.monotonic() + self.lease_us / 1e6
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.renew_s)
            if stop.is_set():
                return
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    async with self.db.write() as conn:
                        kept = await renew_lock(conn, LEASE, self.holder, _now_us(), self.lease_us)
            except Exception as exc:
                kept = time.monotonic() < deadline - self.renew_s
                log.warning("lease renewal failed", extra={"error": repr(exc), "kept": kept})
                if kept:
                    continue
            if not kept:
                log.error(
                    "lost the scheduler lease: stopping the jobs", extra={"holder": self.holder}
                )
                self.lost.set()
                return
            deadline = time.monotonic() + self.lease_us / 1e6

    async def release(self) -> None:
        with contextlib.suppress(Exception):
            async with self.db.write() as conn:
                await release_lock(conn, LEASE, self.holder)


async def leader(reader: Reader) -> str | None:
    """The scheduler that leads now, if any."""
    return await lock_holder(reader, LEASE, _now_us())
