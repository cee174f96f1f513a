"""The alert engine as the API uses it (mode changes, answers, manual escalation): the
same load → decide → save service as the bridge and the scheduler."""

from __future__ import annotations

from collections.abc import Sequence

from api.timefmt import now_us
from core.engine import Input
from core.settings import Settings
from core.storage.alert_state import Evaluated, build_config, evaluate
from core.storage.port import Conn
from core.timeutil import from_us


async def run_engine(
    conn: Conn, settings: Settings, household_id: str, inputs: Sequence[Input]
) -> Evaluated:
    """The engine over one household in the request's write transaction, stamped now."""
    return await evaluate(conn, [household_id], inputs, build_config(settings), from_us(now_us()))
