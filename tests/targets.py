"""One storage contract, every adapter: the `target` fixture (tests/conftest.py) runs a
test once on a fresh SQLite file and once on a fresh PostgreSQL database, as APScheduler
runs one suite over every data store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings
from core.storage.db import open_connection, open_store
from core.storage.port import Conn, Store

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Target:
    """Where a test's data lives: `backend` is "sqlite" or "postgresql"."""

    backend: str
    data_dir: Path
    url: str | None = None

    @property
    def env(self) -> dict[str, str]:
        """The variables that point a service (a subprocess) at this database."""
        env = {"ANSIM_DATA_DIR": str(self.data_dir)}
        if self.url:
            env["ANSIM_DATABASE_URL"] = self.url
        return env

    def settings(self, **overrides: Any) -> Settings:
        return Settings(data_dir=self.data_dir, database_url=self.url, **overrides)

    async def conn(self) -> Conn:
        """A migrated connection of its own."""
        return await open_connection(self.settings(), "ansim-test")

    async def store(self) -> Store:
        return await open_store(self.settings(), "ansim-test")
