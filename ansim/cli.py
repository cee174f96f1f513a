"""The `ansim` command: up, token, simulate, and the single services."""

from __future__ import annotations

import argparse
import asyncio
import sys

from core.credentials import new_token
from core.jsonlog import configure_logging
from core.models import Role
from core.settings import Settings
from core.storage import audit, tokens
from core.storage.db import open_database, transaction
from core.timeutil import to_us


async def create_token(
    settings: Settings, role: Role, household_id: str | None, label: str | None
) -> str:
    from datetime import UTC, datetime

    token = new_token()
    conn = await open_database(settings.database)
    try:
        now = to_us(datetime.now(UTC))
        async with transaction(conn):
            if household_id is not None:
                async with conn.execute(
                    "SELECT 1 FROM households WHERE household_id = ? AND unenrolled_us IS NULL",
                    (household_id,),
                ) as cur:
                    if await cur.fetchone() is None:
                        raise SystemExit(f"ansim: no household {household_id!r}")
            await tokens.insert_token(conn, token, role, now, household_id, label)
            await audit.record(
                conn, now, "cli", "token.create", household_id, {"role": str(role), "label": label}
            )
    finally:
        await conn.close()
    return token


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ansim", description="Ansim Door: door-sensor safety backend")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start broker, bridge, API and scheduler")
    up.add_argument("--demo", action="store_true", help="also run a small simulated fleet")

    tok = sub.add_parser("token", help="API tokens")
    tok_sub = tok.add_subparsers(dest="token_command", required=True)
    create = tok_sub.add_parser("create", help="create a token and print it")
    create.add_argument("--role", choices=[r.value for r in Role], required=True)
    create.add_argument("--household", help="household id (resident tokens)")
    create.add_argument("--label", help="who the token is for")

    sim = sub.add_parser("simulate", help="run the device simulator", add_help=False)
    sim.add_argument("args", nargs=argparse.REMAINDER)

    sub.add_parser("bridge", help="run only the MQTT bridge")
    sub.add_parser("api", help="run only the HTTP API")
    sub.add_parser("scheduler", help="run only the scheduler")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:  # its own parser: every flag goes through untouched
        from simulator.__main__ import main as simulate

        return simulate(argv[1:])
    args = _parser().parse_args(argv)
    settings = Settings()
    if args.command == "up":
        configure_logging("supervisor", settings.log_level)
        from ansim.supervisor import run_up

        demo_token = None
        if args.demo:
            demo_token = settings.api_token or asyncio.run(
                create_token(settings, Role.OPERATOR, None, "demo")
            )
        return run_up(settings, args.demo, demo_token)
    if args.command == "token":
        role = Role(args.role)
        if role is Role.RESIDENT and not args.household:
            print("ansim: a resident token needs --household", file=sys.stderr)
            return 2
        print(asyncio.run(create_token(settings, role, args.household, args.label)))
        return 0
    if args.command == "bridge":
        from broker_bridge.__main__ import main as bridge

        bridge()
        return 0
    if args.command == "api":
        from api.__main__ import main as api

        api()
        return 0
    if args.command == "scheduler":
        from scheduler.__main__ import main as scheduler

        scheduler()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
