from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.ingest import RawMessage, SensorRef, classify_batch, summarise_sensors
from core.models import EventType, NightWindow, TimeMode
from core.timeutil import resolve_event_time, to_us
from core.wire import encode_event

NOW = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
REF = SensorRef(1, "door-1", "hh-1", retired=False, last_heartbeat=(1, 3))
SENSORS = {"door-1": REF, "old-door": SensorRef(2, "old-door", "hh-1", retired=True)}


def msg(
    seq: int, type_: str = "open", sensor: str = "door-1", skew_s: float = 0, boot: int = 1
) -> RawMessage:
    ts = NOW + timedelta(seconds=skew_s)
    payload = encode_event(boot, seq, ts, type_, battery=50)
    return RawMessage(f"ansim/v1/sensors/{sensor}/event", payload, to_us(NOW))


def test_classify_sorts_events_heartbeats_statuses_and_dead_letters() -> None:
    batch = [
        msg(1),
        msg(2, "heartbeat"),
        msg(3, "heartbeat"),  # same (boot, seq) as the last stored heartbeat: duplicate
        msg(2, "heartbeat"),  # repeated within the batch: duplicate
        msg(4, sensor="old-door"),
        msg(5, sensor="ghost-door"),
        RawMessage("ansim/v1/sensors/door-1/status", b"offline", to_us(NOW)),
        RawMessage("ansim/v1/sensors/door-1/status", b"", to_us(NOW)),
        RawMessage("ansim/v1/sensors/door-1/event", b"{}", to_us(NOW)),
    ]
    c = classify_batch(batch, SENSORS, TimeMode.LIVE, 120)
    assert [e.seq for e in c.events] == [1]
    assert [h.seq for h in c.heartbeats] == [2]
    assert [h.seq for h in c.heartbeat_duplicates] == [3, 2]
    assert [s.status for s in c.statuses] == ["offline"]
    assert sorted(d.reason for d in c.dead) == ["missing_field", "retired_sensor", "unknown_sensor"]
    assert {d.sensor_id for d in c.dead} == {"door-1", "old-door", "ghost-door"}


def test_skew_in_live_mode_uses_receive_time_and_replay_trusts_device() -> None:
    live = classify_batch([msg(1, skew_s=3600)], SENSORS, TimeMode.LIVE, 120).events[0]
    assert live.skewed and live.event_us == to_us(NOW) and live.skew_s == 3600
    small = classify_batch([msg(1, skew_s=90)], SENSORS, TimeMode.LIVE, 120).events[0]
    assert not small.skewed and small.event_us == to_us(NOW) + 90_000_000
    replay = classify_batch([msg(1, skew_s=-86400 * 30)], SENSORS, TimeMode.REPLAY, 120).events[0]
    assert not replay.skewed and replay.skew_s is None and replay.event_us == replay.device_us


def test_resolve_event_time_boundary() -> None:
    assert not resolve_event_time(120_000_000, 0, TimeMode.LIVE, 120).skewed
    assert resolve_event_time(120_000_001, 0, TimeMode.LIVE, 120).skewed
    assert resolve_event_time(-120_000_001, 0, TimeMode.LIVE, 120).skewed


def test_summarise_counts_stored_duplicates_and_newest_battery() -> None:
    c = classify_batch(
        [msg(1), msg(1), msg(2), msg(7, "tamper"), msg(8, "heartbeat")],
        SENSORS,
        TimeMode.REPLAY,
        120,
    )
    stored = {(1, 1, 1), (1, 1, 2), (1, 1, 7)}
    (u,) = summarise_sensors([*c.events, *c.heartbeats], stored, {h.key for h in c.heartbeats})
    assert (u.stored, u.duplicates, u.heartbeats) == (3, 1, 1)
    assert u.last_boot_seq == (1, 8) and u.last_heartbeat == (1, 8)
    assert u.tamper_us == to_us(NOW)


def test_night_window_crosses_midnight() -> None:
    w = NightWindow.parse("23:00-06:00")
    assert w.contains(datetime(2026, 1, 1, 23, 30).time())
    assert w.contains(datetime(2026, 1, 1, 3, 0).time())
    assert not w.contains(datetime(2026, 1, 1, 6, 0).time())
    assert not w.contains(datetime(2026, 1, 1, 12, 0).time())
    day = NightWindow.parse("01:00-05:00")
    assert day.contains(datetime(2026, 1, 1, 1, 0).time()) and not day.contains(
        datetime(2026, 1, 1, 23, 0).time()
    )
    assert str(w) == "23:00-06:00"
    assert EventType("heartbeat") is EventType.HEARTBEAT
