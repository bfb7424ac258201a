"""TLS for MQTT on 8883: the configured certificate, or a local CA made on first start.

Blynk devices pin a CA. A self-hoster without a public certificate gets one made for them:
``<data_dir>/tls/ca.pem`` (a 10-year EC P-256 CA, served at ``GET /ca.pem`` so devices can
pin it) and a server certificate signed by it for ``localhost``, ``127.0.0.1``, this host's
name and ``OPENBLYNK_TLS_HOSTNAMES``. The server certificate is re-issued from the same CA
when it nears expiry or when the host names change; the CA stays, so pinned devices keep
working.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backend.errors import ConfigError
from backend.settings import Settings

log = logging.getLogger(__name__)

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers and most TLS stacks accept for a leaf certificate
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    """Where the TLS listener's certificate and key are, and the CA devices should pin."""

    certfile: Path
    keyfile: Path
    cafile: Path | None
    generated: bool


def tls_files(settings: Settings) -> TlsFiles:
    """The configured certificate, or the local CA's (made or renewed as needed)."""
    if settings.tls_certfile or settings.tls_keyfile:
        cert, key = Path(settings.tls_certfile), Path(settings.tls_keyfile)
        for name, path in (("OPENBLYNK_TLS_CERTFILE", cert), ("OPENBLYNK_TLS_KEYFILE", key)):
            if not path.is_file():
                raise ConfigError(f"{name}={path} does not exist; set both TLS files or neither")
        ca = Path(settings.tls_cafile) if settings.tls_cafile else None
        return TlsFiles(cert, key, ca, generated=False)
    return ensure_local_ca(settings.data_dir / "tls", hostnames(settings))


def hostnames(settings: Settings) -> list[str]:
    """Names and addresses the generated server certificate is valid for."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    names += [n.strip() for n in settings.tls_hostnames.split(",") if n.strip()]
    if settings.bind not in ("0.0.0.0", "::", ""):
        names.append(settings.bind)
    return list(dict.fromkeys(names))


def ensure_local_ca(directory: Path, names: list[str]) -> TlsFiles:
    """Create the CA and server certificate in ``directory`` if missing or stale."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = TlsFiles(directory / "server.pem", directory / "server.key", directory / "ca.pem", generated=True)
    with open(directory / ".lock", "w") as lock:  # the broker and the app may start together
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / "ca.key").exists():
            log.info("creating a local certificate authority in %s (devices can pin %s)", directory, files.cafile)
            _write_ca(directory)
        if _needs_server_cert(files.certfile, names):
            log.info("issuing a server certificate for %s", ", ".join(names))
            _write_server_cert(directory, names)
    return files


def _write_ca(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "openblynk"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"openblynk local CA ({socket.gethostname()})"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
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
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", key)
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _needs_server_cert(certfile: Path, names: list[str]) -> bool:
    if not certfile.exists():
        return True
    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return not {str(_general_name(n).value) for n in names} <= have


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_server_cert(directory: Path, names: list[str]) -> None:
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(directory / "server.key", key)
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)
