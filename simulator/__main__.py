"""`ansim simulate …` / `python -m simulator …`."""

from __future__ import annotations

import argparse
import sys

from core.jsonlog import configure_logging
from core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ansim simulate", description="Ansim Door device simulator")
    sub = p.add_subparsers(dest="mode")
    demo = sub.add_parser("demo", help="a small real-time fleet for `ansim up --demo`")
    demo.add_argument("--households", type=int, default=None)
    args = p.parse_args(argv)
    settings = Settings()
    configure_logging("simulator", settings.log_level)
    if args.mode == "demo":
        if args.households:
            settings.demo_households = args.households
        from simulator.demo import run_demo

        return run_demo(settings)
    p.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
