"""Ground truth: one JSON line per injected incident or fault.

A record says what was done to which household (`household_key`, and once the publisher
has enrolled the fleet, the real `household_id` and `sensor_id`), when (`at`, event time;
`end_at` for faults that last), which alert a correct backend must raise
(`expected_alert`, or null), which alerts it explains (`explains`: such alerts are not
false alarms), and how the backend should handle it otherwise (`handling`, e.g.
`dead_letter:oversize`, `duplicate_dropped`, `acl_denied`).

Matching windows (`match_from_s`, `match_to_s`) are offsets from `at` within which an
alert's `event_ts` must fall to be tied to the record; `due_s` is how long after `at` the
rule may legitimately wait before alerting (the 30 s entry delay for an intrusion, the
10 min limit for a door left open, three missed heartbeats for a jammed sensor). The
publisher may add `sent_at`, the wall-clock time it published the triggering message,
which scoring uses for latency. See `simulator.scoring` for the matching rule.

Example line:

    {"record_id": "inj-00003", "kind": "night_intrusion", "household_key": "hh-00002",
     "at": "2026-11-18T02:41:07.120+09:00", "end_at": "2026-11-18T02:41:52.000+09:00",
     "expected_alert": "intrusion", "explains": ["intrusion", "night_opening"],
     "due_s": 30.0, "match_from_s": -5.0, "match_to_s": 120.0, "handling": "alert",
     "household_id": null, "sensor_id": null, "sent_at": null, "detail": {"mode": "night"}}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from core.models import AlertKind

INCIDENT = "incident"
FAULT = "fault"


class TruthError(ValueError):
    """A ground-truth line that cannot be read; `line` is 1-based (0: not from a file)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass(frozen=True, slots=True)
class TruthRecord:
    record_id: str
    kind: str
    household_key: str
    at: datetime
    category: str = FAULT  # "incident" or "fault"
    end_at: datetime | None = None
    expected_alert: AlertKind | None = None
    explains: tuple[AlertKind, ...] = ()
    due_s: float = 0.0
    match_from_s: float = -5.0
    match_to_s: float = 120.0
    handling: str = ""
    household_id: str | None = None
    sensor_id: str | None = None
    sent_at: datetime | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise TruthError(f"{self.record_id}: `at` must be timezone-aware")
        if self.expected_alert is not None and self.expected_alert not in self.explains:
            object.__setattr__(self, "explains", (*self.explains, self.expected_alert))

    @property
    def is_incident(self) -> bool:
        """Something a correct backend must alert on."""
        return self.expected_alert is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "kind": self.kind,
            "category": self.category,
            "household_key": self.household_key,
            "at": _ts(self.at),
            "end_at": _ts(self.end_at),
            "expected_alert": None if self.expected_alert is None else str(self.expected_alert),
            "explains": [str(k) for k in self.explains],
            "due_s": self.due_s,
            "match_from_s": self.match_from_s,
            "match_to_s": self.match_to_s,
            "handling": self.handling,
            "household_id": self.household_id,
            "sensor_id": self.sensor_id,
            "sent_at": _ts(self.sent_at),
            "detail": dict(self.detail),
        }

    @classmethod
    def from_dict(cls, data: object, line: int = 0) -> TruthRecord:
        if not isinstance(data, dict):
            raise TruthError("a truth record must be a JSON object", line)
        try:
            record_id = _str(data, "record_id")
            expected = data.get("expected_alert")
            explains = data.get("explains", [])
            if not isinstance(explains, list):
                raise TruthError("`explains` must be a list", line)
            detail = data.get("detail", {})
            if not isinstance(detail, dict):
                raise TruthError("`detail` must be an object", line)
            at = _parse_ts(data.get("at"), "at")
            if at is None:
                raise TruthError("`at` is required", line)
            return cls(
                record_id=record_id,
                kind=_str(data, "kind"),
                household_key=_str(data, "household_key"),
                at=at,
                category=str(data.get("category", FAULT)),
                end_at=_parse_ts(data.get("end_at"), "end_at"),
                expected_alert=None if expected is None else AlertKind(expected),
                explains=tuple(AlertKind(k) for k in explains),
                due_s=float(data.get("due_s", 0.0)),
                match_from_s=float(data.get("match_from_s", -5.0)),
                match_to_s=float(data.get("match_to_s", 120.0)),
                handling=str(data.get("handling", "")),
                household_id=_opt_str(data, "household_id"),
                sensor_id=_opt_str(data, "sensor_id"),
                sent_at=_parse_ts(data.get("sent_at"), "sent_at"),
                detail=detail,
            )
        except TruthError as exc:
            if exc.line or not line:
                raise
            raise TruthError(str(exc), line) from None
        except (ValueError, TypeError) as exc:
            raise TruthError(str(exc), line) from None


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def _parse_ts(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise TruthError(f"`{name}` is not an RFC 3339 time: {value!r}") from None
    else:
        raise TruthError(f"`{name}` must be a string")
    if parsed.tzinfo is None:
        raise TruthError(f"`{name}` must carry a UTC offset")
    return parsed


def _str(data: Mapping[str, object], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise TruthError(f"`{name}` must be a non-empty string")
    return value


def _opt_str(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TruthError(f"`{name}` must be a string or null")
    return value


def dumps_record(record: TruthRecord) -> str:
    return json.dumps(record.to_dict(), ensure_ascii=False, separators=(",", ":"))


class TruthWriter:
    """Appends records as JSON lines, flushing each so a crashed run keeps what it did."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._mode = "a" if append else "w"
        self.count = 0

    def __enter__(self) -> TruthWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open(self._mode, encoding="utf-8")
        return self

    def write(self, record: TruthRecord) -> None:
        if self._file is None:
            raise RuntimeError("TruthWriter is not open: use it as a context manager")
        self._file.write(dumps_record(record) + "\n")
        self._file.flush()
        self.count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_truth(path: str | Path, records: Iterable[TruthRecord]) -> int:
    with TruthWriter(path) as writer:
        for record in records:
            writer.write(record)
        return writer.count


def iter_truth(lines: Iterable[str]) -> Iterator[TruthRecord]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TruthError(f"not JSON: {exc.msg}", number) from None
        yield TruthRecord.from_dict(data, number)


def read_truth(path: str | Path) -> list[TruthRecord]:
    with Path(path).open(encoding="utf-8") as f:
        return list(iter_truth(f))


def bind_ids(
    records: Iterable[TruthRecord], ids: Mapping[str, tuple[str, str]]
) -> list[TruthRecord]:
    """Fill `household_id` and `sensor_id` from `{household_key: (household_id,
    sensor_id)}` once the fleet is enrolled; an impersonation's target gets
    `detail.target_household_id` / `detail.target_sensor_id` the same way."""
    out = []
    for r in records:
        hh, sensor = ids.get(r.household_key, (r.household_id, r.sensor_id))
        detail = dict(r.detail)
        target = detail.get("target_household_key")
        if isinstance(target, str) and target in ids:
            detail["target_household_id"], detail["target_sensor_id"] = ids[target]
        out.append(replace(r, household_id=hh, sensor_id=sensor, detail=detail))
    return out


def with_sent_at(
    records: Iterable[TruthRecord], sent_at: Mapping[str, datetime]
) -> list[TruthRecord]:
    """Stamp each record with the wall-clock time its triggering message went out."""
    return [
        replace(r, sent_at=sent_at[r.record_id]) if r.record_id in sent_at else r for r in records
    ]
