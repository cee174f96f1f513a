"""Street segments: importing the checked features (upsert, with the base-grade history),
reading them back, and tying households to their nearest segment."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from core.geo import Segment, SegmentIndex
from core.storage.port import Conn


@dataclass(frozen=True, slots=True)
class ImportResult:
    import_id: int
    features: int
    added: int
    changed: int
    unchanged: int
    rejected: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coords_json(seg: Segment) -> str:
    return json.dumps([list(p) for p in seg.coords], separators=(",", ":"))


def _midpoint(seg: Segment) -> tuple[float, float]:
    """(lat, lon) of the middle vertex pair; street segments are 10 m, this is plenty."""
    n = len(seg.coords)
    a, b = seg.coords[(n - 1) // 2], seg.coords[n // 2]
    return round((a[1] + b[1]) / 2, 6), round((a[0] + b[0]) / 2, 6)


async def import_segments(
    conn: Conn,
    segments: Sequence[Segment],
    *,
    actor: str,
    now_us: int,
    rejected: int,
    features: int,
) -> ImportResult:
    """Upsert `segments` (inside the caller's write transaction). A segment whose base
    grade changes gets a row in `segment_base_changes`; segments not in the import stay."""
    existing: dict[str, tuple[int, str | None, str]] = {}
    async with conn.execute("SELECT segment_id, base_grade, dong, coords FROM segments") as cur:
        for r in await cur.fetchall():
            existing[r[0]] = (r[1], r[2], r[3])
    cur2 = await conn.execute(
        "INSERT INTO segment_imports (imported_us, actor, features, added, changed, unchanged,"
        " rejected) VALUES (?,?,?,0,0,0,?) RETURNING import_id",
        (now_us, actor, features, rejected),
    )
    import_id = int((await cur2.fetchone())[0])
    upserts: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    added = changed = unchanged = 0
    for seg in segments:
        coords = _coords_json(seg)
        old = existing.get(seg.segment_id)
        if old is None:
            added += 1
            history.append((import_id, seg.segment_id, None, seg.base_grade))
        elif old == (seg.base_grade, seg.dong, coords):
            unchanged += 1
            continue
        else:
            changed += 1
            if old[0] != seg.base_grade:
                history.append((import_id, seg.segment_id, old[0], seg.base_grade))
        lat, lon = _midpoint(seg)
        upserts.append(
            (seg.segment_id, seg.base_grade, seg.dong, coords, lat, lon, import_id, now_us)
        )
    await conn.executemany(
        "INSERT INTO segments (segment_id, base_grade, dong, coords, mid_lat, mid_lon,"
        " import_id, updated_us) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (segment_id) DO UPDATE"
        " SET base_grade = excluded.base_grade, dong = excluded.dong, coords = excluded.coords,"
        " mid_lat = excluded.mid_lat, mid_lon = excluded.mid_lon,"
        " import_id = excluded.import_id, updated_us = excluded.updated_us",
        upserts,
    )
    await conn.executemany(
        "INSERT INTO segment_base_changes (import_id, segment_id, old_base_grade,"
        " new_base_grade) VALUES (?,?,?,?) ON CONFLICT (segment_id, import_id) DO UPDATE"
        " SET old_base_grade = excluded.old_base_grade, new_base_grade = excluded.new_base_grade",
        history,
    )
    await conn.execute(
        "UPDATE segment_imports SET added = ?, changed = ?, unchanged = ? WHERE import_id = ?",
        (added, changed, unchanged, import_id),
    )
    return ImportResult(import_id, features, added, changed, unchanged, rejected)


async def segments_version(conn: Conn) -> int:
    """The id of the latest import (0 before any): the segment set changes only with it."""
    async with conn.execute("SELECT COALESCE(MAX(import_id), 0) FROM segment_imports") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def load_segments(conn: Conn) -> tuple[int, list[Segment]]:
    """(version, every segment in id order)."""
    version = await segments_version(conn)
    async with conn.execute(
        "SELECT segment_id, base_grade, coords, dong FROM segments ORDER BY segment_id"
    ) as cur:
        rows = await cur.fetchall()
    loads = json.loads
    segs = [
        Segment(r[0], int(r[1]), tuple((float(p[0]), float(p[1])) for p in loads(r[2])), r[3])
        for r in rows
    ]
    return version, segs


async def list_imports(conn: Conn, limit: int = 20) -> list[dict[str, Any]]:
    async with conn.execute(
        "SELECT import_id, imported_us, actor, features, added, changed, unchanged, rejected"
        " FROM segment_imports ORDER BY import_id DESC LIMIT ?",
        (limit,),
    ) as cur:
        rows = await cur.fetchall()
    keys = ("import_id", "imported_us", "actor", "features", "added", "changed", "unchanged",
            "rejected")  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def snap_unassigned_households(conn: Conn, index: SegmentIndex) -> int:
    """Tie enrolled households that have no segment yet (enrolled before any import) to
    their nearest segment within the snap limit. Returns how many were tied."""
    async with conn.execute(
        "SELECT household_id, lat, lon FROM households"
        " WHERE segment_id IS NULL AND unenrolled_us IS NULL"
    ) as cur:
        rows = await cur.fetchall()
    if not rows or len(index) == 0:
        return 0
    idx, _ = index.nearest_many([r[1] for r in rows], [r[2] for r in rows])
    updates = [
        (index.segment_ids[int(i)], r[0]) for r, i in zip(rows, idx.tolist(), strict=True) if i >= 0
    ]
    await conn.executemany("UPDATE households SET segment_id = ? WHERE household_id = ?", updates)
    return len(updates)


async def segment_exists(conn: Conn, segment_id: str) -> bool:
    async with conn.execute("SELECT 1 FROM segments WHERE segment_id = ?", (segment_id,)) as cur:
        return await cur.fetchone() is not None
