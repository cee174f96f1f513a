from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Stack


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
