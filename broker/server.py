"""The public broker object: :class:`MqttBroker`, a facade over the amqtt-based core.

Nothing outside ``broker/`` imports amqtt; this module is where amqtt's start-up errors are
converted into :mod:`broker.errors`.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from amqtt.errors import BrokerError as AmqttBrokerError

from broker._core import CoreBroker
from broker.errors import BrokerStateError, ListenerError
from broker.identity import Authenticator, DeviceIdentity
from broker.presence import OfflineReason
from broker.settings import BrokerSettings

__all__ = ["MqttBroker"]

logger = logging.getLogger(__name__)
logging.getLogger("transitions").setLevel(logging.WARNING)  # amqtt's state machines chat at INFO

_TCP, _TLS = "default", "tls"
_TASKS_WAIT = 5.0  # seconds stop() waits for connection handlers to return


def _bind(host: str, port: int) -> str:
    return f"{host}:{port}"


class MqttBroker:
    """The embedded MQTT broker speaking Blynk's device API.

    Args:
        settings: listeners and limits.
        authenticator: turns CONNECT credentials into a device or service identity.

    Use ``await start()`` / ``await stop()`` or ``async with MqttBroker(...) as broker``.
    May be constructed outside a running event loop; amqtt objects are created in ``start()``.
    """

    def __init__(self, settings: BrokerSettings, authenticator: Authenticator) -> None:
        self._settings = settings
        self._authenticator = authenticator
        self._core: CoreBroker | None = None
        self._port: int | None = None
        self._tls_port: int | None = None

    @property
    def settings(self) -> BrokerSettings:
        """The settings this broker was built with."""
        return self._settings

    @property
    def port(self) -> int:
        """The bound plain-TCP port (the real one when ``settings.port`` was 0)."""
        if self._port is None:
            raise BrokerStateError("broker is not started")
        return self._port

    @property
    def tls_port(self) -> int | None:
        """The bound TLS port, or ``None`` if TLS is disabled."""
        return self._tls_port

    def _config(self) -> dict[str, Any]:
        settings = self._settings
        listeners: dict[str, Any] = {_TCP: {"type": "tcp", "bind": _bind(settings.host, settings.port)}}
        if settings.tls_port is not None:
            listeners[_TLS] = {
                "type": "tcp",
                "bind": _bind(settings.host, settings.tls_port),
                "ssl": True,
                "certfile": settings.certfile,
                "keyfile": settings.keyfile,
            }
        # "plugins": {} loads no plugin at all: no anonymous access, no $SYS, no topic plugins;
        # authentication and ACL are done by CoreBroker itself.
        return {"listeners": listeners, "plugins": {}}

    async def start(self) -> None:
        """Bind the listeners and start serving.

        Raises:
            BrokerStateError: already started.
            ListenerError: a listener could not be opened.
        """
        if self._core is not None:
            raise BrokerStateError("broker already started")
        core = CoreBroker(self._settings, self._authenticator, self._config())
        try:
            await core.start()
        except (AmqttBrokerError, OSError) as exc:
            raise ListenerError(f"cannot start MQTT listeners: {exc}") from exc
        self._core = core
        self._port = self._bound_port(core, _TCP)
        self._tls_port = self._bound_port(core, _TLS) if self._settings.tls_port is not None else None
        logger.info("MQTT broker listening on %s:%s (TLS: %s)", self._settings.host, self._port, self._tls_port)

    @staticmethod
    def _bound_port(core: CoreBroker, listener: str) -> int:
        instance = core._servers[listener].instance
        assert isinstance(instance, asyncio.Server)
        port = instance.sockets[0].getsockname()[1]
        assert isinstance(port, int)
        return port

    async def stop(self) -> None:
        """Publish offline presence for connected devices, then close everything."""
        core = self._core
        if core is None:
            return
        self._core = None
        await core.announce_shutdown()
        await core.drain_broadcasts(self._settings.shutdown_grace)
        await core.shutdown()
        tasks = list(core.connection_tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_TASKS_WAIT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self._port = self._tls_port = None
        logger.info("MQTT broker stopped")

    async def __aenter__(self) -> MqttBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def disconnect_device(self, device_id: int) -> bool:
        """Drop a device's live connection because its credentials were revoked.

        Its presence goes offline with reason ``revoked`` and no Last Will is published. A
        device reconnecting with the old token is then refused by the authenticator.

        Returns:
            True if the device was connected.
        """
        if self._core is None:
            return False
        return await self._core.disconnect_device(device_id, OfflineReason.REVOKED)

    def connected_devices(self) -> set[int]:
        """Ids of the devices with a live connection (for tests and diagnostics)."""
        if self._core is None:
            return set()
        return {
            c.identity.device_id for c in self._core.connections.values() if isinstance(c.identity, DeviceIdentity)
        }
