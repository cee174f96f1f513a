"""The dead-letter store, for operators: what broke the wire contract, and why."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import DbDep, Operator
from api.params import id_query
from api.timefmt import fmt_us
from core.storage.dead_letters import (
    count_dead_letters,
    count_suppressed,
    list_dead_letters,
    list_suppressed,
)

router = APIRouter(prefix="/api/v1/dead-letters", tags=["dead letters"])

SUPPRESSED_SHOWN = 20  # newest tallies of dead letters only counted, over the cap


@router.get("")
async def get_dead_letters(
    *,
    db: DbDep,
    _operator: Operator,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    sensor_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[int | None, id_query(description="dead_letter_id to continue below")],
) -> dict[str, Any]:
    rows = await list_dead_letters(db.reader, limit + 1, reason, sensor_id, cursor)
    page = rows[:limit]
    for r in page:
        r["received_at"] = fmt_us(r.pop("received_us"))
    return {
        "data": page,
        "count": len(page),
        "next_cursor": page[-1]["dead_letter_id"] if len(rows) > limit else None,
        "totals_by_reason": await count_dead_letters(db.reader),
        # over the per-sensor cap: counted per sensor and window, payloads not kept
        "suppressed_total": await count_suppressed(db.reader),
        "suppressed": [
            _tally_public(t) for t in await list_suppressed(db.reader, SUPPRESSED_SHOWN, sensor_id)
        ],
    }


def _tally_public(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "sensor_id": t["sensor_id"],
        "topic": t["topic"],
        "window_start_at": fmt_us(t["window_start_us"]),
        "stored": t["stored"],
        "suppressed": t["suppressed"],
        "first_at": fmt_us(t["first_us"]),
        "last_at": fmt_us(t["last_us"]),
        "last_reason": t["last_reason"],
        "last_detail": t["last_detail"],
    }
