"""Every setting is an `ANSIM_` environment variable; the defaults are documented here
and in README's settings table. Build a Settings in `main`, never at import time.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.dead_letter_cap import DEFAULT_CAP, DEFAULT_WINDOW_S
from core.models import DEFAULT_K, TimeMode

if TYPE_CHECKING:
    from core.grading import GradeParams

REPO_ROOT = Path(__file__).resolve().parent.parent

_PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)


def _find_plugin() -> str:
    for candidate in _PLUGIN_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return _PLUGIN_CANDIDATES[0]


def _find_binary(name: str, *extra: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in extra:
        if Path(candidate).exists():
            return candidate
    return name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANSIM_", extra="ignore")

    # where things live
    data_dir: Path = Field(default=Path("data"), description="SQLite file and broker state")
    db_path: Path | None = Field(default=None, description="default: DATA_DIR/ansim.db")
    # PostgreSQL instead of the SQLite file: postgresql://user:pass@host:port/db (issue 10)
    database_url: str | None = None
    pg_pool_size: int = 4  # pooled connections per API/notifier/scheduler process (reads)

    # HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = 8000

    # MQTT broker
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_public_host: str | None = None  # host given to sensors; default public_host
    mqtt_autosave_s: int = 1  # broker state written every N s: its crash window
    mqtt_plain_expose: bool = False  # allow the plain listener on a non-loopback mqtt_host
    mqtt_admin_username: str = "ansim-admin"
    mqtt_bridge_username: str = "ansim-bridge"
    mosquitto_bin: str = Field(
        default_factory=lambda: _find_binary("mosquitto", "/usr/sbin/mosquitto")
    )
    mosquitto_ctrl_bin: str = Field(default_factory=lambda: _find_binary("mosquitto_ctrl"))
    mosquitto_plugin: str = Field(default_factory=_find_plugin)
    mosquitto_conf: Path = REPO_ROOT / "mosquitto.conf"

    # encrypted transport (core/broker/tls.py): sensors only over TLS
    mqtt_tls_port: int = 8883  # the sensors' listener, TLS 1.2+
    mqtt_tls_bind: str = "0.0.0.0"  # noqa: S104 — sensors connect from their homes
    public_host: str | None = None  # the name sensors and browsers reach this host by
    tls_cert: Path | None = None  # PEM certificate (chain); default: generated under data_dir
    tls_key: Path | None = None  # its private key
    tls_ca: Path | None = None  # CA sensors verify tls_cert with (default: generated CA)
    http_tls: bool = False  # serve the API and console over HTTPS with the same certificate
    tls_renew_check_s: float = 3600.0  # `ansim up` re-checks the certificate (renew, reload)

    # time
    time_mode: TimeMode = TimeMode.LIVE
    clock_skew_tolerance_s: float = 120.0
    replay_max_jump_s: float = 86_400.0  # replay: a bigger jump of the event clock needs 2 sensors
    timezone: str = "Asia/Seoul"
    heartbeat_interval_s: int = 600

    # bridge
    bridge_batch_max: int = 2000
    bridge_batch_wait_ms: int = 20
    bridge_receive_maximum: int = 4000
    bridge_session_expiry_s: int = 7 * 24 * 3600
    bridge_metrics_port: int = 9108  # slot i listens on this + i
    # several bridges on an MQTT v5 shared subscription (issue 13); > 1 needs PostgreSQL
    bridges: int = 1
    bridge_slot: int = 0  # this process's slot, 0 … bridges-1: its client id and session
    bridge_share_group: str = "ansim-bridges"  # $share/<group>/ansim/v1/sensors/#
    bridge_checkpoint_s: float = 1.0  # WAL checkpoint off the writer every N s (0: in COMMIT)

    # this process's name among several of a kind (leases, claims, heartbeats); empty:
    # <hostname>:<pid>
    instance_id: str = ""

    # scheduler
    scheduler_metrics_port: int = 9109
    # several schedulers: one leader holds the `scheduler` lease in the database, renewing it
    # every RENEW_S; the others stand by and take it over once it has not been renewed for
    # LEASE_S (a leader that cannot renew in time stops its jobs first: it fences itself)
    scheduler_lease_s: float = 15.0
    scheduler_renew_s: float = 3.0
    retention_days: int = 14
    offline_sweep_interval_s: int = 60

    # alerts (SPEC "Alerts")
    entry_delay_s: int = 30
    door_left_open_s: int = 600
    escalation_delay_s: int = 180
    battery_low_pct: int = 20
    offline_grace_s: int = 60
    rules_tick_ms: int = 500

    # notifications
    centre_webhook_url: str | None = None
    centre_webhook_secret: str | None = None
    notify_poll_ms: int = 100
    notify_timeout_s: float = 5.0
    notify_backoff_max_s: float = 60.0
    notify_give_up_s: float = 48 * 3600
    notify_concurrency: int = 20
    notifier_metrics_port: int = 9110
    # per-endpoint isolation of webhook delivery (core/dispatch.py)
    notify_endpoint_inflight: int = 2  # attempts in flight to one scheme://host:port
    notify_circuit_failures: int = 5  # consecutive failures that open an endpoint's circuit
    notify_circuit_cooloff_s: float = 30.0  # open → half-open (capped at notify_backoff_max_s)
    notify_slow_ms: int = 250  # a first attempt in flight longer counts as a retry
    webhook_ca_file: Path | None = None  # extra CA (PEM) trusted for https:// webhooks
    webhook_allow_http: bool = False  # allow http:// webhook URLs outside loopback

    # street-segment grades (docs/grading.md; defaults are core.grading.GradeParams')
    grade_k: int = DEFAULT_K  # k-anonymity for segment incident detail
    grade_bandwidth_m: float = 150.0
    grade_half_life_days: float = 180.0
    grade_max_age_days: float = 730.0
    grade_prior_households: float = 1.0
    grade_thresholds: tuple[float, ...] = (0.3, 0.7, 1.2, 2.0)
    grade_hysteresis: float = 0.2
    grade_recompute_hour: int = 2  # nightly recompute, local time
    grade_recompute_minute: int = 0

    # local PostgreSQL for development and tests (issue 10 item 4, core/pgserver.py)
    pg_bin_dir: Path | None = None  # initdb/pg_ctl; default /usr/lib/postgresql/15/bin or PATH
    pg_port: int = 5433  # 127.0.0.1 port of the project's own cluster; 0 picks a free one
    pg_run_user: str = "ansim-pg"  # unprivileged system user that runs it when started as root

    # --- issue 9 items 7/8 (uphonest): service heartbeats, /healthz, `ansim up` supervision ---
    heartbeat_write_s: float = 5.0  # bridge/notifier/scheduler write their heartbeat this often
    health_stale_s: float = 30.0  # /healthz: a part silent for longer is down (503)
    health_behind_s: float = 10.0  # /healthz: bridge "degraded" when its oldest unacked is older
    health_parts: str = "bridge,notifier,scheduler"  # services whose heartbeat /healthz requires
    supervisor_fail_count: int = 3  # this many consecutive quick exits of a child: give up
    supervisor_fail_window_s: float = 10.0  # an exit this soon after start counts as quick
    supervisor_backoff_max_s: float = 30.0  # restart backoff cap (starts at 0.5 s, doubles)
    supervisor_up_timeout_s: float = 60.0  # every part healthy within this, or `ansim up` fails

    # logging
    log_level: str = "INFO"

    # demo / simulator
    demo_households: int = 12
    api_url: str | None = None  # default http://{http_host}:{http_port}
    api_token: str | None = None

    # dead letters: retention and per-sensor rate cap (issue 9 item 6, core/dead_letter_cap.py)
    # dead letters and their tallies older than this are deleted daily (job dead_letter_purge)
    dead_letter_retention_days: int = Field(default=14, ge=1)
    # dead letters stored whole per sensor (or topic naming none) and window; the rest of the
    # window only counted (GET /api/v1/dead-letters `suppressed`); 0 = count every one only
    dead_letter_cap_per_sensor: int = Field(default=DEFAULT_CAP, ge=0)
    # length of the cap's window, aligned to the epoch (3600: clock hours)
    dead_letter_cap_window_s: int = Field(default=DEFAULT_WINDOW_S, ge=1)

    # --- issue 10 item 5 (brokertx): broker calls outside database transactions ---
    # a sensor still `pending` (provisioning committed, broker client never confirmed: a crash
    # or an outage, and no retry) for longer than this is given up by the scheduler's sweep:
    # retired as `provisioning_abandoned`, its broker client deleted if it got one
    sensor_pending_timeout_s: float = Field(default=300.0, gt=0)
    # how often the scheduler's `sensor_broker_sweep` runs (it also deletes the broker clients
    # of retired sensors that an outage left behind)
    sensor_broker_sweep_interval_s: int = Field(default=60, ge=1)

    # --- issue 15 (trust): alerts a resident can trust ---
    # arming `away`/`night` starts an exit delay: openings within it do not count (the
    # resident walking out); a household's own `exit_delay_s` overrides it (0: none)
    exit_delay_s: int = Field(default=60, ge=0, le=3600)

    # --- issue 15 items 9-10 (panic): duress code, door bounce ---
    # an opening this many ms after the door closed is the same opening (a contact bouncing
    # as the door swings shut, open-close-open): one alert, one learned opening (0: off)
    door_bounce_ms: int = Field(default=2000, ge=0, le=60_000)

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def grade_params(self) -> GradeParams:
        from core.grading import GradeParams  # numpy and shapely: only where grades are made

        return GradeParams(
            bandwidth_m=self.grade_bandwidth_m,
            half_life_days=self.grade_half_life_days,
            max_age_days=self.grade_max_age_days,
            prior_households=self.grade_prior_households,
            thresholds=tuple(self.grade_thresholds),
            hysteresis=self.grade_hysteresis,
        )

    @property
    def instance(self) -> str:
        return self.instance_id or f"{socket.gethostname()}:{os.getpid()}"

    @property
    def bridge_part(self) -> str:
        """This bridge's name in heartbeats and /healthz: `bridge`, or `bridge-<slot>` when
        there are several."""
        return "bridge" if self.bridges <= 1 else f"bridge-{self.bridge_slot}"

    def bridge_parts(self) -> list[str]:
        return ["bridge"] if self.bridges <= 1 else [f"bridge-{i}" for i in range(self.bridges)]

    @property
    def database(self) -> Path:
        return (self.db_path or self.data_dir / "ansim.db").expanduser().resolve()

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def api_ca(self) -> Path | None:
        """The CA our own HTTPS API is verified with (None: plain HTTP, or a public CA)."""
        if not self.http_tls:
            return None
        return self.tls_ca if self.tls_cert else self.tls_dir / "ca.pem"

    @property
    def sensor_mqtt_host(self) -> str:
        return self.mqtt_public_host or self.public_host or self.mqtt_host

    @property
    def api_base_url(self) -> str:
        scheme = "https" if self.http_tls else "http"
        return self.api_url or f"{scheme}://{self.http_host}:{self.http_port}"
