"""A local HTTP server that webhooks are sent to in tests (stdlib ``http.server`` in a thread).

Paths choose the answer: ``/ok`` 200, ``/fail`` 500, ``/flaky/<n>`` 503 for the first ``n``
requests then 200, ``/big`` 200 with 100 KB, ``/away`` a redirect to another host, ``/here`` a
redirect to ``/ok`` on this server. Every request is kept (method, path, headers, body), and
:meth:`Receiver.verified` checks its signature as a receiver would.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from backend.webhooks import signing

BIG = 100 * 1024


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """The requests received so far, and the server's address."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[Received] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of ``path`` on this server."""
        return f"http://{host}:{self.port}{path}"

    def verified(self, request: Received, secret: str) -> bool:
        """Whether ``request`` carries a valid, recent signature made with ``secret``."""
        return signing.verify(
            secret,
            request.headers.get(signing.SIGNATURE_HEADER.lower(), ""),
            request.headers.get(signing.TIMESTAMP_HEADER.lower(), ""),
            request.body,
            time.time(),
        )


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
            return

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with receiver.lock:
                receiver.requests.append(
                    Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                count = receiver.counts[self.path] = receiver.counts.get(self.path, 0) + 1
            status, payload, location = 200, b"thanks", None
            if self.path == "/fail":
                status, payload = 500, b"broken"
            elif self.path.startswith("/flaky/"):
                status = 503 if count <= int(self.path.rsplit("/", 1)[1]) else 200
            elif self.path == "/big":
                payload = b"x" * BIG
            elif self.path == "/away":
                status, location = 302, "http://example.com/elsewhere"
            elif self.path == "/here":
                status, location = 302, "/ok"
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

    return Handler


@contextmanager
def receiving(host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None) -> Iterator[Receiver]:
    """Run a receiver on a free port of ``host`` until the block ends; over HTTPS with ``tls``
    (certificate and key files)."""
    server = ThreadingHTTPServer((host, 0), _handler(Receiver(0)))
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(server.server_address[1])
    server.RequestHandlerClass = _handler(receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
