"""The laptop's side of Wi-Fi provisioning (``openblynk provision``): talk to a device's
access-point HTTP API (Blynk Edgent's, ``device_sdk.ProvisioningServer``) where a browser page
cannot, and hand it its network, its provisioning token and this server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from backend.errors import OpenBlynkError, ValidationError


class DeviceApError(OpenBlynkError):
    """The device's access point could not be reached, or refused the configuration."""


@dataclass(frozen=True, slots=True)
class Configured:
    """What the device said: its board information and its answer to ``/config``."""

    board: dict[str, Any]
    answer: dict[str, Any]


def configure_device(
    device_url: str,
    token: str,
    ssid: str,
    password: str,
    server: str,
    port: int | None = None,
    port_ssl: int | None = None,
    timeout: float = 10.0,
) -> Configured:
    """Read the device's ``/board_info.json``, then send ``/config`` with the network, the token
    and the server; raise :class:`DeviceApError` if it cannot be reached or refuses."""
    if not ssid or not token or not server:
        raise ValidationError("give the Wi-Fi network (--ssid), the token (--token) and the server (--server)")
    params: dict[str, str] = {"if": "wifi", "ssid": ssid, "pass": password, "blynk": token, "host": server}
    if port is not None:
        params["port"] = str(port)
    if port_ssl is not None:
        params["port_ssl"] = str(port_ssl)
    try:
        with httpx.Client(base_url=device_url.rstrip("/"), timeout=timeout) as http:
            board = http.get("/board_info.json")
            board.raise_for_status()
            answer = http.get("/config", params=params)
    except httpx.HTTPError as exc:
        raise DeviceApError(
            f"cannot reach the device at {device_url}: {exc} — join its Wi-Fi access point first"
        ) from exc
    try:
        body = answer.json()
        info = board.json()
    except ValueError as exc:
        raise DeviceApError(f"the device at {device_url} does not speak Blynk's provisioning API") from exc
    if answer.status_code != 200 or body.get("status") != "ok":
        raise DeviceApError(f"the device refused the configuration: {body.get('msg', answer.status_code)}")
    return Configured(info, body)
