from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.pgserver import PostgresProcess
from tests.harness import Stack
from tests.pgtools import create_database, drop_database, reachable_tmp_dir
from tests.targets import BACKENDS, Target


def pytest_sessionstart(session: pytest.Session) -> None:
    # A missing mosquitto is a failing test, never a skip: fail loudly at once.
    for tool in ("mosquitto", "mosquitto_ctrl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise pytest.UsageError(
                f"{tool} is not installed: run scripts/setup.sh (installs Debian's mosquitto)"
            )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


# --- PostgreSQL (issue 10): one server per session, a fresh database per test module ---
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresProcess]:
    """The project's own PostgreSQL (core/pgserver.py) on a free loopback port for the whole
    session. A missing PostgreSQL raises ConfigError here: a failing test, never a skip."""
    with reachable_tmp_dir("ansim-pg-session-") as data_dir:
        server = PostgresProcess(data_dir, 0)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def pg_url(pg_server: PostgresProcess) -> Iterator[str]:
    """`postgresql://…/test_<random>`: an empty database of its own for each test module,
    dropped after it."""
    url = create_database(pg_server)
    try:
        yield url
    finally:
        drop_database(pg_server, url)


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A fresh database on each adapter in turn (tests/targets.py)."""
    if request.param == "sqlite":
        yield Target("sqlite", tmp_path)
        return
    server: PostgresProcess = request.getfixturevalue("pg_server")
    url = create_database(server)
    try:
        yield Target("postgresql", tmp_path, url)
    finally:
        drop_database(server, url)
