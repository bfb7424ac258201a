"""Small helpers for tests that talk over loopback: free ports and bounded waits (the one
polling helper, :func:`wait_for`, and its async twin :func:`eventually`)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral
    range and not handed out before by this process.

    A port from ``bind(0)`` is an ephemeral one: between this call and the moment a spawned
    broker or app binds it, any outgoing connection (a paho client, a database connection) may
    be given the same port by the kernel, and the process then fails with "address already in
    use". Ports below the ephemeral range are never given to outgoing connections."""
    low = 10_000 if _EPHEMERAL_LOW > 11_000 else 1_024
    for _ in range(200):
        port = random.randrange(low, _EPHEMERAL_LOW)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise AssertionError(f"no free port found between {low} and {_EPHEMERAL_LOW}")


def wait_for(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = "condition"
) -> T:
    """Poll until ``predicate()`` is truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, message: str = "condition"
) -> T:
    """:func:`wait_for` for async tests: polls without blocking the event loop (on which an
    in-process broker may run)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        await asyncio.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on the port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
