"""`ansim simulate …` / `python -m simulator …`.

    ansim simulate --households N --days D --speed S --seed K [--scenario FILE]
                   [--report FILE] [--truth FILE] [--start YYYY-MM-DD] [--token T]
                   [--rate N [--duration SECONDS]] [--dry-run]
    ansim simulate score --truth FILE [--report FILE] [--speed S]
    ansim simulate demo [--households N]

Connection settings come from the same `ANSIM_` variables as `ansim up`
(`ANSIM_API_URL` or `ANSIM_HTTP_HOST`/`ANSIM_HTTP_PORT`, `ANSIM_MQTT_HOST`,
`ANSIM_API_TOKEN`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from pathlib import Path

from core.jsonlog import configure_logging
from core.settings import Settings


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ansim simulate",
        description="Run a simulated fleet against the real broker and backend and score it. "
        "Subcommands: `score` (score an earlier run from its truth file), `demo`.",
    )
    p.add_argument("--households", type=int, default=10, help="fleet size (default 10)")
    p.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    p.add_argument(
        "--speed", type=float, default=3600.0,
        help="simulated seconds per wall second: 1 = real time, 3600 = an hour a second",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1, help="same seed, same events and truth")
    p.add_argument("--scenario", type=Path, help="scenario file (YAML or JSON), see scenarios/")
    p.add_argument("--report", type=Path, help="write the report here (JSON)")
    p.add_argument(
        "--truth", type=Path,
        help="write the ground truth here (JSON lines; default: next to --report)",
    )  # fmt: skip
    p.add_argument(
        "--start", help="first simulated day, YYYY-MM-DD, from local midnight "
        "(default: today's midnight; now in real time)",
    )  # fmt: skip
    p.add_argument("--token", help="operator token (default ANSIM_API_TOKEN)")
    p.add_argument("--rate", type=float, help="load mode: events/s across the fleet")
    p.add_argument(
        "--duration", type=float, help="load mode: wall seconds (default days*86400/speed)"
    )
    p.add_argument("--door-log", type=Path, help="replay this Ordóñez log as household 0")
    p.add_argument("--batch", type=int, default=250, help="sensors connecting at a time")
    p.add_argument("--http-concurrency", type=int, default=16)
    p.add_argument("--settle", type=float, default=2.0, help="seconds before reading alerts")
    p.add_argument(
        "--no-respond",
        action="store_true",
        help="leave alerts unanswered (by default residents answer false alarms 'it was me'"
        " and operators resolve injected incidents 'confirmed', from the ground truth)",
    )
    p.add_argument("--dry-run", action="store_true", help="plan only: counts and digest")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _raise_fd_limit() -> None:
    """Every sensor holds a socket: lift the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["--"]:
        args_in = args_in[1:]  # `ansim simulate -- --households …`
    settings = Settings()
    configure_logging("simulator", settings.log_level)
    if args_in[:1] == ["demo"]:
        demo = argparse.ArgumentParser(prog="ansim simulate demo")
        demo.add_argument("--households", type=int, default=None)
        dargs = demo.parse_args(args_in[1:])
        if dargs.households:
            settings.demo_households = dargs.households
        from simulator.demo import run_demo

        return run_demo(settings)
    if args_in[:1] == ["score"]:
        return _score(settings, args_in[1:])
    return _simulate(settings, args_in)


def _simulate(settings: Settings, argv: list[str]) -> int:
    from simulator.run import RunOptions, SimulationError, format_summary, run_async
    from simulator.scenario import ScenarioError

    args = _run_parser().parse_args(argv)
    opts = RunOptions(
        households=args.households, days=args.days, speed=args.speed, seed=args.seed,
        scenario=args.scenario, report=args.report, truth=args.truth, start=args.start,
        token=args.token, rate=args.rate, duration_s=args.duration, door_log=args.door_log,
        connect_batch=args.batch, http_concurrency=args.http_concurrency,
        settle_s=args.settle, progress=not args.no_progress, dry_run=args.dry_run,
        timezone=settings.timezone, respond=not args.no_respond,
    )  # fmt: skip
    _raise_fd_limit()
    try:
        report = asyncio.run(run_async(settings, opts))
    except (SimulationError, ScenarioError, OSError, ValueError) as exc:
        print(f"ansim simulate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ansim simulate: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_summary(report))
    return 0


def _score(settings: Settings, argv: list[str]) -> int:
    from simulator.run import SimulationError, format_summary, score_async
    from simulator.truth import TruthError

    p = argparse.ArgumentParser(
        prog="ansim simulate score", description="score an earlier run from its truth file"
    )
    p.add_argument("--truth", type=Path, required=True)
    p.add_argument("--report", type=Path, help="write the report here (JSON)")
    p.add_argument("--speed", type=float, help="the run's speed (default: from the sidecar)")
    p.add_argument("--token", help="operator token (default ANSIM_API_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    try:
        report = asyncio.run(score_async(settings, args.truth, args.token, args.speed))
    except (SimulationError, TruthError, OSError, ValueError) as exc:
        print(f"ansim simulate score: {exc}", file=sys.stderr)
        return 2
    if args.report:
        args.report.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
