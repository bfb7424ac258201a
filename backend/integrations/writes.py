"""Downlink writes of integration clients, applied through the platform API's checked path.

An integration client publishes ``dev/<device id>/set/<datastream name>`` with the value as its
payload; the broker hands it to the app alone as
``sys/integration/write/client:<oauth_client.id>/<device id>/<name>``
(``broker.namespace.write_topic``). Here the client is checked again (working, "may use MQTT")
and its write goes through :meth:`PlatformDevices.write` with the client's own principal: the
device must be in its scope and writable under its permissions, the value is checked, stored,
sent to the device and logged in the device's actions log as the client's. A refused write is
logged and dropped (MQTT 3.1.1 has no negative acknowledgement).

Each app replica subscribes through one shared subscription, so each write is applied once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.db.engine import Database
from backend.errors import OpenBlynkError
from backend.platform_api.devices import PlatformDevices
from backend.platform_api.oauth import TokenService
from backend.platform_api.runtime import PlatformRuntime
from backend.transport.mqtt import Message, ServiceClient
from broker.namespace import WRITE_FILTER

log = logging.getLogger(__name__)

WRITE_SUBSCRIPTION = "$share/openblynk-integrations/" + WRITE_FILTER
"""The app's subscription to integration writes (replicas share it)."""
_PREFIX = WRITE_FILTER.removesuffix("+/+/+")
_UNUSED = timedelta(0)


def parse_write_topic(topic: str) -> tuple[int, int, str] | None:
    """``sys/integration/write/client:<pk>/<device>/<name>`` -> ``(pk, device, name)``, else None."""
    if not topic.startswith(_PREFIX):
        return None
    key, device, name = (topic[len(_PREFIX) :].split("/") + ["", "", ""])[:3]
    kind, _, pk = key.partition(":")
    if kind != "client" or not pk.isdigit() or not device.isdigit() or not name or topic.count("/") != 5:
        return None
    return int(pk), int(device), name


class IntegrationWrites:
    """Applies integration writes (see module docstring)."""

    def __init__(self, db: Database, runtime: PlatformRuntime, client: ServiceClient) -> None:
        self.db = db
        self.runtime = runtime
        self.client = client
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and start applying writes."""
        await self.client.start()
        self._task = asyncio.create_task(self._run(), name="integration-writes")

    async def stop(self) -> None:
        """Stop applying writes and disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.stop()

    async def _run(self) -> None:
        while (message := await self.client.messages()) is not None:
            try:
                await self.apply(message)
            except Exception:
                log.exception("applying an integration write to %s failed", message.topic)

    async def apply(self, message: Message) -> bool:
        """Apply one write; whether it was applied."""
        parsed = parse_write_topic(message.topic)
        if parsed is None:
            return False
        client_pk, device_id, name = parsed
        try:
            value = message.payload.decode()
        except UnicodeDecodeError:
            log.info("integration write of client %d to device %d refused: not UTF-8", client_pk, device_id)
            return False
        async with self.db.session() as session:
            principal = await TokenService(session, _UNUSED).mqtt_principal(client_pk)
            if principal is None:
                log.info("integration write refused: client %d no longer works or may not use MQTT", client_pk)
                return False
            devices = PlatformDevices(session, Scope(session, principal), AuditService(session), self.runtime)
            try:
                info = await devices.writable(device_id)
                spec = info.by_name.get(name)
                if spec is None:
                    log.info("integration write of client %d refused: device %d has no %r", client_pk, device_id, name)
                    return False
                values: dict[int | str, object] = {spec.pin: value}
                await devices.write(device_id, values)
            except OpenBlynkError as exc:
                log.info("integration write of client %d to device %d refused: %s", client_pk, device_id, exc)
                return False
        return True
