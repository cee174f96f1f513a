"""The deployment's TLS material: the broker's sensor listener and (with
`ANSIM_HTTP_TLS=1`) the API's HTTPS use the same certificate.

With `ANSIM_TLS_CERT` / `ANSIM_TLS_KEY` set, those files are used as they are (and
`ANSIM_TLS_CA`, when set, is what sensors are told to verify the broker with). Otherwise
the first start makes a private CA and a server certificate under `DATA_DIR/tls/` and
keeps them: the CA is never replaced (sensors in the field trust it), the server
certificate is re-issued from it when a name it must carry is missing or it is close to
expiry. Creation takes a file lock, so the broker and the API starting together agree.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import ConfigError
from core.settings import Settings

log = logging.getLogger(__name__)

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients such as browsers accept
RENEW_BEFORE_DAYS = 30


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path  # server certificate (chain) in PEM
    key: Path
    ca: Path | None  # what clients verify the server with; None: a public CA's chain
    generated: bool

    def ca_pem(self) -> str | None:
        return self.ca.read_text() if self.ca is not None else None


def api_verify(settings: Settings) -> ssl.SSLContext | bool:
    """What a client of our own API (simulator, supervisor) verifies it with."""
    ca = settings.api_ca
    if ca is None:
        return True
    return ssl.create_default_context(cafile=str(ca))


def server_names(settings: Settings) -> list[str]:
    """The names the generated certificate carries: loopback, this host, the public host."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    for extra in (settings.public_host, settings.mqtt_public_host):
        if extra:
            names.append(extra)
    return list(dict.fromkeys(n for n in names if n))


def ensure_tls(settings: Settings) -> TlsFiles:
    """The certificate to serve: the configured one, else the generated one (made or
    re-issued here if needed)."""
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise ConfigError("set both ANSIM_TLS_CERT and ANSIM_TLS_KEY, or neither")
        for path in (settings.tls_cert, settings.tls_key, settings.tls_ca):
            if path is not None and not path.is_file():
                raise ConfigError(f"TLS file {str(path)!r} does not exist")
        return TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_ca, generated=False)
    d = settings.tls_dir
    d.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(d / "server.pem", d / "server.key", d / "ca.pem", generated=True)
    with _locked(d / ".lock"):
        ca_key_path = d / "ca.key"
        if not (files.ca and files.ca.exists() and ca_key_path.exists()):
            _write_ca(files.ca or d / "ca.pem", ca_key_path)
            log.info("generated a private CA for the broker", extra={"path": str(d)})
        names = server_names(settings)
        reason = _server_needs_issue(files.cert, names)
        if reason:
            _write_server(files, ca_key_path, names)
            log.info("issued the server certificate", extra={"reason": reason, "names": names})
    return files


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.rename(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_ca(cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ansim Door"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Ansim Door CA {socket.gethostname()}"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key), 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _san(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _server_needs_issue(cert_path: Path, names: list[str]) -> str | None:
    if not cert_path.exists():
        return "first start"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return "unreadable certificate"
    missing = [g for g in _san(names) if g not in have]
    if missing:
        return "new names: " + ", ".join(str(g.value) for g in missing)
    if cert.not_valid_after_utc - _now() < dt.timedelta(days=RENEW_BEFORE_DAYS):
        return "close to expiry"
    return None


def _write_server(files: TlsFiles, ca_key_path: Path, names: list[str]) -> None:
    assert files.ca is not None
    ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{ca_key_path} is not the EC key this CA was made with")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(files.key, _key_pem(key), 0o600)
    _write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
