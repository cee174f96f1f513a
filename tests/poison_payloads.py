"""Every hostile value a sensor can put on its event topic (shared by the poison tests)."""

from __future__ import annotations

import json

_TS = "2026-11-21T23:14:05.120+09:00"


def _event(**fields: object) -> bytes:
    body: dict[str, object] = {"boot": 1, "seq": 0, "ts": _TS, "type": "open"}
    body.update(fields)
    return json.dumps(body, separators=(",", ":")).encode()


def _raw(text: str) -> bytes:
    return text.encode()


EXTREME_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59.999999+14:00",
    "9999-12-31T23:59:59.999999Z",
    "1899-12-31T23:59:59.999999Z",
    "1900-01-01T00:00:00+14:00",
    "1900-01-01T00:00:00Z",
    "1900-01-01T00:00:00-12:00",
    "1970-01-01T00:00:00Z",
    "2999-12-31T23:59:59.999999Z",
    "2999-12-31T23:59:59-12:00",
    "3000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-12-31T23:59:60Z",
    "2026-11-21T23:14:05+24:00",
    "2026-11-21T23:14:05+23:59",
    "2026-11-21T23:14:05",
    "2026-11-21",
    "",
    "now",
    "２０２６-11-21T23:14:05Z",
]

HUGE = [2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30), 10**400]


def hostile_payloads() -> list[tuple[str, bytes]]:
    """(label, payload) pairs; the seq of each is unique where the payload has one."""
    out: list[tuple[str, bytes]] = []
    seq = 1000

    def add(label: str, payload: bytes) -> None:
        out.append((label, payload))

    def ev(label: str, **fields: object) -> None:
        nonlocal seq
        seq += 1
        add(label, _event(**({"seq": seq} | fields)))

    for ts in EXTREME_TIMES:
        ev(f"ts={ts!r}", ts=ts)
    for field in ("boot", "seq", "battery", "rssi"):
        for n in HUGE:
            ev(f"{field}={str(n)[:12]}", **{field: n})
        for wrong in ("1", True, 1.0, 1.5, [1], {"n": 1}, None, "", "\u0000"):
            ev(f"{field}={wrong!r}", **{field: wrong})
    for field, wrong in [
        ("ts", 1_763_733_245), ("ts", 10**400), ("ts", True), ("ts", None), ("ts", [_TS]),
        ("ts", {"iso": _TS}), ("type", 1), ("type", None), ("type", ["open"]), ("type", "OPEN"),
        ("type", "open\u0000"), ("type", "x" * 500), ("battery", -1), ("battery", 101),
        ("rssi", -201), ("rssi", 51),
    ]:  # fmt: skip
        ev(f"{field}={str(wrong)[:20]!r}", **{field: wrong})
    for field in ("boot", "seq", "battery", "rssi", "ts"):
        for lit in ("NaN", "Infinity", "-Infinity", "1e400", "-0", "1e2"):
            seq += 1
            body = _event(seq=seq, battery=50, rssi=-60).decode()
            body = body.replace(f'"{field}":', f'"{field}":{lit},"_was":', 1)
            add(f"{field}={lit}", body.encode())
    for field in ("boot", "seq", "ts", "type"):
        seq += 1
        body = json.loads(_event(seq=seq))
        del body[field]
        add(f"no {field}", json.dumps(body).encode())
    # structure
    add("null", b"null")
    add("true", b"true")
    add("number", b"42")
    add("string", b'"open"')
    add("array of an event", b"[" + _event(seq=1) + b"]")
    add("empty array", b"[]")
    add("empty object", b"{}")
    add("empty payload", b"")
    add("whitespace", b"   \n")
    add("deep nesting", b"[" * 400 + b"]" * 400)
    add("deep object", b'{"a":' * 150 + b"1" + b"}" * 150)
    seq += 1
    add("nested in a field", _event(seq=seq, extra={"a": {"b": [[[{"c": None}]]]}}))
    add("truncated", _event(seq=seq + 1)[:-5])
    add("trailing garbage", _event(seq=seq + 2) + b"garbage")
    add("two objects", _event(seq=seq + 3) + _event(seq=seq + 4))
    seq += 10
    # encodings
    add("invalid utf-8", b"\xff\xfe\xfd")
    add("invalid utf-8 in a string", _event(seq=seq).replace(b'"open"', b'"op\xc3\x28n"'))
    add("overlong utf-8", _event(seq=seq + 1).replace(b'"open"', b'"\xc0\xafopen"'))
    add("utf-16", _event(seq=seq + 2).decode().encode("utf-16"))
    add("bom", b"\xef\xbb\xbf" + _event(seq=seq + 3))
    add("nul byte", _event(seq=seq + 4) + b"\x00")
    seq += 10
    add("lone surrogate in type", _raw(_event(seq=seq).decode().replace('"open"', '"\\ud800"')))
    add(
        "lone surrogate in ts",
        _raw(_event(seq=seq + 1).decode().replace(_TS, "2026-11-21T23:14:05\\udc00Z")),
    )
    add("lone surrogate in key", _raw(_event(seq=seq + 2).decode().replace('"type"', '"\\udfff"')))
    add(
        "lone surrogate in an unknown field",
        _raw(_event(seq=seq + 3).decode()[:-1] + ',"note":"\\ud83d"}'),
    )
    add("surrogate pair", _raw(_event(seq=seq + 4).decode()[:-1] + ',"note":"\\ud83d\\ude00"}'))
    seq += 10
    # sizes
    add("60 KB", _event(seq=seq, pad="x" * 60_000))
    add("1025 bytes", _event(seq=seq + 1, pad="")[:-1] + b" " * 1024 + b"}")
    add("60 KB of digits", b'{"boot":' + b"9" * 60_000 + b"}")
    seq += 10
    # unknown fields, duplicate keys
    ev("unknown fields", colour="red", firmware={"v": [1, 2]}, __proto__={"x": 1})
    ev("unknown huge number", note=10**400)
    seq += 1
    add("duplicate key", _event(seq=seq)[:-1] + b',"type":"tamper"}')
    seq += 1
    add("duplicate key bad", _event(seq=seq)[:-1] + b',"boot":-5}')
    return out
