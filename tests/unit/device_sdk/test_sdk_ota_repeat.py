"""The OTA agent and a retained offer that comes back: Blynk.Air keeps the offer retained until
the server withdraws it, so the connection on which the device reports its new firmware gets
the same offer again. The agent must let it pass silently, not refuse it as "not newer": a
refusal the server reads before the device's ``info/mcu`` fails an update that succeeded."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from device_sdk import Device, Downlink, OtaAgent
from tests.support.net import wait_for

IMAGE = os.urandom(20_000)


class _Image(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(IMAGE)))
        self.end_headers()
        self.wfile.write(IMAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Image)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fw.bin"
    finally:
        server.shutdown()
        server.server_close()


def _offer(key: Ed25519PrivateKey, url: str, version: str, image: bytes = IMAGE) -> bytes:
    sha = hashlib.sha256(image).digest()
    signed = json.dumps(["openblynk-fw-v1", sha.hex(), len(image), "T", version], separators=(",", ":")).encode()
    doc = {"url": url, "size": len(image), "type": "T", "ver": version, "sha256": sha.hex()}
    doc["sig"] = base64.b64encode(key.sign(signed)).decode()
    return json.dumps(doc).encode()


def test_the_offer_of_the_image_just_installed_is_not_refused(image_url: str, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device = Device("t" * 32, host="127.0.0.1", firmware_version="1.0.0", firmware_type="T")
    agent = OtaAgent(device, public, directory=tmp_path)
    offer = Downlink("downlink/ota/json", _offer(key, image_url, "2.0.0"))

    agent._on_downlink(offer)
    assert wait_for(lambda: device.firmware_version == "2.0.0" and agent._busy is None, 10)  # installed
    assert len(list(tmp_path.glob("firmware-*.bin"))) == 1
    agent._on_downlink(offer)  # the retained offer again, on the connection after the install
    assert agent.last_error is None

    older = Downlink("downlink/ota/json", _offer(key, image_url, "1.5.0", os.urandom(100)))
    agent._on_downlink(older)  # another image that is not newer is still refused
    assert agent.last_error == "version 1.5.0 is not newer than 2.0.0"
