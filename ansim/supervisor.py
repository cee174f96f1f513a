"""`ansim up`: broker, bridge, API and scheduler as one supervised group.

Children are restarted with backoff (0.5 s doubling, capped) if they die; a child that
keeps failing at start (ANSIM_SUPERVISOR_FAIL_COUNT exits in a row, each within
ANSIM_SUPERVISOR_FAIL_WINDOW_S of its start) stops everything and `ansim up` exits 1 naming
it. The banner is printed only once `/healthz` answers 200 (every part ok) and, with
--demo, once the demo district is imported. Ctrl-C / SIGTERM stops the children in
reverse order (each gets SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from core.broker.mosquitto import BrokerProcess
from core.broker.tls import ensure_tls
from core.settings import Settings

log = logging.getLogger("ansim.supervisor")

BACKOFF_START_S = 0.5
STABLE_S = 60.0  # a child that ran this long starts its backoff afresh


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff_s: float = BACKOFF_START_S
    next_start: float = 0.0
    quick_exits: int = 0  # consecutive exits soon after start
    last_code: int | None = None
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
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)  # a stopped child cannot handle SIGTERM
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("did not stop in time; killing", extra={"child": self.name})
            self.proc.kill()
            self.proc.wait()


def on_exit(child: Child, now: float, settings: Settings) -> bool:
    """Account a child's exit; schedule its restart with backoff. False: give up (it keeps
    failing at start)."""
    assert child.proc is not None
    child.last_code = child.proc.returncode
    ran_s = now - child.started_at
    if ran_s <= settings.supervisor_fail_window_s:
        child.quick_exits += 1
    else:
        child.quick_exits = 0
    if ran_s > STABLE_S:
        child.backoff_s = BACKOFF_START_S
    if child.quick_exits >= settings.supervisor_fail_count:
        return False
    child.next_start = now + child.backoff_s
    log.error(
        "child exited; restarting",
        extra={
            "child": child.name,
            "code": child.last_code,
            "ran_s": round(ran_s, 1),
            "in_s": child.backoff_s,
            "quick_exits": child.quick_exits,
        },
    )
    child.backoff_s = min(child.backoff_s * 2, settings.supervisor_backoff_max_s)
    return True


def _get(url: str, token: str | None = None, ca: Path | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET on our own loopback API; (0, b"") when it does not answer.
    Over HTTPS (`ANSIM_HTTP_TLS=1`) the certificate is checked against our CA."""
    req = urllib.request.Request(url)  # noqa: S310 - our own loopback URL
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:  # noqa: S310
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except OSError:
        return 0, b""


def _failing_parts(body: bytes) -> str:
    try:
        data = json.loads(body)
        return ", ".join(
            f"{name} ({part.get('status')}: {part.get('reason', '')})".replace(": )", ")")
            for name, part in data.get("parts", {}).items()
            if part.get("status") != "ok"
        )
    except (ValueError, AttributeError):
        return "the API does not answer"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _loud(message: str) -> None:
    log.error(message)
    bar = "!" * 72
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)


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
    # another program on the broker's port would fool the broker's start-up wait (it
    # connects to whatever listens there): refuse at once
    for host, port, name in (
        (settings.mqtt_host, settings.mqtt_port, "ANSIM_MQTT_PORT"),
        (settings.mqtt_tls_bind, settings.mqtt_tls_port, "ANSIM_MQTT_TLS_PORT"),
    ):
        if not _port_free(host, port):
            _loud(
                f"Ansim Door cannot start: the MQTT port {host}:{port} is in use by another"
                f" program ({name})"
            )
            return 1
    broker = BrokerProcess(settings)
    log.info("starting broker", extra={"port": settings.mqtt_port})
    try:
        broker.start(log_file=settings.broker_dir / "mosquitto.log")
    except Exception as exc:
        broker.stop()
        _loud(f"Ansim Door cannot start: the MQTT broker did not start: {exc}")
        return 1

    py = sys.executable
    children = [
        Child("bridge", [py, "-m", "broker_bridge"]),
        Child("scheduler", [py, "-m", "scheduler"]),
        Child("notifier", [py, "-m", "notifier"]),
        Child("api", [py, "-m", "api"]),
    ]
    demo_child = Child(
        "demo-fleet", [py, "-m", "simulator", "demo"], env={"ANSIM_API_TOKEN": demo_token or ""}
    )
    for child in children:
        child.start()

    api = settings.api_base_url
    started = time.monotonic()
    phase = "starting"  # → "demo" (waiting for the district import) → "up"
    next_check = 0.0
    next_tls_check = time.monotonic() + settings.tls_renew_check_s
    tls_seen = _tls_fingerprint(broker)
    last_body = b""
    code = 0
    try:
        while not stopping:
            time.sleep(0.25)
            if stopping:
                break
            now = time.monotonic()
            if broker.proc is not None and broker.proc.poll() is not None:
                log.error("broker exited; restarting", extra={"code": broker.proc.returncode})
                try:
                    broker.start(log_file=settings.broker_dir / "mosquitto.log", bootstrap=False)
                except Exception as exc:
                    _loud(f"Ansim Door is stopping: the MQTT broker does not restart: {exc}")
                    code = 1
                    break
            if now >= next_tls_check:
                next_tls_check = now + settings.tls_renew_check_s
                if _tls_changed(settings, broker, tls_seen):
                    tls_seen = _tls_fingerprint(broker)
                    for child in children:
                        if child.name == "api" and settings.http_tls and child.alive():
                            child.stop()  # uvicorn reads its certificate at start only
            gave_up = None
            for child in children:
                if child.proc is None or child.alive() or stopping:
                    continue
                if child.next_start == 0.0:
                    if not on_exit(child, now, settings):
                        gave_up = child
                        break
                elif now >= child.next_start:
                    child.next_start = 0.0
                    child.restarts += 1
                    child.start()
            if gave_up is not None:
                _loud(
                    f"Ansim Door is stopping: {gave_up.name} keeps failing at start"
                    f" ({gave_up.quick_exits} exits in a row, each within"
                    f" {settings.supervisor_fail_window_s:g} s of its start;"
                    f" last exit code {gave_up.last_code}). See its log lines above."
                )
                code = 1
                break
            if phase == "up" or now < next_check:
                continue
            next_check = now + 0.5
            if phase == "starting":
                status, last_body = _get(f"{api}/healthz", ca=settings.api_ca)
                if status == 200:
                    if demo:
                        children.append(demo_child)
                        demo_child.start()
                        phase = "demo"
                    else:
                        phase = "up"
                elif now - started > settings.supervisor_up_timeout_s:
                    _loud(
                        "Ansim Door did not come up within"
                        f" {settings.supervisor_up_timeout_s:g} s (ANSIM_SUPERVISOR_UP_TIMEOUT_S);"
                        f" failing: {_failing_parts(last_body)}"
                    )
                    code = 1
                    break
            elif phase == "demo":
                from simulator.demo import _PROBE_BBOX

                status, body = _get(
                    f"{api}/api/v1/segments?bbox={_PROBE_BBOX}", demo_token, settings.api_ca
                )
                if status == 200 and json.loads(body).get("features"):
                    phase = "up"
            if phase == "up":
                _banner(settings, demo_token)
    finally:
        for child in reversed(children):
            child.stop()
        broker.stop()
        log.info("all stopped", extra={"code": code})
    return code


def _tls_fingerprint(broker: BrokerProcess) -> tuple[int, int] | None:
    if broker.tls is None:
        return None
    try:
        st = broker.tls.cert.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _tls_changed(settings: Settings, broker: BrokerProcess, seen: tuple[int, int] | None) -> bool:
    """Re-issue the generated certificate when it nears expiry (or a name was added), or
    notice that a configured one was replaced (e.g. by certbot): mosquitto reloads its
    certificate on SIGHUP without dropping a connection."""
    try:
        broker.tls = ensure_tls(settings)
    except Exception as exc:  # a broken certificate file must not stop the alerts
        log.error("checking the TLS certificate failed", extra={"error": str(exc)})
        return False
    if _tls_fingerprint(broker) == seen:
        return False
    if broker.proc is not None and broker.proc.poll() is None:
        broker.proc.send_signal(signal.SIGHUP)
    log.warning("TLS certificate changed: broker reloaded it", extra={"cert": str(broker.tls.cert)})
    return True


def _banner(settings: Settings, demo_token: str | None) -> None:
    api = settings.api_base_url
    lines = [
        "",
        "Ansim Door is up (every part answers: GET /healthz is 200)",
        f"  console    {api}/   (sign in with a token)",
        f"  API        {api}   (OpenAPI {api}/docs, metrics {api}/metrics, health {api}/healthz)",
        f"  sensors    mqtts://{settings.sensor_mqtt_host}:{settings.mqtt_tls_port}"
        f"  (MQTT over TLS 1.2+, CA {settings.tls_ca or settings.tls_dir / 'ca.pem'})",
        f"  broker     mqtt://{settings.mqtt_host}:{settings.mqtt_port}"
        f"  (plain, loopback: services and tools; log {settings.broker_dir / 'mosquitto.log'})",
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
