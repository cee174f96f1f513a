"""A real stack for integration tests: mosquitto from the repo's mosquitto.conf on a
free loopback port, a real SQLite file in a temporary directory, the API under uvicorn
and the bridge, each as its own process (so a test can kill -9 them)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from core.broker.mosquitto import BrokerCredentials, BrokerProcess
from core.broker.tls import api_verify
from core.models import Role
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def schema_at(db: Any, version: int) -> None:
    """Build the schema as it was at `version` on an open sqlite3 connection: the start
    of a migration test (from that version to the newest)."""
    from core.storage.schema import MIGRATIONS
    from core.storage.schema import statements as _statements

    for v, script in MIGRATIONS:
        if v > version:
            break
        for stmt in _statements(script):
            db.execute(stmt)
    db.execute(f"PRAGMA user_version = {version}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    cond: Callable[[], Any], timeout_s: float = 10.0, every_s: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or cond}; last={last!r}")


class Stack:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.env = {
            "ANSIM_DATA_DIR": str(data_dir),
            "ANSIM_MQTT_PORT": str(free_port()),
            "ANSIM_MQTT_TLS_PORT": str(free_port()),
            "ANSIM_HTTP_PORT": str(free_port()),
            "ANSIM_BRIDGE_METRICS_PORT": str(free_port()),
            "ANSIM_SCHEDULER_METRICS_PORT": str(free_port()),
            "ANSIM_NOTIFIER_METRICS_PORT": str(free_port()),
            "ANSIM_LOG_LEVEL": "INFO",
            "ANSIM_HEALTH_PARTS": "bridge,notifier",  # the harness runs no scheduler
            **env,
        }
        self.settings = Settings(**{k[6:].lower(): v for k, v in self.env.items()})  # type: ignore[arg-type]
        self.broker = BrokerProcess(self.settings)
        self.creds: BrokerCredentials | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.operator_token = ""

    @property
    def mqtt_port(self) -> int:
        return self.settings.mqtt_port

    @property
    def base_url(self) -> str:
        scheme = "https" if self.settings.http_tls else "http"
        return f"{scheme}://127.0.0.1:{self.settings.http_port}"

    def start_broker(self) -> None:
        self.creds = self.broker.start(log_file=self.data_dir / "mosquitto.log")

    def stop_broker(self) -> None:
        self.broker.stop()

    def _spawn(self, name: str, module: str) -> None:
        with open(self.data_dir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", module],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )

    def start_bridge(self) -> None:
        self._spawn("bridge", "broker_bridge")

    def start_notifier(self) -> None:
        self._spawn("notifier", "notifier")

    def start_api(self) -> None:
        self._spawn("api", "api")
        wait_until(self._api_up, 20, what="the API to answer /healthz")

    def _api_up(self) -> bool:
        # the API answers (503 names a part still starting or one a test stopped)
        try:
            r = httpx.get(f"{self.base_url}/healthz", timeout=1, verify=api_verify(self.settings))
            return r.status_code in (200, 503)
        except httpx.HTTPError:
            return False

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(15)

    def start(self) -> Stack:
        self.start_broker()
        self.operator_token = asyncio.run(self.create_token(Role.OPERATOR))
        self.start_bridge()
        self.start_notifier()
        self.start_api()
        return self

    async def create_token(self, role: Role, household_id: str | None = None) -> str:
        from ansim.cli import create_token

        return await create_token(self.settings, role, household_id, "tests")

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.stop_broker()

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.operator_token}"}
        return httpx.Client(
            base_url=self.base_url, headers=headers, timeout=15, verify=api_verify(self.settings)
        )

    def db_scalar(self, sql: str, *params: Any) -> Any:
        import sqlite3

        conn = sqlite3.connect(self.settings.database, timeout=15)
        try:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else row[0]
        finally:
            conn.close()

    def enrol(self, api: httpx.Client, **overrides: Any) -> dict[str, Any]:
        body = {"name": "Test household", "lat": 37.5172, "lon": 126.9072, **overrides}
        r = api.post("/api/v1/households", json=body)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    def provision(self, api: httpx.Client, household_id: str, **body: Any) -> dict[str, Any]:
        r = api.post(f"/api/v1/households/{household_id}/sensors", json=body)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data
