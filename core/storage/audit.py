"""The audit trail: who did what, when."""

from __future__ import annotations

import json
from typing import Any

from core.storage.port import Conn


async def record(
    conn: Conn,
    now_us: int,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at_us, actor, action, target, detail) VALUES (?,?,?,?,?)",
        (now_us, actor, action, target, json.dumps(detail or {}, ensure_ascii=False)),
    )
