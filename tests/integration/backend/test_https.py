"""HTTPS and WSS on the web port (issue #18 item 4): the console, the HTTP device API and MQTT
over WebSocket served over TLS 1.2+ by the app itself, with the certificate of MQTT over TLS
(here the local CA made in the stack's data directory), HSTS and ``Secure`` cookies over TLS,
and the optional redirect of plain HTTP to HTTPS. Real TLS clients: httpx pinning the served
CA, paho over ``wss://…/mqtt``, a raw TLS handshake for the versions refused.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from backend.transfer.schemas import DeviceOut
from backend.transport.https import RedirectToHttps
from tests.support.accounts import ROOT_ADMIN, AccountsStack, start_accounts_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig


def served_ca(stack: StackConfig, tmp_path: Path) -> ssl.SSLContext:
    """A client context trusting only the CA the stack serves at ``/ca.pem`` (fetched over HTTP,
    as a device does before it can trust the HTTPS listener)."""
    r = httpx.get(f"{stack.base_url}/ca.pem", timeout=10)
    assert r.status_code == 200 and r.text.startswith("-----BEGIN CERTIFICATE-----")
    path = tmp_path / "ca.pem"
    path.write_bytes(r.content)
    return ssl.create_default_context(cafile=str(path))


@pytest.fixture
def https(stack: StackConfig, tmp_path: Path) -> Iterator[httpx.Client]:
    """An HTTPS client of the stack that verifies its certificate against the served CA."""
    with httpx.Client(base_url=stack.https_url, verify=served_ca(stack, tmp_path), timeout=10) as client:
        yield client


def raw_points(stack: StackConfig, device_id: int, pin: int) -> list[float]:
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT value FROM history WHERE device_id = %s AND pin = %s ORDER BY ts", (device_id, pin)
        ).fetchall()
    return [float(r[0]) for r in rows]


def attributes(set_cookie: str) -> list[str]:
    """The attribute names of a ``Set-Cookie`` value, lower case (``secure``, ``httponly``...)."""
    return [part.split("=", 1)[0].strip().lower() for part in set_cookie.split(";")[1:]]


def test_device_api_over_https_with_the_served_ca(https: httpx.Client, devices: list[DeviceOut]) -> None:
    token = devices[0].token
    r = https.get("/external/api/update", params={"token": token, "v0": "21.5"})
    assert (r.status_code, r.text) == (200, "")
    assert r.url.scheme == "https"
    wait_for(lambda: https.get("/external/api/get", params={"token": token, "v0": ""}).text == "21.5")


def test_console_over_https_sends_hsts_and_secure_cookies(stack: StackConfig, https: httpx.Client) -> None:
    page = https.get("/login")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["strict-transport-security"] == "max-age=31536000"
    r = https.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]})
    assert r.status_code == 200, r.text
    cookies = r.headers.get_list("set-cookie")
    assert len(cookies) == 2 and all("secure" in attributes(c) for c in cookies), cookies
    me = https.get("/api/users/me")  # the Secure session cookie goes back over HTTPS
    assert me.status_code == 200 and me.json()["user"]["email"] == ROOT_ADMIN[0]


def test_plain_http_has_no_hsts_and_cookies_without_secure(stack: StackConfig) -> None:
    """The control: the same requests over the plain listener (a development stack)."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as http:
        assert "strict-transport-security" not in http.get("/login").headers
        r = http.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]})
        cookies = r.headers.get_list("set-cookie")
        assert len(cookies) == 2 and not any("secure" in attributes(c) for c in cookies), cookies


def handshake(port: int, context: ssl.SSLContext) -> str | None:
    """The negotiated TLS version, or ``None`` when the server refused the handshake."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname="localhost") as tls:
                return tls.version()
    except (ssl.SSLError, ConnectionError):
        return None


def test_only_tls_1_2_and_later(stack: StackConfig, tmp_path: Path) -> None:
    modern = served_ca(stack, tmp_path)
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(stack.https_port, modern) == "TLSv1.2"
    legacy = served_ca(stack, tmp_path)
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that OpenSSL itself still offers TLS 1.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy.minimum_version, legacy.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
    assert handshake(stack.https_port, legacy) is None


def test_an_unknown_ca_is_refused(stack: StackConfig) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{stack.https_url}/healthz", verify=ssl.create_default_context(), timeout=10)


def test_paho_over_wss_publishes_into_history_and_gets_a_downlink(
    stack: StackConfig, https: httpx.Client, paho_device: ConnectDevice
) -> None:
    info = provision(stack.database_url, thermostat_doc(save_raw=True)).devices[0]
    device = paho_device(stack, info, transport="wss")
    device.publish("ds/Temperature", "19.25")
    wait_for(lambda: raw_points(stack, info.id, 0) == [19.25], message="the value in the history")
    r = https.get("/external/api/update", params={"token": info.token, "v1": "1"})
    assert r.status_code == 200, r.text
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Power", b"1")


@pytest.fixture(scope="module")
def redirecting(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    """A stack whose plain listener redirects to HTTPS."""
    yield from start_accounts_stack(pg_server, template_db, "https", https_redirect="true")


def test_plain_http_is_redirected_to_https_but_health_and_the_ca(redirecting: AccountsStack, tmp_path: Path) -> None:
    config = redirecting.config
    with httpx.Client(base_url=config.base_url, timeout=10) as http:
        r = http.get("/login?next=%2Fdevices")
        assert r.status_code == 308
        assert r.headers["location"] == f"https://127.0.0.1:{config.https_port}/login?next=%2Fdevices"
        posted = http.post("/external/api/batch/update?token=x", content=b"[]")
        assert posted.status_code == 308  # 308 keeps the method and body: a device's POST is repeated over HTTPS
        assert http.get("/healthz").status_code == 200
        assert http.get("/ca.pem").status_code == 200
    with httpx.Client(verify=served_ca(config, tmp_path), timeout=10, follow_redirects=True) as client:
        page = client.get(f"{config.base_url}/login")
        assert page.status_code == 200 and page.url.scheme == "https"
        assert page.headers["strict-transport-security"] == "max-age=31536000"


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (b"iot.example.com:8080", 443, "https://iot.example.com/x?a=1"),
        (b"iot.example.com", 8443, "https://iot.example.com:8443/x?a=1"),
        (b"[::1]:8080", 8443, "https://[::1]:8443/x?a=1"),
        (b"[::1]", 443, "https://[::1]/x?a=1"),
    ],
)
def test_redirect_location(host: bytes, port: int, expected: str) -> None:
    scope = {"type": "http", "scheme": "http", "path": "/x", "raw_path": b"/x", "query_string": b"a=1"}
    scope["headers"] = [(b"host", host)]
    assert RedirectToHttps(None, port).location(scope) == expected  # type: ignore[arg-type]
