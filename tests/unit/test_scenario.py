"""Scenarios: parsing and validation, deterministic expansion, wire-ready plans, truth."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import WireError
from core.models import AlertKind, Mode
from core.wire import MAX_PAYLOAD_BYTES, parse_event
from simulator.personas import SEOUL, Household, build_fleet
from simulator.routines import ItemKind, Presence, build_routine
from simulator.scenario import (
    MALFORMED_VARIANTS,
    Injection,
    InjectionKind,
    PlanItem,
    Scenario,
    ScenarioError,
    expand_scenario,
    household_weeks,
    load_scenario,
    parse_duration,
    parse_scenario,
    plan_fleet,
    plan_household,
)
from simulator.truth import TruthError, TruthRecord, bind_ids, read_truth, write_truth

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
START = datetime(2026, 11, 2, tzinfo=SEOUL)
END = START + timedelta(days=14)
SEED = 7


@cache
def fleet(n: int = 10) -> tuple[Household, ...]:
    return tuple(build_fleet(n, SEED))


def scenario(*entries: dict[str, Any], section: str = "faults") -> Scenario:
    return parse_scenario({"name": "t", section: list(entries)})


def one(kind: str, section: str = "faults", **extra: Any) -> Injection:
    spec = {"kind": kind, "at": ["2026-11-05T14:00:00+09:00"], "households": ["hh-00002"]}
    ex = expand_scenario(scenario({**spec, **extra}, section=section), fleet(), SEED, START, END)
    assert len(ex.injections) == 1, ex.skipped
    return ex.injections[0]


def plan(*injections: Injection, key: str = "hh-00002") -> list[PlanItem]:
    h = next(h for h in fleet() if h.key == key)
    return list(plan_household(h, START, END, injections))


# --- parsing --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["quiet-month", "incident-month", "fault-storm"])
def test_shipped_scenarios_load_and_expand(name: str) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    assert sc.name == name
    ex = expand_scenario(sc, fleet(), SEED, START, END)
    if name == "quiet-month":
        assert ex.injections == ()
    else:
        assert ex.injections


def test_incident_month_covers_every_persona() -> None:
    sc = load_scenario(SCENARIOS / "incident-month.yaml")
    f = build_fleet(25, SEED)
    ex = expand_scenario(sc, f, SEED, START, START + timedelta(days=30))
    persona = {h.key: h.persona for h in f}
    hit = {persona[i.household_key] for i in ex.injections if i.expected_alert is not None}
    assert hit == {h.persona for h in f}
    kinds = Counter(i.kind for i in ex.injections)
    for k in ("night_intrusion", "away_intrusion", "door_left_open", "tamper"):
        assert kinds[InjectionKind(k)] > 0


def test_fault_storm_has_every_fault_kind() -> None:
    sc = load_scenario(SCENARIOS / "fault-storm.yaml")
    ex = expand_scenario(sc, build_fleet(20, SEED), SEED, START, START + timedelta(days=7))
    kinds = {i.kind for i in ex.injections}
    assert kinds >= {
        InjectionKind.POWER_LOSS,
        InjectionKind.JAMMING,
        InjectionKind.DYING_BATTERY,
        InjectionKind.DUPLICATE,
        InjectionKind.OUT_OF_ORDER,
        InjectionKind.CLOCK_SKEW,
        InjectionKind.MALFORMED,
        InjectionKind.OVERSIZE,
        InjectionKind.IMPERSONATION,
        InjectionKind.BROKER_DISCONNECT,
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("3d", 259200.0),
     ("1h30m", 5400.0), ("250ms", 0.25), ("1.5h", 5400.0)],
)  # fmt: skip
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_nonsense_and_signs_unless_asked() -> None:
    for bad in ("soon", "5 minutes", "", True, None, "-5m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_duration("-5m", signed=True) == -300.0


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([], "top level must be a mapping"),
        ({"incidents": []}, "name: required"),
        ({"name": "x", "extra": 1}, "extra: unknown top-level field"),
        ({"name": "x", "faults": {}}, "faults: must be a list"),
        ({"name": "x", "faults": ["power_loss"]}, "faults[0]: expected a mapping"),
        ({"name": "x", "faults": [{"kind": "meteor", "count": 1}]}, "unknown kind 'meteor'"),
        ({"name": "x", "faults": [{"kind": "tamper", "count": 1}]}, "belongs under `incidents`"),
        ({"name": "x", "incidents": [{"kind": "power_loss", "count": 1}]}, "under `faults`"),
        ({"name": "x", "faults": [{"kind": "power_loss"}]}, "exactly one of count"),
        (
            {"name": "x", "faults": [{"kind": "power_loss", "count": 1, "per_household_week": 1}]},
            "(got count, per_household_week)",
        ),
        ({"name": "x", "faults": [{"kind": "power_loss", "count": -1}]}, "faults[0].count"),
        (
            {"name": "x", "faults": [{"kind": "power_loss", "count": 1, "duration": "ages"}]},
            "faults[0].duration: expected a duration",
        ),
        (
            {"name": "x", "faults": [{"kind": "power_loss", "count": 1, "duration": ["2h", "1h"]}]},
            "range min '2h' is above max '1h'",
        ),
        (
            {"name": "x", "faults": [{"kind": "power_loss", "count": 1, "durtion": "1h"}]},
            "faults[0].durtion: unknown field for power_loss",
        ),
        (
            {"name": "x", "faults": [{"kind": "tamper", "at": "2026-11-05T14:00:00+09:00"}]},
            "belongs under `incidents`",
        ),
        (
            {"name": "x", "incidents": [{"kind": "tamper", "at": "2026-11-05T14:00:00+09:00"}]},
            "incidents[0].households: required with `at`",
        ),
        (
            {
                "name": "x",
                "incidents": [{"kind": "tamper", "at": "2026-11-05T14:00:00", "households": [1]}],
            },
            "needs a UTC offset",
        ),
        (
            {"name": "x", "incidents": [{"kind": "tamper", "count": 1, "personas": ["pirate"]}]},
            "unknown persona 'pirate'",
        ),
        (
            {"name": "x", "incidents": [{"kind": "tamper", "count": 1, "households": ["bob"]}]},
            "a household is a key like 'hh-00003'",
        ),
        (
            {"name": "x", "faults": [{"kind": "out_of_order", "count": 1, "events": 1}]},
            "at least 2",
        ),
        (
            {"name": "x", "faults": [{"kind": "clock_skew", "count": 1, "skew": ["-5m", "5m"]}]},
            "give one sign",
        ),
        ({"name": "x", "faults": [{"kind": "oversize", "count": 1, "size": 900}]}, "exceed 1024"),
        (
            {"name": "x", "faults": [{"kind": "malformed", "count": 1, "variant": "spicy"}]},
            "must be one of bad_json",
        ),
        (
            {"name": "x", "faults": [{"kind": "dying_battery", "count": 1, "to_percent": 30}]},
            "below 20",
        ),
        (
            {"name": "x", "incidents": [{"kind": "night_intrusion", "count": 1, "when": "noon"}]},
            "must be one of asleep, away, either",
        ),
    ],
)
def test_validation_errors_say_what_and_where(data: object, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "test.yaml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("test.yaml:")


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "name": "",
        "faults": [
            {"kind": "power_loss", "count": 0, "duration": "x"},
            {"kind": "meteor"},
            {"kind": "duplicate", "per_household_day": 1, "copies": 0},
        ],
    }
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert [p.split(":")[0] for p in problems] == [
        "name",
        "faults[0].duration",
        "faults[1].kind",
        "faults[2].copies",
    ]


def test_load_scenario_json_yaml_and_bad_files(tmp_path: Path) -> None:
    data = {"name": "j", "incidents": [{"kind": "tamper", "per_household_week": 0.5}]}
    (tmp_path / "s.json").write_text(json.dumps(data))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    assert load_scenario(tmp_path / "s.json") == load_scenario(tmp_path / "s.yaml")
    (tmp_path / "bad.yaml").write_text("name: x\nfaults: [\n")
    with pytest.raises(ScenarioError, match="not YAML"):
        load_scenario(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ScenarioError, match="not JSON"):
        load_scenario(tmp_path / "bad.json")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_yaml_timestamps_are_accepted() -> None:
    text = "name: y\nincidents:\n  - kind: tamper\n    at: 2026-11-05T14:00:00+09:00\n"
    text += "    households: [2]\n"
    sc = parse_scenario(yaml.safe_load(text))
    assert sc.incidents[0].at[0] == datetime(2026, 11, 5, 14, tzinfo=SEOUL)
    assert sc.incidents[0].households == ("hh-00002",)


# --- expansion ------------------------------------------------------------------------


def test_expansion_is_deterministic_by_seed() -> None:
    sc = load_scenario(SCENARIOS / "fault-storm.yaml")
    a = expand_scenario(sc, fleet(), SEED, START, END)
    assert a == expand_scenario(sc, fleet(), SEED, START, END)
    assert a.truth() == expand_scenario(sc, fleet(), SEED, START, END).truth()
    assert a.injections != expand_scenario(sc, fleet(), SEED + 1, START, END).injections
    ids = [i.injection_id for i in a.injections]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_rates_scale_with_fleet_and_period() -> None:
    sc = scenario({"kind": "duplicate", "per_household_day": 1.0})
    n = len(expand_scenario(sc, build_fleet(20, SEED), SEED, START, END).injections)
    assert 20 * 14 * 0.6 < n < 20 * 14 * 1.2  # some are refused to keep 30 min apart
    c = scenario({"kind": "duplicate", "count": 5})
    assert len(expand_scenario(c, fleet(), SEED, START, END).injections) == 5


def test_explicit_times_must_be_in_fleet_and_period() -> None:
    sc = scenario({"kind": "tamper", "at": "2026-11-05T14:00:00+09:00", "households": [99]},
                  section="incidents")  # fmt: skip
    with pytest.raises(ScenarioError, match="hh-00099 is not in the fleet"):
        expand_scenario(sc, fleet(), SEED, START, END)
    sc = scenario({"kind": "tamper", "at": "2027-01-01T00:00:00+09:00", "households": [1]},
                  section="incidents")  # fmt: skip
    with pytest.raises(ScenarioError, match="outside the period"):
        expand_scenario(sc, fleet(), SEED, START, END)


def test_night_intrusions_happen_at_hours_she_never_uses_while_asleep_or_out() -> None:
    sc = scenario({"kind": "night_intrusion", "per_household_week": 1.0}, section="incidents")
    ex = expand_scenario(sc, fleet(), SEED, START, END)
    assert len(ex.injections) >= 10
    by_key = {h.key: h for h in fleet()}
    for inj in ex.injections:
        h = by_key[inj.household_key]
        r = build_routine(h, START, END)
        local = inj.at.astimezone(SEOUL)
        assert h.night_window.contains(local.time())
        assert local.hour not in r.open_hours()
        assert r.presence_at(inj.at) in (Presence.ASLEEP, Presence.OUT)
        armed = r.mode_at(inj.at) in (Mode.AWAY, Mode.NIGHT)
        assert inj.expected_alert is (AlertKind.INTRUSION if armed else AlertKind.NIGHT_OPENING)
        assert inj.due_s == (30.0 if armed else 0.0)
        assert {AlertKind.INTRUSION, AlertKind.NIGHT_OPENING} <= inj.explains


def test_away_intrusions_only_where_she_arms_away_and_is_out() -> None:
    sc = scenario({"kind": "away_intrusion", "per_household_week": 1.0}, section="incidents")
    ex = expand_scenario(sc, fleet(), SEED, START, END)
    assert ex.injections
    by_key = {h.key: h for h in fleet()}
    for inj in ex.injections:
        h = by_key[inj.household_key]
        assert h.arming.arms_away
        r = build_routine(h, START, END)
        assert r.mode_at(inj.at) is Mode.AWAY and r.presence_at(inj.at) is Presence.OUT
        assert inj.expected_alert is AlertKind.INTRUSION


def test_injections_of_one_household_keep_apart() -> None:
    sc = load_scenario(SCENARIOS / "fault-storm.yaml")
    ex = expand_scenario(sc, fleet(), SEED, START, END)
    for injs in ex.by_household().values():
        spans = sorted((i.start_at or i.at, i.end_at or i.at) for i in injs)
        for (_, end_a), (start_b, _) in itertools.pairwise(spans):
            assert start_b >= end_a + timedelta(minutes=30)


# --- plans ----------------------------------------------------------------------------


def test_plan_without_injections_is_the_routine_on_the_wire() -> None:
    items = plan()
    events = [i for i in items if i.counts_as_event]
    assert items[0].kind is ItemKind.MODE and items[0].send_at == START
    assert [e.seq for e in events] == list(range(len(events)))
    h = fleet()[2]
    assert {e.boot for e in events} == {h.boot0}
    for e in events[:50]:
        assert e.payload is not None
        parsed = parse_event(e.payload)
        assert (parsed.boot, parsed.seq, parsed.type.value) == (e.boot, e.seq, e.kind.value)
        assert parsed.ts == e.at and e.device_ts == e.at
    assert plan() == items  # deterministic


def test_power_loss_silences_the_sensor_then_reboots_it() -> None:
    inj = one("power_loss", duration="1h")
    items = plan(inj)
    off = next(i for i in items if i.kind is ItemKind.POWER_OFF)
    on = next(i for i in items if i.kind is ItemKind.POWER_ON)
    assert off.at == inj.at and on.at == inj.at + timedelta(hours=1)
    assert not [i for i in items if i.counts_as_event and off.at <= i.at < on.at]
    before = [i for i in items if i.counts_as_event and i.at < off.at][-1]
    after = next(i for i in items if i.counts_as_event and i.at > on.at)
    assert (after.boot, after.seq) == (before.boot + 1 if before.boot is not None else 0, 0)
    assert inj.expected_alert is AlertKind.SENSOR_OFFLINE


def test_jamming_loses_heartbeats_and_door_events() -> None:
    inj = one("jamming", duration="2h")
    items = plan(inj)
    assert not [i for i in items if inj.at <= i.at < inj.end_at and i.counts_as_event]  # type: ignore[operator]
    assert inj.expected_alert is AlertKind.SENSOR_OFFLINE and inj.due_s == 1800
    short = one("jamming", duration="20m")
    assert short.expected_alert is None and AlertKind.SENSOR_OFFLINE in short.explains


def test_broker_disconnect_queues_messages_until_reconnect() -> None:
    inj = one("broker_disconnect", duration="30m")
    items = plan(inj)
    down = next(i for i in items if i.kind is ItemKind.LINK_DOWN)
    up_index = next(n for n, i in enumerate(items) if i.kind is ItemKind.LINK_UP)
    up = items[up_index]
    held = [i for i in items if i.counts_as_event and down.at <= i.at < up.at]
    assert held, "a heartbeat falls inside 30 minutes"
    assert all(i.send_at > up.send_at for i in held)
    assert all(items.index(i) > up_index for i in held)
    assert [i.seq for i in held] == sorted(i.seq for i in held if i.seq is not None)


def test_duplicates_repeat_the_same_payload_without_counting() -> None:
    inj = one("duplicate", copies=2, events=2)
    items = plan(inj)
    dups = [i for i in items if i.duplicate]
    assert len(dups) == 4 and not any(d.counts_as_event for d in dups)
    for d in dups:
        original = next(i for i in items if i.counts_as_event and i.seq == d.seq)
        assert d.payload == original.payload and d.send_at > original.send_at
        assert d.cause == inj.injection_id


def test_out_of_order_delivers_the_next_events_in_reverse() -> None:
    inj = one("out_of_order", events=3)
    items = plan(inj)
    events = [i for i in items if i.counts_as_event]
    sent_order = [e.seq for e in events]
    first = next(e for e in sorted(events, key=lambda e: e.at) if e.at >= inj.at)
    assert first.seq is not None
    k = sent_order.index(first.seq + 2)
    assert sent_order[k : k + 3] == [first.seq + 2, first.seq + 1, first.seq]
    assert all(a.send_at <= b.send_at for a, b in itertools.pairwise(items))


def test_clock_skew_shifts_the_device_clock_only() -> None:
    inj = one("clock_skew", skew="10m", duration="3h")
    items = plan(inj)
    inside = [i for i in items if i.counts_as_event and inj.at <= i.at < inj.end_at]  # type: ignore[operator]
    assert inside
    for i in inside:
        assert i.device_ts == i.at + timedelta(minutes=10) and i.send_at == i.at
        assert i.payload is not None and parse_event(i.payload).ts == i.device_ts


@pytest.mark.parametrize("variant", sorted(MALFORMED_VARIANTS))
def test_malformed_payloads_are_dead_letters_with_the_documented_reason(variant: str) -> None:
    inj = one("malformed", variant=variant)
    raw = next(i for i in plan(inj) if i.kind is ItemKind.RAW)
    assert raw.payload is not None and not raw.counts_as_event
    with pytest.raises(WireError) as info:
        parse_event(raw.payload)
    assert info.value.reason == MALFORMED_VARIANTS[variant]
    assert inj.truth().handling == f"dead_letter:{MALFORMED_VARIANTS[variant]}"


def test_oversize_payload_is_over_the_limit() -> None:
    inj = one("oversize", size=[3000, 3000])
    raw = next(i for i in plan(inj) if i.kind is ItemKind.RAW)
    assert raw.payload is not None and len(raw.payload) == 3000 > MAX_PAYLOAD_BYTES
    with pytest.raises(WireError, match="oversize"):
        parse_event(raw.payload)


def test_impersonation_publishes_on_the_other_sensors_topic() -> None:
    inj = one("impersonation", target="hh-00005")
    raw = next(i for i in plan(inj) if i.kind is ItemKind.RAW)
    assert raw.topic_key == "hh-00005" and raw.household_key == "hh-00002"
    assert raw.payload is not None and parse_event(raw.payload).type.value == "open"
    assert inj.truth().detail["target_household_key"] == "hh-00005"


def test_dying_battery_crosses_20_percent_at_the_truth_time() -> None:
    inj = one("dying_battery", duration="1d", to_percent=5)
    beats = [i for i in plan(inj) if i.kind is ItemKind.HEARTBEAT]
    first_low = next(b for b in beats if b.battery is not None and b.battery < 20)
    assert inj.at <= first_low.at <= inj.at + timedelta(seconds=600)
    assert min(b.battery or 100 for b in beats) == 5
    assert inj.expected_alert is AlertKind.BATTERY_LOW


def test_intrusion_and_tamper_add_their_own_events() -> None:
    intr = one("night_intrusion", section="incidents", open_for="20s")
    items = plan(intr)
    mine = [i for i in items if i.cause == intr.injection_id]
    assert [i.kind for i in mine] == [ItemKind.OPEN, ItemKind.CLOSE]
    assert (mine[1].at - mine[0].at).total_seconds() == 20 and all(i.counts_as_event for i in mine)
    tamper = one("tamper", section="incidents")
    assert [i.kind for i in plan(tamper) if i.cause == tamper.injection_id] == [ItemKind.TAMPER]


def test_door_left_open_after_a_late_return_holds_the_door_open() -> None:
    student = next(h for h in build_fleet(10, SEED) if h.persona.value == "student")
    entry = {"kind": "door_left_open", "count": 1, "variant": "night_return"}
    sc = scenario({**entry, "households": [student.key], "duration": "20m"}, section="incidents")
    ex = expand_scenario(sc, fleet(), SEED, START, END)
    assert len(ex.injections) == 1, ex.skipped
    inj = ex.injections[0]
    assert inj.extends_open_at == inj.at and inj.explains == {AlertKind.DOOR_LEFT_OPEN}
    items = plan(inj, key=student.key)
    doors = [i for i in items if i.kind in (ItemKind.OPEN, ItemKind.CLOSE)]
    k = next(n for n, d in enumerate(doors) if d.at == inj.at)
    assert doors[k].kind is ItemKind.OPEN and doors[k].cause == "routine"
    assert doors[k + 1].kind is ItemKind.CLOSE and doors[k + 1].at == inj.end_at
    assert doors[k + 1].cause == inj.injection_id


def test_fleet_plan_invariants_under_a_fault_storm() -> None:
    sc = load_scenario(SCENARIOS / "fault-storm.yaml")
    f = fleet()
    end = START + timedelta(days=4)
    ex = expand_scenario(sc, f, SEED, START, end)
    items = list(plan_fleet(f, START, end, ex.injections))
    assert all(a.send_at <= b.send_at for a, b in itertools.pairwise(items))
    keys = [(i.household_key, i.boot, i.seq) for i in items if i.counts_as_event]
    assert len(keys) == len(set(keys))
    for i in items:
        assert i.send_at >= i.at
        if i.counts_as_event:
            assert i.payload is not None and len(i.payload) <= MAX_PAYLOAD_BYTES
    assert household_weeks(len(f), START, end) == pytest.approx(10 * 4 / 7)


# --- truth ----------------------------------------------------------------------------


def test_truth_round_trips_through_json_lines(tmp_path: Path) -> None:
    sc = load_scenario(SCENARIOS / "fault-storm.yaml")
    truth = expand_scenario(sc, fleet(), SEED, START, END).truth()
    path = tmp_path / "truth.jsonl"
    assert write_truth(path, truth) == len(truth)
    assert read_truth(path) == truth
    bound = bind_ids(truth, {h.key: (f"H{h.index}", f"s-{h.index:04d}") for h in fleet()})
    assert all(r.household_id and r.sensor_id for r in bound)
    imp = [r for r in bound if r.kind == "impersonation"]
    assert imp and all(r.detail["target_sensor_id"].startswith("s-") for r in imp)


def test_truth_reader_points_at_the_bad_line(tmp_path: Path) -> None:
    good = TruthRecord("inj-1", "tamper", "hh-00001", START).to_dict()
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + "{oops\n")
    with pytest.raises(TruthError, match="line 3: not JSON"):
        read_truth(path)
    path.write_text(json.dumps({**good, "at": "2026-11-02T00:00:00"}) + "\n")
    with pytest.raises(TruthError, match="line 1: `at` must carry a UTC offset"):
        read_truth(path)
    path.write_text(json.dumps({**good, "expected_alert": "meteor"}) + "\n")
    with pytest.raises(TruthError, match="line 1"):
        read_truth(path)


def test_a_replayed_log_can_stand_in_for_the_routine() -> None:
    from simulator.routines import replay_door_log

    log = "2011-11-28 13:09:31\t2011-11-28 13:09:35\tMaindoor\tMagnetic\tEntrance\n"
    h = fleet()[0]
    start = datetime(2026, 11, 16, tzinfo=SEOUL)
    replay = replay_door_log(h, log, start)
    items = list(plan_household(h, start, start + timedelta(days=1), (), timeline=replay))
    doors = [i for i in items if i.kind in (ItemKind.OPEN, ItemKind.CLOSE)]
    assert [d.at.time().isoformat() for d in doors] == ["13:09:31", "13:09:35"]
    assert all(d.counts_as_event and d.payload for d in doors)
