"""`ansim up`: broker, bridge, API and scheduler as one supervised group.

Children are restarted with backoff if they die; Ctrl-C / SIGTERM stops them in
reverse order (each gets SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from core.broker.mosquitto import BrokerProcess
from core.settings import Settings

log = logging.getLogger("ansim.supervisor")


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff_s: float = 1.0
    next_start: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(self.argv, env=env, start_new_session=True)
        self.started_at = time.monotonic()
        log.info("started", extra={"child": self.name, "pid": self.proc.pid})

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("did not stop in time; killing", extra={"child": self.name})
            self.proc.kill()
            self.proc.wait()


def _wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - our own loopback URL
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def run_up(settings: Settings, demo: bool, demo_token: str | None) -> int:
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    broker = BrokerProcess(settings)
    log.info("starting broker", extra={"port": settings.mqtt_port})
    broker.start(log_file=settings.broker_dir / "mosquitto.log")

    py = sys.executable
    children = [
        Child("bridge", [py, "-m", "broker_bridge"]),
        Child("scheduler", [py, "-m", "scheduler"]),
        Child("notifier", [py, "-m", "notifier"]),
        Child("api", [py, "-m", "api"]),
    ]
    if demo:
        children.append(
            Child(
                "demo-fleet",
                [py, "-m", "simulator", "demo"],
                env={"ANSIM_API_TOKEN": demo_token or ""},
            )
        )
    for child in children:
        if child.name == "demo-fleet" and not _wait_http(f"{settings.api_base_url}/healthz", 30):
            log.error("API did not come up; the demo fleet is not started")
            continue
        child.start()

    api = settings.api_base_url
    lines = [
        "",
        "Ansim Door is up",
        f"  console    {api}/   (sign in with a token)",
        f"  API        {api}   (OpenAPI {api}/docs, metrics {api}/metrics)",
        f"  broker     mqtt://{settings.mqtt_host}:{settings.mqtt_port}"
        f"  (log {settings.broker_dir / 'mosquitto.log'})",
        f"  bridge     metrics http://{settings.http_host}:{settings.bridge_metrics_port}/metrics",
        f"  scheduler  metrics http://{settings.http_host}:{settings.scheduler_metrics_port}/metrics",
        f"  notifier   metrics http://{settings.http_host}:{settings.notifier_metrics_port}/metrics"
        f"  (control centre webhook: {settings.centre_webhook_url or 'not set'})",
        f"  data       {settings.data_dir}  (time mode {settings.time_mode})",
    ]
    if demo_token:
        lines.append(f"  operator token (demo): {demo_token}")
    lines.append("Press Ctrl-C to stop.\n")
    print("\n".join(lines), file=sys.stderr, flush=True)

    try:
        while not stopping:
            time.sleep(0.5)
            if stopping:
                break
            if broker.proc is not None and broker.proc.poll() is not None:
                log.error("broker exited; restarting", extra={"code": broker.proc.returncode})
                broker.start(log_file=settings.broker_dir / "mosquitto.log", bootstrap=False)
            now = time.monotonic()
            for child in children:
                if child.proc is None or child.alive() or stopping:
                    continue
                if child.next_start == 0.0:
                    code = child.proc.returncode
                    if now - child.started_at > 60:
                        child.backoff_s = 1.0
                    child.next_start = now + child.backoff_s
                    log.error(
                        "child exited; restarting",
                        extra={"child": child.name, "code": code, "in_s": child.backoff_s},
                    )
                    child.backoff_s = min(child.backoff_s * 2, 30.0)
                elif now >= child.next_start:
                    child.next_start = 0.0
                    child.restarts += 1
                    child.start()
    finally:
        for child in reversed(children):
            child.stop()
        broker.stop()
        log.info("all stopped")
    return 0
