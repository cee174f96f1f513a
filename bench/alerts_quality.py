"""Alert quality and delivery latency (run by hand; prints its figures).

    .venv/bin/python bench/alerts_quality.py [--households 200] [--days 28] [--speed 20000]

1. Quality: a real stack in `replay` mode; `ansim simulate` runs the fleet (seeded
   personas, scenarios/incident-month.yaml with extra night intrusions) for `--days`
   simulated days. Scored twice: the whole run, and after `--learn-days` (7) of learning —
   false alarms per household-week and the share of injected intrusions alerted.
2. Latency: a real stack in `live` mode with a local webhook receiver; `ansim simulate
   --rate 1000` loads it with 1,000 events/s of background traffic while probe sensors
   publish tamper events; publish → webhook received, p50/p99 wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.models import EventType  # noqa: E402
from simulator.device import VirtualSensor  # noqa: E402
from simulator.scoring import percentile, score_run  # noqa: E402
from simulator.truth import read_truth  # noqa: E402
from tests.harness import Stack, wait_until  # noqa: E402
from tests.receiver import Receiver  # noqa: E402

INTRUSIONS = ("night_intrusion", "away_intrusion")


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def simulate(stack: Stack, args: list[str]) -> None:
    env = {
        **os.environ,
        **stack.env,
        "ANSIM_API_URL": stack.base_url,
        "ANSIM_API_TOKEN": stack.operator_token,
    }
    subprocess.run([sys.executable, "-m", "simulator", *args], env=env, check=True, cwd=ROOT)


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
    return {
        "report": report,
        "after": after,
        "intrusions": caught(report),
        "late_intrusions": caught(after),
        "cut": cut.isoformat(),
    }


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
    if lat:
        row("background load (committed by the bridge)",
            f"{lat['background_stored_per_s']:,.0f} messages/s")  # fmt: skip
        row("publish -> webhook p50 / p99",
            f"{lat['p50_s'] * 1000:.0f} / {lat['p99_s'] * 1000:.0f} ms"
            f"   (n={lat['n']}, target p99 < 1 s)")  # fmt: skip
    print("=" * 70)


if __name__ == "__main__":
    main()
