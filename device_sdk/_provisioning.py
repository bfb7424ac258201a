"""Provisioning mode: Blynk Edgent's access-point HTTP API, served by the device.

A new device, not yet configured, opens its own Wi-Fi access point (on real hardware
``192.168.4.1``, DNS name ``blynk.setup``) and serves there what Blynk's app (or the console's
walk-through, or ``openblynk provision``) talks to:

- ``GET /board_info.json``: ``{"vendor", "tmpl_id", "fw_type", "fw_ver", "name", "uid", "bssid",
  "last_error", "ifs": [{"name": "wifi", "mac", "scan", "5ghz", "static_ip"}]}``;
- ``GET /wifi_scan.json``: ``[{"ssid", "bssid", "rssi", "sec", "ch"}]``;
- ``GET /config?if=wifi&ssid=&pass=&blynk=<token>&host=<server>&port=&port_ssl=`` (also
  ``ip, mask, gw, dns, dns2, save``): ``{"status": "ok", "msg": "Trying to connect..."}``, or 500
  ``{"status": "error", "msg": "Configuration invalid"}``;
- ``GET /reset`` (forget the configuration) and ``GET /reboot``.

On Linux the library changes no network settings itself: the Wi-Fi part is a :class:`WifiHook`
(``scan`` and ``join``) the application provides; the README shows one for NetworkManager.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ._token import AuthToken

OK_CONFIG = {"status": "ok", "msg": "Trying to connect..."}
BAD_CONFIG = {"status": "error", "msg": "Configuration invalid"}


@dataclass(frozen=True)
class WifiNetwork:
    """One network a Wi-Fi scan found, as ``/wifi_scan.json`` lists it.

    Attributes:
        ssid: The network's name.
        bssid: Its access point's MAC address.
        rssi: Signal strength in dBm.
        sec: Security, e.g. ``"WPA2/PSK"`` or ``"OPEN"``.
        ch: The channel.
    """

    ssid: str
    bssid: str = ""
    rssi: int = -60
    sec: str = "WPA2/PSK"
    ch: int = 1


class WifiHook(Protocol):
    """What provisioning needs of the Wi-Fi: the application implements it (NetworkManager,
    wpa_supplicant, a simulation in tests). Any object with these two methods will do."""

    def scan(self) -> list[WifiNetwork]:
        """The networks in range."""
        ...

    def join(self, ssid: str, password: str) -> None:
        """Connect the device to a network (raise to report a failure).

        Args:
            ssid: The network.
            password: Its password.
        """
        ...


@dataclass(frozen=True)
class Provisioned:
    """What ``/config`` handed the device: its network, its token and its server.

    Attributes:
        ssid: The Wi-Fi network to join.
        password: Its password (``pass``).
        token: The device's auth token (``blynk``).
        host: The server (``host``).
        port: The MQTT port (``port``), if given.
        port_ssl: The MQTT over TLS port (``port_ssl``), if given.
        static_ip: ``ip``, ``mask``, ``gw``, ``dns``, ``dns2`` when a static address was asked.
    """

    ssid: str
    password: str
    token: AuthToken = field(repr=False)
    host: str
    port: int | None
    port_ssl: int | None
    static_ip: dict[str, str] = field(default_factory=dict)


class ProvisioningServer:
    """Blynk Edgent's access-point HTTP API, served from a thread until a configuration comes.

    Args:
        wifi: The device's Wi-Fi (``scan`` for ``/wifi_scan.json``).
        template_id: The template this firmware is for (``tmpl_id``).
        firmware_version: ``fw_ver``.
        firmware_type: ``fw_type`` (default: the template id).
        name: ``name`` shown by the app.
        vendor: ``vendor``.
        uid: A unique id of the board (``uid``).
        mac: The Wi-Fi MAC address (``ifs[0].mac`` and ``bssid``).
        host: The address to listen on.
        port: The port (``0``: any free one, see :attr:`address`).
        on_reboot: Called on ``GET /reboot``.

    Example:
        >>> server = ProvisioningServer(wifi, template_id="TMPL0001", firmware_version="1.0.0")
        >>> server.start()            # on 192.168.4.1:80 on a device; 127.0.0.1:0 in tests
        >>> config = server.wait()    # the app sent /config
        >>> wifi.join(config.ssid, config.password)
        >>> Device(config.token, config.host, config.port, template_id="TMPL0001").connect()
    """

    def __init__(
        self,
        wifi: WifiHook,
        *,
        template_id: str,
        firmware_version: str,
        firmware_type: str | None = None,
        name: str = "openblynk device",
        vendor: str = "openblynk",
        uid: str = "",
        mac: str = "",
        host: str = "0.0.0.0",
        port: int = 80,
        on_reboot: Callable[[], None] | None = None,
    ) -> None:
        """Prepare the server (nothing listens before :meth:`start`); arguments as the class says."""
        self.wifi = wifi
        self.info: dict[str, Any] = {
            "vendor": vendor,
            "tmpl_id": template_id,
            "fw_type": firmware_type or template_id,
            "fw_ver": firmware_version,
            "name": name,
            "uid": uid,
            "bssid": mac,
            "last_error": "",
            "ifs": [{"name": "wifi", "mac": mac, "scan": True, "5ghz": False, "static_ip": True}],
        }
        self._bind = (host, port)
        self._on_reboot = on_reboot
        self._config: Provisioned | None = None
        self._ready = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the provisioning server is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Listen and serve from a daemon thread."""
        handler = _handler(self)
        self._server = ThreadingHTTPServer(self._bind, handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="blynk-provisioning", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (again is harmless)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self, timeout: float | None = None) -> Provisioned:
        """Block until a valid ``/config`` arrived; its content.

        Args:
            timeout: Seconds to wait; None waits for ever.

        Raises:
            TimeoutError: Nothing came within ``timeout`` seconds.
        """
        if not self._ready.wait(timeout):
            raise TimeoutError("no configuration arrived")
        assert self._config is not None
        return self._config

    def report_error(self, text: str) -> None:
        """Set what ``last_error`` says next.

        Args:
            text: Why the last attempt failed (e.g. the Wi-Fi or the cloud refused).
        """
        self.info["last_error"] = text

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """The status and JSON body of one request (the HTTP part is :func:`_handler`'s).

        Args:
            path: The request's path, e.g. ``/config``.
            query: Its query parameters, as :func:`urllib.parse.parse_qs` gives them.
        """
        if path == "/board_info.json":
            return 200, self.info
        if path == "/wifi_scan.json":
            return 200, [vars(n) for n in self.wifi.scan()]
        if path == "/config":
            config = _parse_config(query)
            if config is None:
                return 500, BAD_CONFIG
            self._config = config
            self._ready.set()
            return 200, OK_CONFIG
        if path == "/reset":
            self._config = None
            self._ready.clear()
            return 200, {"status": "ok", "msg": "Configuration reset"}
        if path == "/reboot":
            if self._on_reboot is not None:
                self._on_reboot()
            return 200, {"status": "ok", "msg": "Rebooting"}
        return 404, {"status": "error", "msg": "Not found"}


def _parse_config(query: dict[str, list[str]]) -> Provisioned | None:
    one = {key: values[0] for key, values in query.items() if values}
    try:
        if one.get("if", "wifi") != "wifi" or not one.get("ssid") or not one.get("host"):
            return None
        token = AuthToken(one.get("blynk", ""))
        port = int(one["port"]) if one.get("port") else None
        port_ssl = int(one["port_ssl"]) if one.get("port_ssl") else None
    except ValueError:  # a token of the wrong shape, a port that is no number
        return None
    static = {k: one[k] for k in ("ip", "mask", "gw", "dns", "dns2") if one.get(k)}
    return Provisioned(one["ssid"], one.get("pass", ""), token, one["host"], port, port_ssl, static)


def _handler(server: ProvisioningServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlsplit(self.path)
            status, body = server.answer(url.path, parse_qs(url.query, keep_blank_values=True))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Access-Control-Allow-Origin", "*")  # the app's page may ask from another origin
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
            return  # quiet: a device's log is its own business

    return Handler
