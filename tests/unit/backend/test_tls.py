"""The local CA: made once, server certificate re-issued when names change, CA kept."""

from pathlib import Path

import pytest
from cryptography import x509

from backend.errors import ConfigError
from backend.settings import Settings
from backend.transport.tls import ensure_local_ca, hostnames, tls_files


def san(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


def test_ca_is_made_once_and_server_cert_follows_the_names(tmp_path: Path) -> None:
    first = ensure_local_ca(tmp_path, ["localhost", "127.0.0.1"])
    ca_bytes, server_bytes = first.cafile.read_bytes(), first.certfile.read_bytes()  # type: ignore[union-attr]
    assert ensure_local_ca(tmp_path, ["localhost", "127.0.0.1"]).certfile.read_bytes() == server_bytes
    again = ensure_local_ca(tmp_path, ["localhost", "127.0.0.1", "iot.example.com"])
    assert again.cafile.read_bytes() == ca_bytes  # type: ignore[union-attr]  # pinned devices keep working
    assert "iot.example.com" in san(again.certfile)
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0
    ca = x509.load_pem_x509_certificate(ca_bytes)
    server = x509.load_pem_x509_certificate(again.certfile.read_bytes())
    assert server.issuer == ca.subject
    server.verify_directly_issued_by(ca)


def test_configured_certificate_must_exist(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, tls_certfile=str(tmp_path / "nope.pem"), tls_keyfile="x")
    with pytest.raises(ConfigError, match="OPENBLYNK_TLS_CERTFILE"):
        tls_files(settings)


def test_hostnames_include_extra_names_and_the_bind_address(tmp_path: Path) -> None:
    names = hostnames(Settings(data_dir=tmp_path, tls_hostnames="a.example, b.example", bind="10.1.2.3"))
    assert {"localhost", "127.0.0.1", "a.example", "b.example", "10.1.2.3"} <= set(names)
