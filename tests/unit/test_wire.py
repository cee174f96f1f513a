from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.errors import WireError
from core.models import EventType
from core.wire import encode_event, parse_event, parse_status, parse_topic, sensor_id_hint

SEOUL = timezone(timedelta(hours=9))


def test_spec_example_parses() -> None:
    e = parse_event(
        b'{"boot": 7, "seq": 1042, "ts": "2026-11-21T23:14:05.120+09:00", "type": "open",'
        b' "battery": 87, "rssi": -61}'
    )
    assert (e.boot, e.seq, e.type, e.battery, e.rssi) == (7, 1042, EventType.OPEN, 87, -61)
    assert e.ts == datetime(2026, 11, 21, 14, 14, 5, 120000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "bad_json"),
        (b"{", "bad_json"),
        (b"null", "bad_json"),
        (b'"open"', "bad_json"),
        (b"\xc3\x28", "bad_encoding"),
        (b'{"seq":1,"ts":"2026-11-21T23:14:05Z","type":"open"}', "missing_field"),
        (b'{"boot":1,"seq":1,"type":"open"}', "missing_field"),
        (b'{"boot":-1,"seq":1,"ts":"2026-11-21T23:14:05Z","type":"open"}', "invalid_field"),
        (b'{"boot":1.5,"seq":1,"ts":"2026-11-21T23:14:05Z","type":"open"}', "invalid_field"),
        (b'{"boot":true,"seq":1,"ts":"2026-11-21T23:14:05Z","type":"open"}', "invalid_field"),
        (b'{"boot":1,"seq":"2","ts":"2026-11-21T23:14:05Z","type":"open"}', "invalid_field"),
        (b'{"boot":1,"seq":1,"ts":"2026-11-21 23:14","type":"open"}', "invalid_field"),
        (b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05","type":"open"}', "invalid_field"),
        (b'{"boot":1,"seq":1,"ts":1700000000,"type":"open"}', "invalid_field"),
        (b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05Z","type":"ajar"}', "unknown_type"),
        (b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05Z","type":3}', "unknown_type"),
        (
            b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05Z","type":"open","battery":101}',
            "invalid_field",
        ),
        (
            b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05Z","type":"open","rssi":"weak"}',
            "invalid_field",
        ),
        (
            b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05Z","type":"open","x":"'
            + b"a" * 1024
            + b'"}',
            "oversize",
        ),
    ],
)
def test_invalid_payloads_name_their_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as info:
        parse_event(payload)
    assert info.value.reason == reason
    assert info.value.detail


def test_exactly_1_kib_is_accepted() -> None:
    base = b'{"boot":1,"seq":1,"ts":"2026-11-21T23:14:05Z","type":"open","pad":""}'
    padded = base.replace(b'"pad":""', b'"pad":"' + b"a" * (1024 - len(base)) + b'"')
    assert len(padded) == 1024
    assert parse_event(padded).seq == 1


def test_encode_round_trips() -> None:
    ts = datetime(2026, 11, 21, 23, 14, 5, 120000, tzinfo=SEOUL)
    e = parse_event(encode_event(7, 1042, ts, EventType.TAMPER, battery=5, rssi=-90))
    assert (e.boot, e.seq, e.ts, e.type, e.battery, e.rssi) == (
        7,
        1042,
        ts,
        EventType.TAMPER,
        5,
        -90,
    )
    with pytest.raises(ValueError, match="aware"):
        encode_event(1, 1, datetime(2026, 1, 1), EventType.OPEN)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("ansim/v1/sensors/door-1/event", ("door-1", "event")),
        ("ansim/v1/sensors/s-abc123/status", ("s-abc123", "status")),
    ],
)
def test_topics(topic: str, expected: tuple[str, str]) -> None:
    t = parse_topic(topic)
    assert (t.sensor_id, t.kind) == expected


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("ansim/v2/sensors/door-1/event", "unknown_topic"),
        ("ansim/v1/sensors/door-1/config", "unknown_topic"),
        ("ansim/v1/sensors/door-1/event/x", "unknown_topic"),
        ("ansim/v1/sensors/Door_1/event", "bad_sensor_id"),
        ("ansim/v1/sensors/ab/event", "bad_sensor_id"),
    ],
)
def test_bad_topics(topic: str, reason: str) -> None:
    with pytest.raises(WireError) as info:
        parse_topic(topic)
    assert info.value.reason == reason


def test_sensor_id_hint() -> None:
    assert sensor_id_hint("ansim/v1/sensors/door-1/config") == "door-1"
    assert sensor_id_hint("other/topic") is None


def test_status_payloads() -> None:
    assert parse_status(b"online") == "online"
    assert parse_status(b"offline") == "offline"
    assert parse_status(b"") is None
    with pytest.raises(WireError):
        parse_status(b"sleepy")


@pytest.mark.parametrize(
    "ts",
    [
        "9999-12-31T23:59:59-12:00",  # past year 9999 once in UTC: OverflowError before
        "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
        "1899-12-31T23:59:59Z",
        "3000-01-01T00:00:01Z",
    ],
)
def test_ts_out_of_range_is_an_invalid_field(ts: str) -> None:
    raw = json.dumps({"boot": 1, "seq": 0, "ts": ts, "type": "open", "battery": 87}).encode()
    with pytest.raises(WireError) as caught:
        parse_event(raw)
    assert caught.value.reason == "invalid_field"
    assert "out of range" in str(caught.value)


def test_lone_surrogate_in_a_reason_is_printable() -> None:
    raw = b'{"boot": 1, "seq": 0, "ts": "\\ud800", "type": "open", "battery": 87}'
    with pytest.raises(WireError) as caught:
        parse_event(raw)
    str(caught.value).encode("utf-8")  # storable and loggable: no lone surrogate left


def test_from_us_clamps_instead_of_raising() -> None:
    from core.timeutil import from_us, to_us

    huge = to_us(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) + 10**12
    assert from_us(huge, -12 * 60).year == 9999
    assert from_us(-(10**18), 14 * 60).year == 1
