"""The TLS listener (Blynk's 8883) with a self-signed certificate, on a free port."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

from _broker_harness import connect_packet, ours, token
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(certfile), str(keyfile)


async def test_device_connects_over_tls(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    async with ours(tls_port=0, certfile=certfile, keyfile=keyfile) as running:
        tls_port = running.broker.tls_port
        assert tls_port and tls_port != running.port
        context = ssl.create_default_context(cafile=certfile)
        reader, writer = await asyncio.open_connection("127.0.0.1", tls_port, ssl=context)
        try:
            writer.write(connect_packet(username="device", password=token(1)))
            await writer.drain()
            async with asyncio.timeout(3):
                assert await reader.readexactly(4) == b"\x20\x02\x00\x00"
            assert running.broker.connected_devices() == {1}
        finally:
            writer.close()
            await writer.wait_closed()
