"""The TLS listener (Blynk's 8883) with a certificate from the local CA, on a free port; TLS 1.2+ only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import warnings
from pathlib import Path
from typing import Any

import pytest
from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Paho, connect_packet, ours, token

from backend.transport.tls import ensure_local_ca


def self_signed(directory: Path) -> tuple[str, str, str]:
    """Server certificate, its key, and the CA clients pin, made as the server makes its own."""
    files = ensure_local_ca(directory, ["127.0.0.1"])
    return str(files.certfile), str(files.keyfile), str(files.cafile)


async def test_device_connects_over_tls(tmp_path: Path) -> None:
    certfile, keyfile, cafile = self_signed(tmp_path)
    async with ours(tls_port=0, certfile=certfile, keyfile=keyfile) as running:
        tls_port = running.broker.tls_port
        assert tls_port and tls_port != running.port
        context = ssl.create_default_context(cafile=cafile)
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


def client_context(cafile: str, low: ssl.TLSVersion, high: ssl.TLSVersion) -> ssl.SSLContext:
    """A client limited to ``low..high``; SECLEVEL 0 so OpenSSL itself still offers TLS 1.0/1.1."""
    context = ssl.create_default_context(cafile=cafile)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 members are deprecated
        context.minimum_version, context.maximum_version = low, high
    return context


def old_versions() -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1


async def handshake(port: int, context: ssl.SSLContext) -> str | None:
    """The negotiated TLS version, or ``None`` if the handshake failed."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    except (ssl.SSLError, ConnectionError):
        return None
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await writer.wait_closed()
    return str(version)


async def test_tls_1_0_and_1_1_are_refused(tmp_path: Path) -> None:
    certfile, keyfile, cafile = self_signed(tmp_path)
    legacy = client_context(cafile, *old_versions())
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # control: this client really speaks TLS 1.1
    permissive.load_cert_chain(certfile, keyfile)
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    control = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0, ssl=permissive)
    try:
        assert await handshake(control.sockets[0].getsockname()[1], legacy) == "TLSv1.1"
    finally:
        control.close()
        await control.wait_closed()
    async with ours(tls_port=0, certfile=certfile, keyfile=keyfile) as running:
        assert await handshake(running.broker.tls_port, legacy) is None
        context = running.broker._core._servers["tls"].instance._ssl_context  # the listener's own
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_tls_1_2_and_1_3_connect_and_presence_says_tls(
    tmp_path: Path, clients: list[Any], version: ssl.TLSVersion
) -> None:
    certfile, keyfile, cafile = self_signed(tmp_path)
    async with ours(tls_port=0, certfile=certfile, keyfile=keyfile) as running:
        watcher = Paho(running.port, client_id="w", username=SERVICE_USER, password=SERVICE_PASSWORD)
        clients.append(watcher)
        await watcher.connect()
        await watcher.subscribe("sys/presence/#", qos=1)
        context = client_context(cafile, version, version)
        reader, writer = await asyncio.open_connection("127.0.0.1", running.broker.tls_port, ssl=context)
        try:
            negotiated = writer.get_extra_info("ssl_object").version()
            assert negotiated == version.name.replace("_", ".")
            writer.write(connect_packet(username="device", password=token(1)))
            await writer.drain()
            async with asyncio.timeout(3):
                assert await reader.readexactly(4) == b"\x20\x02\x00\x00"
            online = json.loads((await watcher.received("sys/presence/1")).payload)
            assert online["transport"] == "tls"
        finally:
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()
