"""A device's actions menu in the console (Blynk's Device Menu): ping with the measured round
trip, reboot, request info, and delete, through the device commands of
:mod:`backend.devices.commands`.

Ping publishes ``downlink/ping`` at QoS 1 on the app's own broker connection; the broker times
the device's PUBACK and reports it on ``sys/ping/<id>``, which the ingest stores as the device's
last ping (``last_ping_ms``, ``last_ping_at``). The menu waits, reading that row, for a report
newer than the one before it sent, so the answer is the round trip the broker measured (or its
timeout), whichever app process stored it. Each action is audited.

Request info publishes ``downlink/get/info/mcu`` (openblynk's own downlink: Blynk documents no
way to ask a device for ``info/mcu``), and waits for the device's next ``info/mcu`` through the
live feed (:meth:`backend.devices.lifecycle.Lifecycle.info_mcu` tells it what it stored and
when; with several app replicas the live relay carries it from the replica that ingests the
device). openblynk's ``device_sdk`` answers; a device on Blynk's own libraries ignores the
unknown downlink, and the menu says it did not answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backend.console.devices import DeviceConsole
from backend.devices.live_relay import FLUSH_SECONDS
from backend.devices.models import Device
from backend.errors import ConflictError

PING_WAIT_SECONDS = 12.0
"""The broker reports a timeout after 10 s."""
POLL_SECONDS = 0.1
INFO_WAIT_SECONDS = 10.0
"""How long Request info waits for the device's ``info/mcu``."""
INFO_FIELDS = ("fw_version", "fw_build", "fw_type", "board_template_id", "blynk_version", "rx_buffer")


class NoAnswerError(ConflictError):
    """The device did not answer a ping, or no report came back in time (answered 409, as an
    offline device is: the device's state, not the request, is what failed)."""


@dataclass(frozen=True, slots=True)
class PingResult:
    """The round trip the broker measured, in milliseconds."""

    rtt_ms: float


@dataclass(frozen=True, slots=True)
class InfoResult:
    """What the device's ``info/mcu`` answer said (as stored), and when it arrived (ms)."""

    received_ms: int
    fields: dict[str, Any]


class DeviceMenu:
    """Device Menu actions on the devices one principal may control."""

    def __init__(self, devices: DeviceConsole) -> None:
        self.devices = devices

    async def _online(self, device_id: int, command: str) -> Device:
        device = await self.devices.controllable(device_id)
        if not device.online:
            raise ConflictError(f"{device.name} is offline: the {command} would be lost")
        return device

    async def _last_ping(self, device_id: int) -> tuple[float | None, datetime | None]:
        async with self.devices.pool.connection() as conn:
            cur = await conn.execute("SELECT last_ping_ms, last_ping_at FROM device WHERE id = %s", (device_id,))
            row = await cur.fetchone()
        return (row[0], row[1]) if row else (None, None)

    async def ping(self, device_id: int) -> PingResult:
        """Ping the device and wait for the broker's report of the round trip."""
        device = await self._online(device_id, "ping")
        _, before = await self._last_ping(device_id)
        self.devices.services.commands.ping(device_id)
        deadline = time.monotonic() + PING_WAIT_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            rtt, at = await self._last_ping(device_id)
            if at is not None and (before is None or at > before):
                await self.devices.audit.record(
                    self.devices.principal, device.org_id, "device.ping", "device", device_id, rtt_ms=rtt
                )
                if rtt is None:
                    raise NoAnswerError(f"{device.name} did not answer the ping (timeout)")
                return PingResult(rtt)
        raise NoAnswerError(f"no round trip reported for {device.name} within {PING_WAIT_SECONDS:.0f} s")

    async def reboot(self, device_id: int) -> None:
        """Ask the device to restart (``downlink/reboot``)."""
        device = await self._online(device_id, "reboot")
        self.devices.services.commands.reboot(device_id)
        await self.devices.audit.record(self.devices.principal, device.org_id, "device.reboot", "device", device_id)

    async def request_info(self, device_id: int) -> InfoResult:
        """Ask the device to publish ``info/mcu`` again and wait for it (NoAnswerError after
        :data:`INFO_WAIT_SECONDS`: devices on Blynk's own libraries ignore the request)."""
        device = await self._online(device_id, "info request")
        with self.devices.services.data.live.subscribe([device_id]) as sub:
            # With replicas, the relay tells the one that ingests the device of this watch
            # within one flush; a device cannot answer sooner than a round trip anyway.
            await asyncio.sleep(2 * FLUSH_SECONDS)
            self.devices.services.commands.request_info(device_id)
            await self.devices.audit.record(
                self.devices.principal, device.org_id, "device.info_request", "device", device_id
            )
            try:
                async with asyncio.timeout(INFO_WAIT_SECONDS):
                    while True:
                        event = await sub.next()
                        if event is not None and event.get("type") == "info":
                            return InfoResult(int(event["ts"]), {k: event.get(k) for k in INFO_FIELDS})
            except TimeoutError:
                pass
        raise NoAnswerError(
            f"{device.name} did not answer within {INFO_WAIT_SECONDS:.0f} s: only devices on openblynk's "
            "device_sdk answer downlink/get/info/mcu (Blynk's own libraries ignore it)"
        )

    async def delete(self, device_id: int) -> None:
        """Delete the device (``devices.edit``): its token stops working, a connection ends, its
        data and history go with it."""
        await self.devices.get(device_id)
        await self.devices.admin.delete(device_id, self.devices.services.data.history)
        self.devices.registry.invalidate(device_id)
