"""The sensors' broker clients, kept in step with the database without a broker call
inside a database transaction (schema v6 `broker_state`).

Provisioning commits the sensor as `pending`, then creates the broker client, then marks it
`active`; retiring commits it retired (`deleting`: the bridge refuses its messages from that
commit on), then deletes the broker client, then marks it `deleted`. A crash or a broker
outage in between leaves `pending` or `deleting`: a retry of the same request completes it,
and `sweep` (a scheduler job) does when nobody retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.broker.dynsec import DynsecAdmin
from core.storage import audit
from core.storage import sensors as sensor_store
from core.storage.port import Store

log = logging.getLogger("ansim.sensor_broker")


def _now_us() -> int:
    return time.time_ns() // 1000


async def finish_deletes(db: Store, admin: DynsecAdmin, sensor_ids: Iterable[str]) -> list[str]:
    """Delete the broker clients of retired (`deleting`) sensors, each marked `deleted` in a
    short transaction of its own once the broker confirmed. Raises on the first broker
    failure (what was done so far stays done)."""
    done: list[str] = []
    for sensor_id in sensor_ids:
        await admin.delete_sensor(sensor_id)
        async with db.write() as conn:
            await sensor_store.set_broker_state(conn, sensor_id, "deleting", "deleted", _now_us())
        done.append(sensor_id)
    return done


@dataclass(slots=True)
class SweepResult:
    abandoned: list[str] = field(default_factory=list)  # stale `pending`: retired, client deleted
    deleted: list[str] = field(default_factory=list)  # retired: broker client now deleted
    failed: dict[str, str] = field(default_factory=dict)  # sensor_id → broker error

    def to_dict(self) -> dict[str, object]:
        return {"abandoned": self.abandoned, "deleted": self.deleted, "failed": self.failed}


async def sweep(db: Store, admin: DynsecAdmin, pending_timeout_s: float) -> SweepResult:
    """Complete what a crash or an outage left half done: a sensor `pending` for longer than
    `pending_timeout_s` (its provisioning answer was never given, nobody retried) is retired
    as `provisioning_abandoned` (its id stays taken) and loses its broker client if it got
    one; a retired sensor still `deleting` loses its broker client. Every database step is a
    short transaction of its own, every broker call outside them. A broker failure on one
    sensor is reported and the rest go on (the next run tries again)."""
    result = SweepResult()
    pending, deleting = await sensor_store.broker_work(
        db.reader, _now_us() - int(pending_timeout_s * 1e6)
    )
    for sensor_id in pending:
        now = _now_us()
        async with db.write() as conn:
            state = await sensor_store.get_broker_state(conn, sensor_id)
            if not await sensor_store.abandon_pending(
                conn, sensor_id, now - int(pending_timeout_s * 1e6), now
            ):
                continue  # a retry renewed or completed it meanwhile
            await audit.record(conn, now, "scheduler", "sensor.provision_abandoned", sensor_id,
                               {"household_id": state.household_id if state else None})  # fmt: skip
        result.abandoned.append(sensor_id)
        deleting.append(sensor_id)
    for sensor_id in deleting:
        try:
            result.deleted += await finish_deletes(db, admin, [sensor_id])
        except Exception as exc:  # reported; the next run tries again
            result.failed[sensor_id] = str(exc)
    if result.abandoned or result.deleted or result.failed:
        log.info("sensor broker sweep", extra=result.to_dict())
    return result
