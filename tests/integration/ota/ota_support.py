"""Helpers for Blynk.Air tests: images, API calls, SDK devices, a proxy that cuts a download."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from device_sdk import Device, Downlink, OtaAgent
from ota import build_tag
from tests.support.accounts import Api
from tests.support.net import wait_for
from tests.support.stack import StackConfig

FW_TYPE = "OBTEST"


def image(version: str, size: int = 48 * 1024, fw_type: str = FW_TYPE) -> bytes:
    """A random firmware image with a Blynk info tag in the middle."""
    tag = build_tag({"mcu": version, "fw-type": fw_type, "build": "Mar 05 2024 18:29:27", "blynk": "1.3.2"})
    half = (size - len(tag)) // 2
    return os.urandom(half) + tag + os.urandom(size - len(tag) - half)


def upload(api: Api, data: bytes, name: str = "fw.bin") -> dict[str, Any]:
    """Upload a firmware image as ``api`` (the ``admin`` fixture: Blynk.Air needs air.* permissions)."""
    resp = api.post("/api/ota/firmware", params={"filename": name}, content=data, timeout=30)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def create_shipment(api: Api, via: str = "", **spec: Any) -> dict[str, Any]:
    """Start a shipment; ``via``: another base URL the request goes through (the download
    links the shipment offers start with it)."""
    resp = api.post(f"{via}/api/ota/shipments", json=spec, timeout=30)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def shipment(api: Api, shipment_id: int) -> dict[str, Any]:
    return dict(api.get(f"/api/ota/shipments/{shipment_id}", timeout=30).json())


def public_key(api: Api) -> str:
    return str(api.get("/api/ota/signing-key", timeout=10).json()["public_key"])


def wait_counts(api: Api, shipment_id: int, done: Any, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until ``done(shipment)`` holds; the shipment then."""

    def check() -> dict[str, Any] | None:
        current = shipment(api, shipment_id)
        return current if done(current) else None

    return wait_for(check, timeout, interval=0.5, message=f"shipment {shipment_id} to progress")


@dataclass
class SdkDevice:
    """A real device_sdk Device with its OTA agent, recording every offer it received."""

    id: int
    device: Device
    agent: OtaAgent
    offers: list[bytes] = field(default_factory=list)

    def offer_device_ids(self) -> set[int]:
        """The device ids named by the download tokens of the offers received."""
        import json

        ids = set()
        for raw in self.offers:
            token = parse_qs(urlparse(json.loads(raw)["url"]).query)["token"][0]
            ids.add(int(token.split(".")[1]))
        return ids


def sdk_device(
    stack: StackConfig, device_id: int, token: str, key: str, directory: str, version: str = "1.0.0", **agent_args: Any
) -> SdkDevice:
    device = Device(
        token, host="127.0.0.1", port=stack.mqtt_port, firmware_version=version, firmware_type=FW_TYPE, keepalive=60
    )
    agent = OtaAgent(device, key, directory=directory, **agent_args)
    sdk = SdkDevice(device_id, device, agent)

    def record(downlink: Downlink) -> None:
        if downlink.topic == "downlink/ota/json" and downlink.payload:
            sdk.offers.append(downlink.payload)

    device.on_downlink(record)
    return sdk


class CuttingProxy:
    """A TCP proxy to the app that cuts the first response carrying more than ``cut_after``
    bytes, and remembers the request heads it forwarded."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.requests: list[str] = []
        self.cuts = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        with client, upstream:
            head = client.recv(65536)
            self.requests.append(head.decode("latin-1"))
            upstream.sendall(head)
            cut = self.cuts == 0 and "/api/ota/download" in head.decode("latin-1")
            if cut:
                self.cuts += 1
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            sent = 0
            while chunk := upstream.recv(65536):
                if cut and sent + len(chunk) > self.cut_after:
                    client.sendall(chunk[: self.cut_after - sent])
                    client.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(chunk)
                sent += len(chunk)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
