"""Helpers for tests that run the project's own PostgreSQL (core/pgserver.py)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from core.pgserver import PostgresProcess


@contextmanager
def reachable_tmp_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory that the unprivileged PostgreSQL user can reach when the tests
    run as root: pytest's own base (`/tmp/pytest-of-root`, mode 0700) is not searchable by
    it, so this one sits directly in the system temp dir with mode 0711."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def create_database(server: PostgresProcess, prefix: str = "test_") -> str:
    """A new empty database `test_<random>` on `server`; returns its URL."""
    name = f"{prefix}{secrets.token_hex(6)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url_for(name)


def drop_database(server: PostgresProcess, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server.url, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
