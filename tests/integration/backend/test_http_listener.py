"""The HTTP listener (issue #11 items 3 and 5).

Client addresses come from ``X-Forwarded-For`` only when a proxy listed in
``OPENBLYNK_TRUSTED_PROXIES`` sent it (uvicorn believed any loopback peer, so a local process
chose the address that throttles and the audit log saw); silent or trickling connections are
closed after the header timeout, and one address holds a bounded number of connections.
Each app here is its own process with small limits, so it can be locked out or flooded.
"""

from __future__ import annotations

import resource
import selectors
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.sync.connection import Connection

from backend.errors import ConfigError
from backend.settings import Settings
from tests.support.accounts import ROOT_ADMIN, AccountsStack, start_accounts_stack
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc

THROTTLES = {"login_failures_per_address": "3", "login_failures_per_account": "100", "auth_failures_per_minute": "3"}
SILENT_CONNECTIONS = 1500
BAD_LOGIN = {"email": "nobody@example.com", "password": "wrong-password"}
CONNACK_ACCEPTED, CONNACK_BAD_CREDENTIALS = 0, 4


def _raise_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard), hard)
        )


@pytest.fixture(scope="module")
def plain(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    """An app with no trusted proxy (the default), a 1 s header timeout and room for 1,500 connections."""
    _raise_open_file_limit(4 * SILENT_CONNECTIONS)  # the app process inherits it
    yield from start_accounts_stack(
        pg_server,
        template_db,
        "http_plain",
        **THROTTLES,
        http_header_timeout_seconds="1",
        http_body_timeout_seconds="1",
        http_keepalive_seconds="1",
        http_connections_per_address=str(SILENT_CONNECTIONS + 500),
    )


@pytest.fixture(scope="module")
def proxied(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    """An app that believes forwarding headers sent from 127.0.0.1."""
    yield from start_accounts_stack(pg_server, template_db, "http_proxied", **THROTTLES, trusted_proxies="127.0.0.1")


@pytest.fixture(scope="module")
def capped(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    """An app allowing 20 connections per address, with a header timeout longer than the test."""
    yield from start_accounts_stack(
        pg_server, template_db, "http_capped", http_connections_per_address="20", http_header_timeout_seconds="120"
    )


def _last_login_ip(acc: AccountsStack) -> str:
    with acc.db() as db:
        row = db.execute("SELECT ip FROM audit_log WHERE action = 'auth.login' ORDER BY id DESC LIMIT 1").fetchone()
    assert row is not None
    return str(row[0])


def _login(acc: AccountsStack, body: dict[str, str], forwarded_for: str) -> httpx.Response:
    with httpx.Client(base_url=acc.base_url, timeout=10) as client:
        return client.post("/api/auth/login", json=body, headers={"X-Forwarded-For": forwarded_for})


def _connect_packet(username: str, password: str) -> bytes:
    def field(text: str) -> bytes:
        raw = text.encode()
        return len(raw).to_bytes(2, "big") + raw

    body = field("MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big") + field("") + field(username) + field(password)
    assert len(body) < 128  # one-byte remaining length
    return bytes([0x10, len(body)]) + body


def _mqtt_ws(acc: AccountsStack, headers: dict[str, str] | None = None) -> ClientConnection:
    return ws_connect(
        f"ws://127.0.0.1:{acc.config.http_port}/mqtt",
        subprotocols=["mqtt"],  # type: ignore[list-item]
        additional_headers=headers or {},
        open_timeout=10,
    )


def _connack(ws: Connection, username: str, password: str) -> int:
    """Send a CONNECT over an open MQTT WebSocket; the CONNACK's return code."""
    ws.send(_connect_packet(username, password))
    answer = b""
    while len(answer) < 4:
        message = ws.recv(10)
        answer += message if isinstance(message, bytes) else message.encode()
    assert answer[:2] == b"\x20\x02", answer
    return answer[3]


def _mqtt_login(acc: AccountsStack, password: str, forwarded_for: str) -> int:
    with _mqtt_ws(acc, {"X-Forwarded-For": forwarded_for}) as ws:
        return _connack(ws, "device", password)


def test_the_audit_log_ignores_forwarded_for_from_loopback_by_default(plain: AccountsStack) -> None:
    assert _login(plain, {"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}, "203.0.113.9").status_code == 200
    assert _last_login_ip(plain) == "127.0.0.1"


def test_the_sign_in_limit_per_address_cannot_be_dodged_with_forwarded_for(plain: AccountsStack) -> None:
    try:  # a new forged address per attempt still counts against 127.0.0.1
        for i in range(3):
            assert _login(plain, BAD_LOGIN, f"198.51.100.{i}").status_code == 401
        r = _login(plain, {"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}, "198.51.100.77")
        assert r.status_code == 429 and "your address" in r.json()["error"]["message"]
    finally:
        with plain.db() as db:
            db.execute("DELETE FROM login_failure")


def test_mqtt_over_websocket_throttle_counts_the_real_address(plain: AccountsStack) -> None:
    token = provision(plain.config.database_url, thermostat_doc()).devices[0].token
    for i in range(3):
        assert _mqtt_login(plain, "not-a-token-" + "x" * 20, f"192.0.2.{i}") == CONNACK_BAD_CREDENTIALS
    # the fourth login, even with the right token and yet another forged address, is refused unasked
    assert _mqtt_login(plain, token, "192.0.2.77") == CONNACK_BAD_CREDENTIALS


def test_forwarded_for_is_believed_from_a_trusted_proxy(proxied: AccountsStack) -> None:
    assert _login(proxied, {"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}, "203.0.113.9").status_code == 200
    assert _last_login_ip(proxied) == "203.0.113.9"
    for _ in range(3):
        assert _login(proxied, BAD_LOGIN, "198.51.100.1").status_code == 401
    r = _login(proxied, {"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}, "198.51.100.1")
    assert r.status_code == 429 and "your address" in r.json()["error"]["message"]
    assert _login(proxied, {"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}, "198.51.100.2").status_code == 200

    token = provision(proxied.config.database_url, thermostat_doc()).devices[0].token
    for _ in range(3):
        assert _mqtt_login(proxied, "not-a-token-" + "x" * 20, "192.0.2.1") == CONNACK_BAD_CREDENTIALS
    assert _mqtt_login(proxied, token, "192.0.2.1") == CONNACK_BAD_CREDENTIALS  # that address is throttled
    assert _mqtt_login(proxied, token, "192.0.2.2") == CONNACK_ACCEPTED  # another is not


def _open_silent(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def _closed_by_server(sockets: list[socket.socket], timeout: float, want: int | None = None) -> list[socket.socket]:
    """Those of ``sockets`` the server closes within ``timeout`` seconds (each read to EOF),
    returning early once ``want`` (default: all) are closed."""
    want = len(sockets) if want is None else want
    closed: list[socket.socket] = []
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while len(closed) < want and time.monotonic() < deadline:
            for key, _ in selector.select(0.2):
                ready: Any = key.fileobj
                try:
                    data = ready.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    selector.unregister(ready)
                    closed.append(ready)
    return closed


def test_silent_connections_are_closed_after_the_header_timeout(plain: AccountsStack) -> None:
    silent = _open_silent(plain.config.http_port, SILENT_CONNECTIONS)
    try:
        assert httpx.get(f"{plain.base_url}/healthz", timeout=10).status_code == 200  # still serving
        assert len(_closed_by_server(silent, 30)) == SILENT_CONNECTIONS
        assert httpx.get(f"{plain.base_url}/healthz", timeout=10).status_code == 200
    finally:
        for sock in silent:
            sock.close()


@pytest.mark.parametrize("after_a_response", [False, True], ids=["first-request", "keep-alive-request"])
def test_a_client_trickling_its_headers_is_closed_after_the_header_timeout(
    plain: AccountsStack, after_a_response: bool
) -> None:
    with socket.create_connection(("127.0.0.1", plain.config.http_port), timeout=10) as trickler:
        if after_a_response:
            trickler.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert trickler.recv(4096).startswith(b"HTTP/1.1 200")
        trickler.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + 30
        trickler_closed = False
        while not trickler_closed and time.monotonic() < deadline:  # one header line every 0.2 s
            try:
                trickler.sendall(b"X-Slow: 1\r\n")
            except OSError:
                trickler_closed = True
            trickler_closed = trickler_closed or trickler in _closed_by_server([trickler], 0.2)
        assert trickler_closed, "a client trickling its headers kept its connection"


def test_a_client_trickling_its_body_is_closed_after_the_body_timeout(plain: AccountsStack) -> None:
    with socket.create_connection(("127.0.0.1", plain.config.http_port), timeout=10) as trickler:
        trickler.sendall(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{"
        )
        deadline = time.monotonic() + 30
        trickler_closed = False
        while not trickler_closed and time.monotonic() < deadline:  # 50 bytes every 0.2 s: 250 B/s
            try:
                trickler.sendall(b" " * 50)
            except OSError:
                trickler_closed = True
            trickler_closed = trickler_closed or trickler in _closed_by_server([trickler], 0.2)
        assert trickler_closed, "a client trickling its request body kept its connection"


def test_a_slow_body_that_keeps_moving_is_answered(plain: AccountsStack) -> None:
    """2 KiB every 0.5 s for 5 s (longer than the 1 s body timeout): slow, but an upload."""
    body = b'{"email": "nobody@example.com", "password": "' + b"x" * 20_000 + b'"}'
    with socket.create_connection(("127.0.0.1", plain.config.http_port), timeout=10) as slow:
        slow.sendall(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        for start in range(0, len(body), 2048):
            slow.sendall(body[start : start + 2048])
            time.sleep(0.5)
        answer = slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:100]  # answered (a refused sign-in), not cut


def test_an_idle_keep_alive_connection_is_closed(plain: AccountsStack) -> None:
    with socket.create_connection(("127.0.0.1", plain.config.http_port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert _closed_by_server([sock], 30) == [sock]


def test_websockets_outlive_the_header_and_keep_alive_timeouts(plain: AccountsStack) -> None:
    with httpx.Client(base_url=plain.base_url, timeout=10) as api:
        assert api.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}).status_code == 200
        cookie = "; ".join(f"{k}={v}" for k, v in api.cookies.items())
    device_id = provision(plain.config.database_url, thermostat_doc()).devices[0].id
    with (
        ws_connect(
            f"ws://127.0.0.1:{plain.config.http_port}/live?devices={device_id}",
            additional_headers={"Cookie": cookie},
            open_timeout=10,
        ) as live,
        _mqtt_ws(plain) as mqtt,
    ):
        assert live.recv(10)  # hello
        time.sleep(3)  # longer than the 1 s header timeout plus the 1 s keep-alive timeout
        assert live.ping().wait(10)
        assert mqtt.ping().wait(10)
        assert _connack(mqtt, "device", "not-a-token-" + "x" * 20) == CONNACK_BAD_CREDENTIALS


def _refused_at_once(acc: AccountsStack) -> bool:
    try:
        httpx.get(f"{acc.base_url}/healthz", timeout=10)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
        return True
    return False


def test_connections_beyond_the_per_address_cap_are_closed_at_once(capped: AccountsStack) -> None:
    port = capped.config.http_port
    sockets = _open_silent(port, 30)
    try:
        closed = _closed_by_server(sockets, 30, want=10)
        assert len(closed) == 10
        held = [sock for sock in sockets if sock not in closed]
        assert _closed_by_server(held, 1) == []  # the header timeout (120 s) closes none of the first 20
        assert _refused_at_once(capped)
    finally:
        for sock in sockets:
            sock.close()
    wait_for(lambda: not _refused_at_once(capped), 30, message="slots given back")
    for _ in range(25):  # a WebSocket holds its slot until it closes, then gives it back
        with _mqtt_ws(capped) as ws:
            assert ws.ping().wait(10)
    assert httpx.get(f"{capped.base_url}/healthz", timeout=10).status_code == 200


def test_a_trusted_proxy_that_is_not_an_address_is_refused_at_start() -> None:
    assert Settings.from_env({"OPENBLYNK_TRUSTED_PROXIES": " 10.0.0.5, 192.168.1.0/24 ,::1"}).trusted_proxy_networks
    with pytest.raises(ConfigError, match="OPENBLYNK_TRUSTED_PROXIES: 'nginx'"):
        Settings.from_env({"OPENBLYNK_TRUSTED_PROXIES": "nginx"})
