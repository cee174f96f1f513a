"""Alert quality and delivery latency (run by hand; prints its figures).

    .venv/bin/python bench/alerts_quality.py [--households 200] [--days 28] [--speed 20000]
                                             [--lives all|new|classic] [--off-habit 1.0]

1. Quality: a real stack in `replay` mode; `ansim simulate` runs the fleet (seeded
   personas, scenarios/intrusion-month.yaml) for `--days` simulated days. Scored twice:
   the whole run, and after `--learn-days` (7) of learning — false alarms per
   household-week and the share of injected intrusions alerted; then per persona.
   `--lives` picks the fleet: `classic` (the five personas, the same fleet and figures as
   before the new lives), `new` (the seven lives of issue 15, round-robin) or `all` (the
   twelve, round-robin; default). The scenario's intrusions while she sleeps go to every
   persona, its intrusions while she is out also to the new lives that are out at night.
   On top of them, **off-habit intrusions** (`--off-habit` per household-week, after the
   learning days, new lives with a habit only): a night intrusion 1-2 h from her habit's
   hour (`Household.habit_hour`) on a night without it (no door of hers within 45 min of
   that hour that night), while she sleeps and her door has been still for an hour —
   where a model that spreads a habit over nights and hours she never uses misses.
   The simulator runs in a child process of this script (`child` below), which builds
   that fleet and those injections and otherwise runs `python -m simulator` unchanged.
2. Latency: a real stack in `live` mode with a local webhook receiver; `ansim simulate
   --rate 1000` loads it with 1,000 events/s of background traffic while probe sensors
   publish tamper events; publish → webhook received, p50/p99 wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.models import AlertKind, EventType, Mode  # noqa: E402
from simulator.device import VirtualSensor  # noqa: E402
from simulator.personas import (  # noqa: E402
    ALL_PERSONAS,
    NEW_PERSONAS,
    Household,
    PersonaKind,
    build_fleet,
)
from simulator.routines import Presence, Routine, build_routine, plans_for  # noqa: E402
from simulator.scenario import (  # noqa: E402
    DOOR_LEFT_OPEN_LIMIT_S,
    ENTRY_DELAY_S,
    QUIET,
    Expansion,
    Injection,
    InjectionKind,
    Scenario,
    expand_scenario,
    load_scenario,
)
from simulator.scoring import percentile, score_run  # noqa: E402
from simulator.truth import TruthRecord, read_truth  # noqa: E402
from tests.harness import Stack, wait_until  # noqa: E402
from tests.receiver import Receiver  # noqa: E402

INTRUSIONS = ("night_intrusion", "away_intrusion")
SEOUL_TZ = ZoneInfo("Asia/Seoul")
LIVES: dict[str, tuple[PersonaKind, ...] | None] = {
    "classic": None,  # build_fleet's own round-robin: the same fleet as before
    "new": NEW_PERSONAS,
    "all": ALL_PERSONAS,
}
OUT_AT_NIGHT = (PersonaKind.LATE_SHIFT, PersonaKind.ROTATING_SHIFT, PersonaKind.BAR_STAFF)
OFF_HABIT = "off_habit"


# --- the fleet and its injections (the child process) -------------------------------


def widen(scenario: Scenario, kinds: tuple[PersonaKind, ...] | None) -> Scenario:
    """The scenario's persona filters extended to the new lives: an intrusion meant for
    every classic persona goes to every persona; one while she is out also to the new
    lives that are out at night. A classic fleet meets the same injections as before."""
    if kinds is None:
        return scenario
    classic = set(ALL_PERSONAS) - set(NEW_PERSONAS)
    specs = []
    for spec in scenario.incidents:
        personas = spec.personas
        if personas and classic <= set(personas):
            personas = ()
        elif personas and spec.kind is InjectionKind.NIGHT_INTRUSION and spec.when == "away":
            personas = (*personas, *OUT_AT_NIGHT)
        specs.append(replace(spec, personas=personas))
    return Scenario(scenario.name, scenario.description, tuple(specs), scenario.faults)


def off_habit_intrusions(
    fleet: list[Household],
    taken: tuple[Injection, ...],
    seed: int,
    start: datetime,
    end: datetime,
    per_week: float,
    learn_days: float,
) -> tuple[list[Injection], list[str]]:
    """Night intrusions 1-2 h from a habit, on nights without it (see the docstring)."""
    out: list[Injection] = []
    skipped: list[str] = []
    first = start + timedelta(days=learn_days)
    weeks = max(0.0, (end - first).total_seconds() / 86_400 / 7)
    for hh in fleet:
        if hh.persona not in NEW_PERSONAS or hh.habit_hour <= 0:
            continue
        rng = random.Random(f"ansim-bench-off-habit:{seed}:{hh.key}")
        lam = per_week * weeks
        n = math.floor(lam) + (rng.random() < lam - math.floor(lam))
        if not n:
            continue
        routine: Routine = build_routine(hh, start, end)
        busy = [i.at for i in taken if i.household_key == hh.key]
        nights = []
        for plan in plans_for(hh, start, end):
            centre = datetime.combine(plan.day, datetime.min.time(), tzinfo=hh.zone) + timedelta(
                hours=hh.habit_hour
            )
            if not first <= centre - timedelta(hours=2) or centre + timedelta(hours=2) > end:
                continue
            if routine.door_quiet(centre, timedelta(minutes=45)):
                nights.append(centre)  # a night without the habit
        rng.shuffle(nights)
        placed = 0
        for centre in nights:
            if placed >= n:
                break
            for _ in range(20):
                t = centre + timedelta(hours=rng.choice((-1, 1)) * rng.uniform(1.0, 2.0))
                t = t.replace(microsecond=0)
                local = t.astimezone(hh.zone).time()
                if not hh.night_window.contains(local):
                    continue
                if routine.presence_at(t) is not Presence.ASLEEP:
                    continue
                if not routine.door_quiet(t, timedelta(minutes=60)):
                    continue
                if any(abs((t - b).total_seconds()) < 7200 for b in busy):
                    continue
                open_s = round(rng.uniform(8.0, 60.0), 3)
                mode = routine.mode_at(t)
                armed = mode in (Mode.AWAY, Mode.NIGHT)
                explained = {AlertKind.INTRUSION, AlertKind.NIGHT_OPENING}
                if open_s > DOOR_LEFT_OPEN_LIMIT_S:
                    explained.add(AlertKind.DOOR_LEFT_OPEN)
                out.append(
                    Injection(
                        injection_id="",
                        kind=InjectionKind.NIGHT_INTRUSION,
                        household_key=hh.key,
                        at=t,
                        end_at=t + timedelta(seconds=open_s),
                        expected_alert=AlertKind.INTRUSION if armed else AlertKind.NIGHT_OPENING,
                        explains=frozenset(explained),
                        due_s=ENTRY_DELAY_S if armed else 0.0,
                        match_to_s=max(120.0, open_s + 60),
                        handling="alert",
                        open_s=open_s,
                        detail={
                            "mode": mode.value,
                            "presence": Presence.ASLEEP.value,
                            "persona": hh.persona.value,
                            "variant": OFF_HABIT,
                            "from_habit_min": round((t - centre).total_seconds() / 60),
                        },
                    )
                )
                busy.append(t)
                placed += 1
                break
        if placed < n:
            skipped.append(f"{hh.key}: {placed} of {n} off-habit intrusions placed")
    return out, skipped


def child(argv: list[str]) -> int:
    """`alerts_quality.py child LIVES OFF_HABIT LEARN_DAYS -- <python -m simulator args>`:
    the simulator with this bench's fleet and injections."""
    import simulator.run as run
    from simulator.__main__ import main as simulate_main

    lives, per_week, learn_days = argv[0], float(argv[1]), float(argv[2])
    kinds = LIVES[lives]

    def prepare(opts: run.RunOptions, now: datetime | None = None) -> run.Prepared:
        if opts.households < 1 or opts.days <= 0 or opts.speed <= 0:
            raise run.SimulationError("--households, --days and --speed must be positive")
        start, end = run.period(opts, now)
        fleet = build_fleet(opts.households, opts.seed, kinds=kinds)
        scenario = widen(load_scenario(opts.scenario), kinds) if opts.scenario else QUIET
        expansion = expand_scenario(scenario, fleet, opts.seed, start, end)
        extra, skipped = off_habit_intrusions(
            fleet, expansion.injections, opts.seed, start, end, per_week, learn_days
        )
        extra.sort(key=lambda i: (i.at, i.household_key))
        numbered = tuple(replace(i, injection_id=f"off-{n:05d}") for n, i in enumerate(extra, 1))
        injections = tuple(sorted((*expansion.injections, *numbered), key=lambda i: i.at))
        expansion = Expansion(injections, (*expansion.skipped, *skipped))
        return run.Prepared(fleet, start, end, expansion, scenario.name, None)

    run.prepare = prepare  # the one thing this child changes
    return simulate_main(argv[4:] if argv[3:4] == ["--"] else argv[3:])


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def simulate(stack: Stack, args: list[str], lives: argparse.Namespace | None = None) -> None:
    env = {
        **os.environ,
        **stack.env,
        "ANSIM_API_URL": stack.base_url,
        "ANSIM_API_TOKEN": stack.operator_token,
    }
    cmd = [sys.executable, "-m", "simulator"]
    if lives is not None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "child", lives.lives,
               str(lives.off_habit), str(lives.learn_days), "--"]  # fmt: skip
    subprocess.run([*cmd, *args], env=env, check=True, cwd=ROOT)


def fetch_alerts(stack: Stack) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    with stack.api() as api:
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/api/v1/alerts", params=params).json()
            out += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return out


def quality(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    stack = Stack(work / "replay", ANSIM_TIME_MODE="replay", ANSIM_LOG_LEVEL="WARNING")
    stack.start()
    try:
        report_path, truth_path = work / "report.json", work / "truth.jsonl"
        say(f"quality: {args.households} households, {args.days} days at speed {args.speed:g}")
        simulate(
            stack,
            ["--households", str(args.households), "--days", str(args.days),
             "--speed", str(args.speed), "--seed", str(args.seed),
             "--scenario", str(args.scenario), "--start", args.start,
             "--report", str(report_path), "--truth", str(truth_path),
             *(["--no-respond"] if args.no_respond else [])],
            args,
        )  # fmt: skip
        report = json.loads(report_path.read_text())
        truth = read_truth(truth_path)
        alerts = fetch_alerts(stack)
    finally:
        stack.stop()
    start = datetime.fromisoformat(args.start).replace(tzinfo=datetime.now().astimezone().tzinfo)
    learned = datetime.fromisoformat(report.get("period", {}).get("start", args.start))
    if learned.tzinfo is None:
        learned = learned.replace(tzinfo=UTC)
    cut = learned + timedelta(days=args.learn_days)
    late_truth = [t for t in truth if t.at >= cut]
    late_alerts = [a for a in alerts if datetime.fromisoformat(a["event_ts"]) >= cut]
    weeks = args.households * (args.days - args.learn_days) / 7
    after = score_run(
        late_truth, late_alerts, events_sent=0, events_stored=0, household_weeks=weeks,
        speed=args.speed,
    )  # fmt: skip
    intrusions = [t for t in truth if t.kind in INTRUSIONS]
    late_intrusions = [t for t in late_truth if t.kind in INTRUSIONS]

    def caught(score: dict[str, Any]) -> tuple[int, int]:
        by_kind = score.get("incidents_by_kind", {})
        hit = sum(by_kind.get(k, {}).get("detected", 0) for k in INTRUSIONS)
        n = sum(by_kind.get(k, {}).get("injected", 0) for k in INTRUSIONS)
        return hit, n

    _ = (start, intrusions, late_intrusions)
    sidecar = json.loads(truth_path.with_name(truth_path.name + ".run.json").read_text())
    return {
        "report": report,
        "after": after,
        "intrusions": caught(report),
        "late_intrusions": caught(after),
        "cut": cut.isoformat(),
        "personas": per_persona(args, sidecar["households"], late_truth, late_alerts),
    }


def per_persona(
    args: argparse.Namespace,
    ids: dict[str, dict[str, str]],
    truth: list[TruthRecord],
    alerts: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """After the learning days, persona by persona: night intrusions alerted / injected
    (and of them the off-habit ones), false alarms per household-week, alert latency."""
    fleet = build_fleet(args.households, args.seed, kinds=LIVES[args.lives])
    weeks_each = (args.days - args.learn_days) / 7
    rows = []
    for kind in ALL_PERSONAS:
        keys = {h.key for h in fleet if h.persona is kind}
        if not keys:
            continue
        hids = {ids[k]["household_id"] for k in keys if k in ids}
        mine = [t for t in truth if t.household_key in keys]
        theirs = [a for a in alerts if a.get("household_id") in hids]
        score = score_run(
            mine, theirs, events_sent=0, events_stored=0,
            household_weeks=len(keys) * weeks_each, speed=args.speed,
        )  # fmt: skip
        night = score["incidents_by_kind"].get("night_intrusion", {})
        off = [t for t in mine if t.detail.get("variant") == OFF_HABIT]
        off_score = score_run(
            off, theirs, events_sent=0, events_stored=0, household_weeks=1.0, speed=args.speed
        )["incidents_by_kind"].get("night_intrusion", {})
        missed = set(score["missed_record_ids"])
        rows.append(
            {
                "persona": kind.value,
                "households": len(keys),
                "night_detected": night.get("detected", 0),
                "night_injected": night.get("injected", 0),
                "off_detected": off_score.get("detected", 0),
                "off_injected": off_score.get("injected", 0),
                "away_detected": score["incidents_by_kind"]
                .get("away_intrusion", {})
                .get("detected", 0),
                "away_injected": score["incidents_by_kind"]
                .get("away_intrusion", {})
                .get("injected", 0),
                "false_alarms": score["false_alarms"],
                "fa_per_hw": score["false_alarms_per_household_week"],
                "fa_by_kind": score["false_alarms_by_kind"],
                "night_fa_per_hw": round(
                    score["false_alarms_by_kind"].get("night_opening", 0)
                    / max(len(keys) * weeks_each, 1e-9),
                    3,
                ),
                "latency_p50_s": score["alert_latency_p50_s"],
                "latency_p99_s": score["alert_latency_p99_s"],
                "missed": [
                    {"at": t.at.astimezone(SEOUL_TZ).strftime("%a %H:%M"), **t.detail}
                    for t in mine
                    if t.record_id in missed and t.kind == "night_intrusion"
                ][:10],
            }
        )
    return rows


def print_personas(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'persona':<16} {'hh':>4} {'night alerted':>14} {'off-habit':>10} {'away':>8} "
        f"{'FA/hh-wk':>9} {'night_opening FA/hh-wk':>23} {'latency p50/p99 s':>18}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['persona']:<16} {r['households']:>4} "
            f"{r['night_detected']:>5}/{r['night_injected']:<3} "
            f"{_pct(r['night_detected'], r['night_injected']):>4} "
            f"{r['off_detected']:>4}/{r['off_injected']:<4} "
            f"{r['away_detected']:>3}/{r['away_injected']:<4} "
            f"{r['fa_per_hw'] if r['fa_per_hw'] is not None else '-':>9} "
            f"{r['night_fa_per_hw']:>23} "
            f"{r['latency_p50_s']} / {r['latency_p99_s']}"
        )
    for r in rows:
        for m in r["missed"]:
            print(f"  missed {r['persona']}: {m}")


def _pct(hit: int, n: int) -> str:
    return f"{hit / n:.0%}" if n else "-"


def latency(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    receiver = Receiver()
    stack = Stack(work / "live", ANSIM_LOG_LEVEL="WARNING")
    stack.start()
    try:
        probes = []
        with stack.api() as api:
            for i in range(args.probes):
                hh = stack.enrol(api, name=f"probe {i}", webhook_url=receiver.url(f"/p{i}"))
                prov = stack.provision(api, hh["household_id"])
                s = VirtualSensor.provisioned(prov, boot=1)
                assert s.start()
                probes.append(s)
        say(f"latency: background load {args.rate:g} events/s, {args.probes} probe alerts")
        env = {**os.environ, **stack.env, "ANSIM_API_URL": stack.base_url,
               "ANSIM_API_TOKEN": stack.operator_token}  # fmt: skip
        load = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--households", "500", "--rate", str(args.rate),
             "--speed", "1",
             "--duration", str(args.probes * 0.5 + 30), "--seed", "3", "--no-progress"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        bridge = f"http://127.0.0.1:{stack.settings.bridge_metrics_port}/metrics"

        def stored() -> float:
            """Messages the bridge committed: door events and heartbeats."""
            total = 0.0
            for line in httpx.get(bridge).text.splitlines():
                for outcome in ("stored", "heartbeat"):
                    if line.startswith(f'ansim_bridge_messages_total{{outcome="{outcome}"}}'):
                        total += float(line.rsplit(" ", 1)[1])
            return total

        wait_until(lambda: stored() > args.rate * 5, 120, 0.5, "background load running")
        s0, t0 = stored(), time.time()
        sent: dict[str, float] = {}
        for i, s in enumerate(probes):
            sent[f"/p{i}"] = time.time()
            s.publish(EventType.TAMPER, datetime.now(UTC))
            time.sleep(0.5)
        wait_until(lambda: len(receiver.delivered()) >= len(probes), 60, 0.2, "probe webhooks")
        background = (stored() - s0) / (time.time() - t0)
        load.wait(120)
        got = {r["path"]: r for r in receiver.delivered()}
        lat = sorted(got[p]["at"] - sent[p] for p in sent if p in got)
        for s in probes:
            s.stop()
    finally:
        stack.stop()
        receiver.close()
    return {
        "background_stored_per_s": background,
        "p50_s": percentile(lat, 50),
        "p99_s": percentile(lat, 99),
        "n": len(lat),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--households", type=int, default=200)
    p.add_argument("--days", type=float, default=28)
    p.add_argument("--learn-days", type=float, default=7)
    p.add_argument("--speed", type=float, default=20000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", default="2026-10-05")
    p.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "intrusion-month.yaml")
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--probes", type=int, default=60)
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--no-respond", action="store_true", help="nobody answers alerts")
    p.add_argument("--lives", choices=sorted(LIVES), default="all",
                   help="classic (five personas), new (issue 15's seven), all")  # fmt: skip
    p.add_argument("--off-habit", type=float, default=1.0,
                   help="off-habit night intrusions per household-week (new lives)")  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the figures here")
    if sys.argv[1:2] == ["child"]:
        raise SystemExit(child(sys.argv[2:]))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ansim-alerts-"))
    q = None if args.skip_quality else quality(args, work)
    lat = None if args.skip_latency else latency(args, work)
    print("\n" + "=" * 70)

    def row(label: str, value: str) -> None:
        print(f"{label:<44} {value}")

    if q:
        r, a = q["report"], q["after"]
        hit, n = q["intrusions"]
        lhit, ln = q["late_intrusions"]
        learn = f"{args.learn_days:g}"
        row("households x days", f"{args.households} x {args.days:g} (speed {args.speed:g})")
        row("events sent / stored / lost",
            f"{r['events_sent']:,} / {r['events_stored']:,} / {r['events_lost']:,}")  # fmt: skip
        row("incidents injected / detected",
            f"{r['incidents_injected']} / {r.get('incidents_detected_total')}")  # fmt: skip
        row("intrusions alerted (whole run)", f"{hit}/{n} = {hit / max(n, 1):.1%}")
        row(f"intrusions alerted (after day {learn})",
            f"{lhit}/{ln} = {lhit / max(ln, 1):.1%}   (target >= 98%)")  # fmt: skip
        row("false alarms / household-week (whole run)",
            f"{r['false_alarms_per_household_week']:.3f}")  # fmt: skip
        row(f"false alarms / household-week (after day {learn})",
            f"{a['false_alarms_per_household_week']:.3f}   (target <= 0.1)")  # fmt: skip
        row("false alarms by kind (after)", str(a.get("false_alarms_by_kind")))
        row("alert latency p50 / p99 (simulated run)",
            f"{r.get('alert_latency_p50_s')} / {r.get('alert_latency_p99_s')} s")  # fmt: skip
        print(f"\nper persona, after day {learn} (--lives {args.lives}, --off-habit "
              f"{args.off_habit:g}/household-week):")  # fmt: skip
        print_personas(q["personas"])
    if lat:
        row("background load (committed by the bridge)",
            f"{lat['background_stored_per_s']:,.0f} messages/s")  # fmt: skip
        row("publish -> webhook p50 / p99",
            f"{lat['p50_s'] * 1000:.0f} / {lat['p99_s'] * 1000:.0f} ms"
            f"   (n={lat['n']}, target p99 < 1 s)")  # fmt: skip
    print("=" * 70)
    if args.json:
        args.json.write_text(json.dumps({"quality": q and {k: q[k] for k in (
            "after", "intrusions", "late_intrusions", "personas")}, "latency": lat},
            indent=1, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
