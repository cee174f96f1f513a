"""Run the project's own mosquitto from the repo's `mosquitto.conf`, and bootstrap its
dynamic-security file: the admin account, the bridge account and their roles."""

from __future__ import annotations

import getpass
import ipaddress
import json
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from core.broker.dynsec import DynsecAdmin
from core.broker.tls import TlsFiles, ensure_tls
from core.credentials import new_password
from core.errors import ConfigError
from core.settings import Settings
from core.wire import SENSORS_FILTER

log = logging.getLogger(__name__)

BRIDGE_ROLE = "ansim-bridge"


@dataclass(frozen=True, slots=True)
class BrokerCredentials:
    admin_username: str
    admin_password: str
    bridge_username: str
    bridge_password: str


# the sensors' topics, plainly (one bridge) and as the shared subscription of several
# (`$share/<group>/…`, which mosquitto checks against the ACL as written)
_BRIDGE_SUBSCRIBE_ACLS = (
    {"acltype": "subscribePattern", "topic": SENSORS_FILTER, "allow": True},
    {"acltype": "subscribePattern", "topic": f"$share/+/{SENSORS_FILTER}", "allow": True},
)


def credentials_path(settings: Settings) -> Path:
    return settings.broker_dir / "credentials.json"


def load_or_create_credentials(settings: Settings) -> BrokerCredentials:
    """Service-account passwords live in DATA_DIR/broker/credentials.json (mode 0600),
    created on first start; env vars ANSIM_MQTT_*_PASSWORD override them."""
    path = credentials_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        stored = {"admin_password": new_password(), "bridge_password": new_password()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f)
    return BrokerCredentials(
        admin_username=settings.mqtt_admin_username,
        admin_password=os.environ.get("ANSIM_MQTT_ADMIN_PASSWORD", stored["admin_password"]),
        bridge_username=settings.mqtt_bridge_username,
        bridge_password=os.environ.get("ANSIM_MQTT_BRIDGE_PASSWORD", stored["bridge_password"]),
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def render_config(settings: Settings, tls: TlsFiles) -> Path:
    if not is_loopback(settings.mqtt_host):
        if not settings.mqtt_plain_expose:
            raise ConfigError(
                f"ANSIM_MQTT_HOST={settings.mqtt_host} would expose plain MQTT beyond this "
                "machine; sensors use the TLS listener. Set ANSIM_MQTT_PLAIN_EXPOSE=1 to "
                "expose it anyway"
            )
        log.warning(
            "plain MQTT listener exposed beyond loopback: passwords and door events "
            "cross the network in clear text",
            extra={"bind": settings.mqtt_host, "port": settings.mqtt_port},
        )
    template = settings.mosquitto_conf.read_text()
    values = {
        "@MQTT_PORT@": str(settings.mqtt_port),
        "@MQTT_BIND@": settings.mqtt_host,
        "@MQTT_TLS_PORT@": str(settings.mqtt_tls_port),
        "@MQTT_TLS_BIND@": settings.mqtt_tls_bind,
        "@TLS_CERT@": str(tls.cert),
        "@TLS_KEY@": str(tls.key),
        "@AUTOSAVE_INTERVAL@": str(settings.mqtt_autosave_s),
        "@BROKER_DIR@": str(settings.broker_dir),
        "@DYNSEC_PLUGIN@": settings.mosquitto_plugin,
        "@USER@": getpass.getuser(),
    }
    for key, value in values.items():
        template = template.replace(key, value)
    out = settings.broker_dir / "mosquitto.conf"
    out.write_text(template)
    return out


def _check_tools(settings: Settings) -> None:
    for name, path in (
        ("mosquitto", settings.mosquitto_bin),
        ("mosquitto_ctrl", settings.mosquitto_ctrl_bin),
        ("dynamic-security plugin", settings.mosquitto_plugin),
    ):
        if not Path(path).exists() and not _on_path(path):
            raise ConfigError(
                f"{name} not found at {path!r}: install Debian's mosquitto package "
                "(scripts/setup.sh does) or set ANSIM_MOSQUITTO_BIN / ANSIM_MOSQUITTO_PLUGIN"
            )


def _on_path(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


def init_dynsec(settings: Settings, creds: BrokerCredentials) -> None:
    """First start only: `mosquitto_ctrl dynsec init` writes the admin account, then the
    roles (which carry no secrets) are added to the file before the broker reads it.
    Changing a connected client's roles later would make the plugin kick it."""
    path = settings.broker_dir / "dynamic-security.json"
    if path.exists():
        return
    tmp = path.with_suffix(".init.json")
    tmp.unlink(missing_ok=True)
    subprocess.run(
        [settings.mosquitto_ctrl_bin, "dynsec", "init", str(tmp), creds.admin_username,
         creds.admin_password],
        check=True,
        capture_output=True,
    )  # fmt: skip
    config = json.loads(tmp.read_text())
    for role in config["roles"]:
        if role["rolename"] == "admin":
            role["acls"].append(
                {
                    "acltype": "publishClientSend",
                    "topic": "ansim/v1/sensors/+/status",
                    "allow": True,
                }
            )
    config["roles"].append(
        {
            "rolename": BRIDGE_ROLE,
            "acls": [
                *_BRIDGE_SUBSCRIBE_ACLS,
                {"acltype": "publishClientReceive", "topic": SENSORS_FILTER, "allow": True},
            ],
        }
    )
    tmp.write_text(json.dumps(config, indent=1))
    tmp.chmod(0o600)
    tmp.rename(path)


def wait_for_port(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigError(f"mosquitto exited with code {proc.returncode} during start")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ConfigError(f"nothing listens on {host}:{port} after {timeout_s} s")


def bootstrap_accounts(settings: Settings, creds: BrokerCredentials) -> None:
    """Idempotent: the bridge role/account and the admin's extra rights exist and match."""
    admin = DynsecAdmin(
        settings.mqtt_host, settings.mqtt_port, creds.admin_username, creds.admin_password
    )
    admin.start()
    try:
        admin.call(
            [{"command": "createClient", "username": creds.bridge_username,
              "password": creds.bridge_password, "roles": [{"rolename": BRIDGE_ROLE}]}],
            tolerate=("already exists",),
        )  # fmt: skip
        # a broker set up before several bridges existed lacks the shared subscription
        for acl in _BRIDGE_SUBSCRIBE_ACLS:
            admin.call(
                [{"command": "addRoleACL", "rolename": BRIDGE_ROLE, **acl}],
                tolerate=("already exists",),
            )
        # keeps the file in step with credentials.json / ANSIM_MQTT_BRIDGE_PASSWORD
        admin.call(
            [{"command": "setClientPassword", "username": creds.bridge_username,
              "password": creds.bridge_password}]
        )  # fmt: skip
    finally:
        admin.stop()


class BrokerProcess:
    """mosquitto as a child process on the rendered config."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.creds: BrokerCredentials | None = None
        self.tls: TlsFiles | None = None

    def prepare(self) -> BrokerCredentials:
        _check_tools(self.settings)
        self.settings.broker_dir.mkdir(parents=True, exist_ok=True)
        self.creds = load_or_create_credentials(self.settings)
        init_dynsec(self.settings, self.creds)
        self.tls = ensure_tls(self.settings)
        render_config(self.settings, self.tls)
        return self.creds

    def start(self, log_file: Path | None = None, bootstrap: bool = True) -> BrokerCredentials:
        creds = self.prepare()
        conf = self.settings.broker_dir / "mosquitto.conf"
        out = open(log_file, "ab") if log_file else None  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [self.settings.mosquitto_bin, "-c", str(conf)],
                stdout=out or subprocess.DEVNULL,
                stderr=out or subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only
            )
        finally:
            if out is not None:
                out.close()
        wait_for_port(self.settings.mqtt_host, self.settings.mqtt_port, 15.0, self.proc)
        tls_bind = self.settings.mqtt_tls_bind
        tls_host = "127.0.0.1" if tls_bind in ("", "0.0.0.0", "::") else tls_bind  # noqa: S104
        wait_for_port(tls_host, self.settings.mqtt_tls_port, 15.0, self.proc)
        if bootstrap:
            bootstrap_accounts(self.settings, creds)
        return creds

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
