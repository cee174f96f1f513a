"""Encrypted transport against the real broker and API: sensors publish only over TLS
with the CA their provisioning answer carries; untrusted, old-TLS and plain clients are
refused on the TLS port; the plain port is loopback-only; the API speaks HTTPS."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from core.broker.mosquitto import render_config
from core.broker.tls import ensure_tls
from core.errors import ConfigError
from core.models import EventType
from core.settings import Settings
from simulator.device import VirtualSensor
from simulator.transport import tls_context
from tests.harness import Stack, wait_until


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("tls"), ANSIM_HTTP_TLS="1")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _provisioned(stack: Stack) -> dict[str, Any]:
    with stack.api() as api:
        hh = stack.enrol(api)
        return stack.provision(api, hh["household_id"])


def _tls11_only(ca_pem: str | None) -> ssl.SSLContext:
    """A client that offers TLS 1.1 and nothing newer (allowed at the lowest level)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def _handshake(port: int, ctx: ssl.SSLContext) -> str:
    """A TLS handshake with the broker: 'ok' or the error class and message."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                return "ok"
        except ssl.SSLError as exc:
            return f"{type(exc).__name__}: {exc}"


def _connect(port: int, username: str, password: str, ctx: ssl.SSLContext | None) -> str:
    """One CONNECT: 'ok', or why it did not get a CONNACK success."""
    result: dict[str, str] = {}
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    c.username_pw_set(username, password)
    if ctx is not None:
        c.tls_set_context(ctx)

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        result["rc"] = "refused " + str(rc) if rc.is_failure else "ok"
        done.set()

    def on_disconnect(*_a: Any) -> None:
        result.setdefault("rc", "disconnected before CONNACK")
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    try:
        c.connect("127.0.0.1", port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return f"error {type(exc).__name__}: {exc}"
    c.loop_start()
    done.wait(5)
    c.loop_stop()
    c.disconnect()
    return result.get("rc", "no answer")


def test_provisioned_sensor_publishes_over_tls_and_is_stored(tls_stack: Stack) -> None:
    prov = _provisioned(tls_stack)
    m = prov["mqtt"]
    assert m["tls"] is True and m["port"] == tls_stack.settings.mqtt_tls_port
    assert m["port"] != tls_stack.settings.mqtt_port
    assert m["server_name"] == m["host"]
    # the CA handed out is the one the broker's certificate chains to
    ca = x509.load_pem_x509_certificate(m["ca_pem"].encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sensor = VirtualSensor.provisioned(prov, boot=1)
    try:
        assert sensor.start(), sensor.refused
        assert isinstance(sensor.client.socket(), ssl.SSLSocket)
        sensor.publish(EventType.OPEN, datetime.now(UTC)).wait_for_publish(5)
        with tls_stack.api() as api:
            wait_until(
                lambda: api.get(f"/api/v1/sensors/{prov['sensor_id']}/events").json()["data"],
                10,
                what="the event sent over TLS to be stored",
            )
    finally:
        sensor.stop()


def test_untrusted_old_and_plain_clients_are_refused_on_the_tls_port(tls_stack: Stack) -> None:
    prov = _provisioned(tls_stack)
    m = prov["mqtt"]
    port = m["port"]
    good = tls_context(m["ca_pem"])
    assert _connect(port, prov["sensor_id"], m["password"], good) == "ok"

    # a client that trusts only the system CAs: the broker's certificate fails
    untrusted = _handshake(port, tls_context(None))
    assert untrusted.startswith("SSLCertVerificationError"), untrusted

    # TLS 1.1 only (the client allows it at the lowest security level): no handshake
    old = _tls11_only(m["ca_pem"])
    refused_old = _handshake(port, old)
    assert refused_old.startswith("SSLError"), refused_old

    # plain MQTT to the TLS port: never a CONNACK
    plain = _connect(port, prov["sensor_id"], m["password"], None)
    assert plain != "ok", plain
    # and the bytes of a plain CONNECT get nothing back but a closed connection
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc")
        s.settimeout(5)
        try:
            answer = s.recv(64)
        except (ConnectionResetError, TimeoutError):
            answer = b""
        assert not answer.startswith(b"\x20"), answer  # 0x20 would be a CONNACK


def _non_loopback_ipv4() -> str:
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback:
                return str(a.address)
    # no such address here: make one (the test runs where it may change lo's addresses)
    extra = "192.0.2.201"
    subprocess.run(["/usr/sbin/ip", "addr", "add", f"{extra}/32", "dev", "lo"], check=True)
    return extra


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_plain_port_is_loopback_only(tls_stack: Stack) -> None:
    addr = _non_loopback_ipv4()
    s = tls_stack.settings
    assert _reachable("127.0.0.1", s.mqtt_port)
    assert not _reachable(addr, s.mqtt_port), f"plain MQTT answers on {addr}"
    # the TLS listener is the one the network sees
    assert _reachable(addr, s.mqtt_tls_port)


def test_exposing_the_plain_listener_is_explicit(tmp_path: Path) -> None:
    exposed = Settings(data_dir=tmp_path, mqtt_host="0.0.0.0")  # noqa: S104
    with pytest.raises(ConfigError, match="ANSIM_MQTT_PLAIN_EXPOSE"):
        render_config(exposed, ensure_tls(exposed))
    allowed = Settings(data_dir=tmp_path, mqtt_host="0.0.0.0", mqtt_plain_expose=True)  # noqa: S104
    (tmp_path / "broker").mkdir()
    conf = render_config(allowed, ensure_tls(allowed)).read_text()
    assert "listener 1883 0.0.0.0" in conf and "tls_version tlsv1.2" in conf


def test_generated_ca_is_kept_and_server_cert_reissued_for_new_names(tmp_path: Path) -> None:
    first = ensure_tls(Settings(data_dir=tmp_path))
    assert first.ca is not None
    ca_before = first.ca.read_bytes()
    cert_before = first.cert.read_bytes()
    assert (tmp_path / "tls" / "ca.key").stat().st_mode & 0o077 == 0
    again = ensure_tls(Settings(data_dir=tmp_path))
    assert again.cert.read_bytes() == cert_before  # nothing changed, nothing re-issued
    named = ensure_tls(Settings(data_dir=tmp_path, public_host="door.example.org"))
    assert named.ca is not None and named.ca.read_bytes() == ca_before
    cert = x509.load_pem_x509_certificate(named.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "door.example.org" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)


def test_api_serves_https_with_the_same_certificate(tls_stack: Stack) -> None:
    assert tls_stack.base_url.startswith("https://")
    with tls_stack.api() as api:
        r = api.get("/healthz")
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
    # without the CA the certificate is not trusted
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_stack.base_url}/healthz", timeout=5)
    # plain HTTP to the HTTPS port gets no API answer
    with pytest.raises(httpx.HTTPError):
        r = httpx.get(f"http://127.0.0.1:{tls_stack.settings.http_port}/healthz", timeout=5)
        if r.status_code != 200:
            raise httpx.HTTPError(f"status {r.status_code}")
    # TLS 1.1 is refused by the HTTPS listener too
    old = _tls11_only(None)
    started = time.monotonic()
    with (
        socket.create_connection(("127.0.0.1", tls_stack.settings.http_port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        old.wrap_socket(raw, server_hostname="127.0.0.1")
    assert time.monotonic() - started < 5


def _served_names(port: int, ca_pem: str) -> list[str]:
    ctx = tls_context(ca_pem)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    """The supervisor's hourly check: a re-issued certificate (here: a name added) is
    reloaded by the running broker on SIGHUP, its connections kept."""
    from ansim.supervisor import _tls_changed, _tls_fingerprint

    stack = Stack(tmp_path)
    stack.start_broker()
    try:
        broker = stack.broker
        assert broker.tls is not None and broker.tls.ca is not None
        ca = broker.tls.ca.read_text()
        port = stack.settings.mqtt_tls_port
        assert "door.example.org" not in _served_names(port, ca)
        seen = _tls_fingerprint(broker)
        assert not _tls_changed(stack.settings, broker, seen)  # nothing to do
        pid = broker.proc.pid if broker.proc else None
        renamed = stack.settings.model_copy(update={"public_host": "door.example.org"})
        assert _tls_changed(renamed, broker, seen)
        wait_until(lambda: "door.example.org" in _served_names(port, ca), 10, what="reload")
        assert broker.proc is not None and broker.proc.pid == pid  # same process
        assert broker.tls.ca.read_text() == ca  # the sensors' CA never changes
    finally:
        stack.stop_broker()
