"""The `ansim` command: up, token, simulate, and the single services."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from core.credentials import new_token
from core.jsonlog import configure_logging
from core.models import Role
from core.settings import Settings
from core.storage import audit, tokens
from core.storage.db import open_connection, transaction
from core.timeutil import from_us, rfc3339, to_us


async def create_token(
    settings: Settings, role: Role, household_id: str | None, label: str | None
) -> str:
    from datetime import UTC, datetime

    token = new_token()
    conn = await open_connection(settings, "ansim-cli")
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


def _no_database(settings: Settings) -> str | None:
    """Why a token command must not run here: the stack's database is not where we look
    (a new one would be created whose tokens the running stack never sees)."""
    if settings.database_url or settings.database.is_file():
        return None
    return (
        f"ansim: no database at {settings.database} (ANSIM_DATA_DIR={settings.data_dir}):"
        " set ANSIM_DATA_DIR (or ANSIM_DB_PATH) to the running stack's data directory,"
        " or start it once with `ansim up`"
    )


def _when(us: int | None) -> str:
    return "-" if us is None else rfc3339(from_us(us))


async def list_tokens(settings: Settings) -> list[tokens.TokenInfo]:
    conn = await open_connection(settings, "ansim-cli")
    try:
        return await tokens.list_tokens(conn)
    finally:
        await conn.close()


async def revoke_token(settings: Settings, token_id: str) -> tokens.TokenInfo:
    from datetime import UTC, datetime

    conn = await open_connection(settings, "ansim-cli")
    try:
        now = to_us(datetime.now(UTC))
        async with transaction(conn):
            token = await tokens.revoke_token(conn, token_id, now)
            await audit.record(
                conn, now, "cli", "token.revoke", token.household_id,
                {"token_id": token.token_id, "role": str(token.role), "label": token.label},
            )  # fmt: skip
        return token
    finally:
        await conn.close()


def _token_command(settings: Settings, args: argparse.Namespace) -> int:
    action = str(args.token_command)
    problem = _no_database(settings)
    chosen = "ANSIM_DATA_DIR" in os.environ or "ANSIM_DB_PATH" in os.environ
    if problem and action == "create" and (args.init or chosen):
        # asked for on purpose (--init, or a data directory named explicitly, e.g. before
        # the first `ansim up`): create it, and say where
        print(f"ansim: no database yet; created one at {settings.database}", file=sys.stderr)
        problem = None
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if action == "list":
        rows = asyncio.run(list_tokens(settings))
        cols = ("id", "role", "household", "label", "created", "revoked", "last used")
        table = [cols] + [
            (t.token_id, str(t.role), t.household_id or "-", t.label or "-",
             _when(t.created_us), _when(t.revoked_us), "not tracked")
            for t in rows
        ]  # fmt: skip
        widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
        for r in table:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        return 0
    if action == "revoke":
        try:
            token = asyncio.run(revoke_token(settings, args.token_id))
        except (LookupError, ValueError) as exc:
            print(f"ansim: {exc.args[0]}", file=sys.stderr)
            return 2
        print(f"revoked token {token.token_id} ({token.role}, {token.label or 'no label'})")
        return 0
    role = Role(args.role)
    if role is Role.RESIDENT and not args.household:
        print("ansim: a resident token needs --household", file=sys.stderr)
        return 2
    print(asyncio.run(create_token(settings, role, args.household, args.label)))
    return 0


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
    create.add_argument(
        "--init",
        action="store_true",
        help="create the database if there is none yet (before the first `ansim up`)",
    )
    tok_sub.add_parser("list", help="list tokens (id, role, label, created, revoked; no secret)")
    revoke = tok_sub.add_parser("revoke", help="revoke a token: the API answers 401 to it")
    revoke.add_argument("token_id", help="the id shown by `ansim token list` (or a prefix)")

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
        return _token_command(settings, args)
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
