"""The alert engine as the API uses it (mode changes, answers, manual escalation)."""

from __future__ import annotations

import aiosqlite

from api.timefmt import now_us
from core.settings import Settings
from core.storage.alerting import AlertEngine, build_policy


def alert_engine(conn: aiosqlite.Connection, settings: Settings) -> AlertEngine:
    policy = build_policy(
        entry_delay_s=settings.entry_delay_s,
        door_left_open_s=settings.door_left_open_s,
        escalation_delay_s=settings.escalation_delay_s,
        battery_low_pct=settings.battery_low_pct,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        offline_grace_s=settings.offline_grace_s,
    )
    return AlertEngine(conn, policy, settings.centre_webhook_url, now_us())
