"""The project's own PostgreSQL (core/pgserver.py): a real server from Debian's
PostgreSQL 15 binaries in a temporary directory on a free loopback port, reached with
psycopg's AsyncConnection."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from core.errors import ConfigError
from core.pgserver import PostgresProcess
from core.settings import Settings
from tests.harness import free_port
from tests.pgtools import reachable_tmp_dir


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with reachable_tmp_dir("ansim-pg-test-") as path:
        yield path


@pytest.fixture
def server(data_dir: Path) -> Iterator[PostgresProcess]:
    pg = PostgresProcess(data_dir, free_port())
    try:
        yield pg
    finally:
        pg.stop()


def _processes_on(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(pgdata) in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


async def _write_rows(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("CREATE TABLE door_events (id bigint PRIMARY KEY, kind text NOT NULL)")
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO door_events (id, kind) VALUES (%s, %s)",
                [(1, "open"), (2, "close"), (3, "open")],
            )
        await conn.commit()


async def _read_rows(url: str) -> list[tuple[int, str]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT id, kind FROM door_events ORDER BY id")
        return list(await cur.fetchall())


async def _server_facts(url: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        facts = {}
        for name in ("server_version_num", "listen_addresses", "unix_socket_directories", "port"):
            cur = await conn.execute(f"SHOW {name}")
            row = await cur.fetchone()
            assert row is not None
            facts[name] = str(row[0])
        cur = await conn.execute("SELECT current_user, current_database()")
        row = await cur.fetchone()
        assert row is not None
        facts["user"], facts["database"] = row
        return facts


def test_start_write_read_restart_keeps_data_and_password_stop_leaves_nothing(
    server: PostgresProcess, data_dir: Path
) -> None:
    url = server.start()
    assert url.startswith(f"postgresql://ansim:{server.creds and server.creds.password}@")
    assert url.endswith(f"@127.0.0.1:{server.port}/ansim")

    facts = asyncio.run(_server_facts(url))
    assert facts["server_version_num"].startswith("15")
    assert facts["listen_addresses"] == "127.0.0.1"
    assert facts["port"] == str(server.port)
    assert facts["unix_socket_directories"] == str(data_dir / "postgres" / "run")
    assert (facts["user"], facts["database"]) == ("ansim", "ansim")

    asyncio.run(_write_rows(url))
    assert asyncio.run(_read_rows(url)) == [(1, "open"), (2, "close"), (3, "open")]

    # the superuser password lives in a 0600 file; the cluster is in DATA_DIR/postgres
    creds_file = data_dir / "postgres" / "credentials.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    assert json.loads(creds_file.read_text())["password"] in url
    assert (data_dir / "postgres" / "pgdata" / "PG_VERSION").read_text().strip() == "15"

    # never root: as root the server runs as the unprivileged ansim-pg user
    pid = server.pid
    assert pid is not None
    postmaster = psutil.Process(pid)
    assert postmaster.uids().effective != 0
    if os.geteuid() == 0:
        assert postmaster.username() == "ansim-pg"
        assert (data_dir / "postgres" / "pgdata").owner() == "ansim-pg"
    else:
        assert postmaster.uids().effective == os.geteuid()
    assert _processes_on(server.pgdata), "the postmaster's command line names its data dir"

    server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert _processes_on(server.pgdata) == []
    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        asyncio.run(_read_rows(url))

    # a new object on the same directory: same password, same data, no second initdb
    again = PostgresProcess(data_dir, server.port)
    try:
        assert again.start() == url
        assert asyncio.run(_read_rows(again.url)) == [(1, "open"), (2, "close"), (3, "open")]
        # stopping needs no started object (a supervisor that lost its own, after a crash)
        PostgresProcess(data_dir, 0).stop()
        assert not again.is_running()
    finally:
        again.stop()
    assert _processes_on(server.pgdata) == []


def test_password_is_required_on_tcp_and_on_the_socket(server: PostgresProcess) -> None:
    url = server.start()
    wrong = url.replace(f":{server.creds and server.creds.password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        asyncio.run(_read_rows(wrong))

    async def over_socket(password: str | None) -> str:
        async with await psycopg.AsyncConnection.connect(
            host=str(server.socket_dir), port=server.port, user="ansim", dbname="ansim",
            password=password,
        ) as conn:  # fmt: skip
            cur = await conn.execute("SELECT current_user")
            row = await cur.fetchone()
            assert row is not None
            return str(row[0])

    with pytest.raises(psycopg.OperationalError):
        asyncio.run(over_socket(None))
    assert server.creds is not None
    assert asyncio.run(over_socket(server.creds.password)) == "ansim"


def test_a_second_start_on_a_port_in_use_fails_with_a_clear_error(
    server: PostgresProcess,
) -> None:
    server.start()
    with reachable_tmp_dir("ansim-pg-test-other-") as other_dir:
        other = PostgresProcess(other_dir, server.port)
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{server.port} is already in use"):
            other.start()
        assert not other.is_running()
        assert _processes_on(other.pgdata) == []

        # any listener, not only another PostgreSQL
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            third = PostgresProcess(other_dir, taken)
            with pytest.raises(ConfigError, match="ANSIM_PG_PORT"):
                third.start()
            assert not third.is_running()

    # the same cluster twice
    with pytest.raises(ConfigError, match="already runs"):
        PostgresProcess(server.root.parent, free_port()).start()
    assert asyncio.run(_server_facts(server.url))["port"] == str(server.port)


def test_missing_binaries_fail_with_the_setting_to_fix(data_dir: Path) -> None:
    pg = PostgresProcess(data_dir, free_port(), bin_dir=data_dir / "no-postgres-here")
    with pytest.raises(ConfigError, match=r"PostgreSQL 15 not found .*ANSIM_PG_BIN_DIR"):
        pg.start()
    assert not (data_dir / "postgres").exists()


def test_settings_choose_binaries_port_directory_and_user(data_dir: Path) -> None:
    settings = Settings(
        data_dir=data_dir, pg_port=6543, pg_bin_dir=data_dir / "bin", pg_run_user="someone"
    )
    pg = PostgresProcess.from_settings(settings)
    assert (pg.root, pg.port, pg.bin_dir, pg.run_user) == (
        data_dir / "postgres", 6543, data_dir / "bin", "someone",
    )  # fmt: skip
    default = PostgresProcess.from_settings(Settings(data_dir=data_dir))
    assert default.port == 5433
    assert (default.bin_dir / "pg_ctl").exists(), "Debian's PostgreSQL 15 is found by default"
    assert default.run_user == "ansim-pg"


def test_a_data_dir_the_server_user_cannot_reach_is_named(data_dir: Path) -> None:
    closed = data_dir / "closed"
    closed.mkdir(mode=0o700)
    pg = PostgresProcess(closed / "inner", free_port())
    try:
        if os.geteuid() == 0:
            with pytest.raises(ConfigError, match=rf"{closed} is not searchable by it"):
                pg.start()
        else:  # the server runs as this user, who owns the directory
            pg.start()
            assert pg.is_running()
    finally:
        pg.stop()


def test_pg_url_is_a_fresh_database_per_module(pg_url: str, pg_server: PostgresProcess) -> None:
    assert pg_url.rsplit("/", 1)[1].startswith("test_")
    assert pg_url.startswith(pg_server.url.rsplit("/", 1)[0])

    async def tables() -> list[str]:
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cur = await conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
            return [row[0] for row in await cur.fetchall()]

    assert asyncio.run(tables()) == []
    asyncio.run(_write_rows(pg_url))
    assert asyncio.run(tables()) == ["door_events"]
