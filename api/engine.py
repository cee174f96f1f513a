"""The alert engine as the API uses it (mode changes, answers, manual escalation)."""

from __future__ import annotations

import aiosqlite

from api.timefmt import now_us
from core.settings import Settings
from core.storage.alerting import AlertEngine, build_policy


def alert_engine(conn: aiosqlite.Connection, settings: Settings) -> AlertEngine:
    return AlertEngine(conn, build_policy(settings), settings.centre_webhook_url, now_us())
