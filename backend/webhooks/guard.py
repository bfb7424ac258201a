"""The address guard of outgoing webhook requests (server-side request forgery).

A webhook's URL is written by a user of an organization; the request leaves from the server,
inside its network. Before each request the host is resolved and **every** address it
resolves to is checked: loopback, link-local (169.254/16 with the cloud metadata service,
fe80::/10), unspecified, multicast, and private-use or otherwise non-global ranges are
refused unless ``OPENBLYNK_WEBHOOK_ALLOWED_HOSTS`` names the host or a network holding the
address. The request is then sent to the checked address itself (:class:`Target`), so a
second DNS answer cannot swap in another one (DNS rebinding); the host name still goes in
the ``Host`` header and in TLS's SNI and certificate check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from backend.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses`` as text; the default asks the system's resolver."""


class AddressRefusedError(ValidationError):
    """The webhook's host is, or resolves to, an address webhooks may not reach."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a checked request goes: the host as written and the address it is pinned to."""

    host: str
    address: IPAddress
    port: int


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address the system's resolver gives ``host`` (IPv4 and IPv6)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise AddressRefusedError(f"the host {host!r} cannot be resolved ({exc.strerror})") from exc
    return [str(info[4][0]) for info in infos]


def forbidden(address: IPAddress) -> str | None:
    """Why an address is not for webhooks, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden(address.ipv4_mapped)
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private-use address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((why for hit, why in checks if hit), None)


class AddressGuard:
    """Resolves and checks a webhook's host against the allow-list."""

    def __init__(
        self,
        allowed_names: frozenset[str] = frozenset(),
        allowed_networks: Sequence[IPNetwork] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self.allowed_names = allowed_names
        self.allowed_networks = tuple(allowed_networks)
        self.resolver = resolver

    async def target(self, host: str, port: int) -> Target:
        """The checked address to send to; :class:`AddressRefusedError` if any is refused."""
        name = host.lower().rstrip(".")
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(name.strip("[]"))]
        except ValueError:
            found = await self.resolver(name, port)
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise AddressRefusedError(f"the host {host!r} has no address")
        for address in addresses:  # every one: a name giving one public and one internal is refused
            self.check(name, address)
        return Target(host, addresses[0], port)

    def check(self, name: str, address: IPAddress) -> None:
        """Refuse ``address`` (of host ``name``) unless it is public or allowed."""
        why = forbidden(address)
        if why is None or name in self.allowed_names or any(address in net for net in self.allowed_networks):
            return
        raise AddressRefusedError(
            f"{name} resolves to {address}, {why}; webhooks may reach it only if OPENBLYNK_WEBHOOK_ALLOWED_HOSTS allows it"
        )
