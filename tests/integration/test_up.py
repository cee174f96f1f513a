"""`ansim up` is honest: a child that cannot start exits non-zero at once, the supervisor
gives up loudly when one keeps failing at start, and `/healthz` names a part that went
silent (SIGSTOP) and recovers after SIGCONT. Real broker, real database, real processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import ROOT, Stack, free_port, wait_until


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIM_DATA_DIR": str(data_dir),
        "ANSIM_MQTT_PORT": str(free_port()),
        "ANSIM_HTTP_PORT": str(free_port()),
        "ANSIM_BRIDGE_METRICS_PORT": str(free_port()),
        "ANSIM_SCHEDULER_METRICS_PORT": str(free_port()),
        "ANSIM_NOTIFIER_METRICS_PORT": str(free_port()),
        "ANSIM_LOG_LEVEL": "INFO",
        **extra,
    }


def _hold(port: int) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize(
    ("module", "port_var", "service"),
    [
        ("broker_bridge", "ANSIM_BRIDGE_METRICS_PORT", "bridge"),
        ("notifier", "ANSIM_NOTIFIER_METRICS_PORT", "notifier"),
        ("scheduler", "ANSIM_SCHEDULER_METRICS_PORT", "scheduler"),
        ("api", "ANSIM_HTTP_PORT", "api"),
    ],
)
def test_child_with_its_port_taken_exits_non_zero_promptly(
    tmp_path: Path, module: str, port_var: str, service: str
) -> None:
    env = _env(tmp_path)
    held = _hold(int(env[port_var]))
    try:
        started = time.monotonic()
        # no broker is running: nothing else may delay the exit either
        proc = subprocess.run(
            [sys.executable, "-m", module], env=env, cwd=ROOT, capture_output=True, timeout=30
        )
        took = time.monotonic() - started
    finally:
        held.close()
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert took < 10, f"{module} took {took:.1f} s to give up"
    assert re.search(rf'"service": "{service}".*"msg": "cannot start: \w+ port unavailable"', err)
    assert env[port_var] in err


@pytest.mark.parametrize(
    ("port_var", "child"),
    [
        ("ANSIM_BRIDGE_METRICS_PORT", "bridge"),
        ("ANSIM_SCHEDULER_METRICS_PORT", "scheduler"),
        ("ANSIM_NOTIFIER_METRICS_PORT", "notifier"),
        ("ANSIM_HTTP_PORT", "api"),
    ],
)
def test_up_exits_non_zero_when_a_child_port_is_taken(
    tmp_path: Path, port_var: str, child: str
) -> None:
    env = _env(tmp_path)
    held = _hold(int(env[port_var]))
    try:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "ansim", "up"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=90,
        )
        took = time.monotonic() - started
    finally:
        held.close()
    err = proc.stderr.decode()
    print(f"ansim up gave up after {took:.1f} s ({child})")
    assert proc.returncode == 1, err[-3000:]
    assert took < 45
    assert f"{child} keeps failing at start" in err and "last exit code 2" in err
    assert "Ansim Door is up" not in err
    # everything it started is stopped again: the ports are free
    for var in (
        "ANSIM_MQTT_PORT",
        "ANSIM_HTTP_PORT",
        "ANSIM_BRIDGE_METRICS_PORT",
        "ANSIM_SCHEDULER_METRICS_PORT",
        "ANSIM_NOTIFIER_METRICS_PORT",
    ):
        if var != port_var:
            assert _port_free(int(env[var])), var


def test_up_refuses_at_once_when_the_mqtt_port_is_taken(tmp_path: Path) -> None:
    env = _env(tmp_path)
    held = _hold(int(env["ANSIM_MQTT_PORT"]))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ansim", "up"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=30,
        )
    finally:
        held.close()
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert f"the MQTT port 127.0.0.1:{env['ANSIM_MQTT_PORT']} is in use" in err
    assert "Ansim Door is up" not in err


def test_healthz_names_the_broker_when_it_is_gone(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    stack.start()
    try:
        wait_until(lambda: _health(stack.env)[0] == 200, 20, what="healthz 200")
        stack.stop_broker()
        _status, body = wait_until(
            lambda: (r := _health(stack.env))[0] == 503 and "broker" in r[1]["failing"] and r,
            20,
            what="503 naming the broker",
        )
        assert body["parts"]["broker"]["status"] == "down" and body["parts"]["broker"]["reason"]
        stack.start_broker()
        wait_until(lambda: _health(stack.env)[0] == 200, 30, what="200 after the broker is back")
    finally:
        stack.stop()


def test_demo_banner_only_after_the_district_import(tmp_path: Path) -> None:
    env = _env(tmp_path, ANSIM_DEMO_HOUSEHOLDS="1")
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ansim", "up", "--demo"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    try:
        wait_until(lambda: "Ansim Door is up" in log_path.read_text(), 120, what="the banner")
        text = log_path.read_text()
        assert text.index('"demo district imported"') < text.index("Ansim Door is up")
        with sqlite3.connect(tmp_path / "ansim.db") as db:
            assert db.execute("SELECT COUNT(*) FROM segments").fetchone()[0] > 50_000
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], Path]]:
    env = _env(tmp_path, ANSIM_HEARTBEAT_WRITE_S="1", ANSIM_HEALTH_STALE_S="5")
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ansim", "up"], env=env, cwd=ROOT, stdout=log, stderr=log
        )
    try:
        yield proc, env, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _health(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    try:
        r = httpx.get(f"http://127.0.0.1:{env['ANSIM_HTTP_PORT']}/healthz", timeout=2)
    except httpx.HTTPError:
        return 0, {}
    return r.status_code, r.json()


def test_healthz_names_a_stopped_bridge_and_recovers(
    up: tuple[subprocess.Popen[bytes], dict[str, str], Path],
) -> None:
    proc, env, log_path = up
    wait_until(lambda: "Ansim Door is up" in log_path.read_text(), 60, what="the banner")
    status, body = _health(env)
    assert status == 200, body
    assert set(body["parts"]) == {"database", "broker", "bridge", "notifier", "scheduler"}
    with sqlite3.connect(Path(env["ANSIM_DATA_DIR"]) / "ansim.db") as db:
        pid = db.execute("SELECT pid FROM service_heartbeats WHERE part = 'bridge'").fetchone()[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        status, body = wait_until(
            lambda: (r := _health(env))[0] == 503 and r, 30, every_s=0.25, what="503"
        )
        silent_s = time.monotonic() - stopped
        assert body["failing"] == ["bridge"], body
        assert body["parts"]["bridge"]["status"] == "stale" and body["parts"]["bridge"]["age_s"] > 5
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    wait_until(lambda: _health(env)[0] == 200, 30, every_s=0.25, what="200 after SIGCONT")
    print(
        f"503 {silent_s:.1f} s after SIGSTOP; 200 {time.monotonic() - resumed:.1f} s after SIGCONT"
    )
    assert proc.poll() is None
