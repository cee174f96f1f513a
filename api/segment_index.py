"""The API's in-process segment index: built once from the database, rebuilt when an
import changes the segment set (its version is the latest import id, checked per use)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from core.geo import Segment, SegmentIndex
from core.storage import segment_import
from core.storage.port import Store


@dataclass(frozen=True, slots=True)
class SegmentSnapshot:
    version: int
    index: SegmentIndex
    segments: tuple[Segment, ...]


class SegmentIndexCache:
    def __init__(self) -> None:
        self._snapshot: SegmentSnapshot | None = None
        self._lock = asyncio.Lock()

    async def get(self, db: Store) -> SegmentSnapshot:
        version = await segment_import.segments_version(db.reader)
        snap = self._snapshot
        if snap is not None and snap.version == version:
            return snap
        return await self.rebuild(db, version)

    async def rebuild(self, db: Store, at_least: int = 0) -> SegmentSnapshot:
        async with self._lock:
            snap = self._snapshot
            if snap is not None and snap.version >= at_least and at_least > 0:
                return snap
            version, segs = await segment_import.load_segments(db.reader)
            index = await asyncio.to_thread(SegmentIndex, segs)
            snap = SegmentSnapshot(version, index, tuple(segs))
            self._snapshot = snap
            return snap


def get_segment_cache(request: Request) -> SegmentIndexCache:
    cache: SegmentIndexCache | None = getattr(request.app.state, "segment_cache", None)
    if cache is None:
        cache = SegmentIndexCache()
        request.app.state.segment_cache = cache
    return cache


SegmentCacheDep = Annotated[SegmentIndexCache, Depends(get_segment_cache)]
