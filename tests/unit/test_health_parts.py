"""How /healthz judges one service from its last heartbeat (pure logic)."""

from __future__ import annotations

import json

from api.routes.health import _service
from core.storage.heartbeats import Heartbeat

NOW = 1_000_000_000_000


def beat(age_s: float, **detail: object) -> Heartbeat:
    return Heartbeat("bridge", NOW - int(age_s * 1e6), 42, json.dumps(detail) if detail else None)


def test_service_states() -> None:
    assert _service(None, NOW, 30, 10).status == "down"
    ok = _service(beat(2.04, connected=True, pending=0, stalled_s=0), NOW, 30, 10)
    assert ok.status == "ok" and ok.age_s == 2.0 and ok.reason is None
    assert _service(beat(1), NOW, 30, 10).status == "ok"  # notifier/scheduler: no detail
    stale = _service(beat(31, connected=True), NOW, 30, 10)
    assert stale.status == "stale" and stale.age_s == 31 and "30 s" in (stale.reason or "")
    stopped = _service(beat(1, state="stopped"), NOW, 30, 10)
    assert stopped.status == "down" and stopped.reason == "stopped"
    offline = _service(beat(1, connected=False), NOW, 30, 10)
    assert offline.status == "down" and "broker" in (offline.reason or "")
    stalled = _service(beat(1, connected=True, pending=300, stalled_s=45.5), NOW, 30, 10)
    assert stalled.status == "down" and "45.5 s" in (stalled.reason or "")
    garbage = Heartbeat("bridge", NOW, 42, "not json")
    assert _service(garbage, NOW, 30, 10).status == "ok"


def test_a_bridge_behind_is_degraded_not_down() -> None:
    behind = _service(
        beat(1, connected=True, pending=500, stalled_s=0, oldest_pending_s=12.5), NOW, 30, 10
    )
    assert behind.status == "degraded" and "12.5 s" in (behind.reason or "")
    assert _service(beat(1, connected=True, oldest_pending_s=3), NOW, 30, 10).status == "ok"
