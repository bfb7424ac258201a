"""A device's datastream as CSV for the console's export button: the platform API's streamed
export (``backend.platform_api.history.export_points``) over the history's server-side cursor,
for a device the signed-in user may see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from backend.console.devices import DeviceConsole
from backend.errors import NotFoundError, ValidationError
from backend.history.queries import stream_raw
from backend.platform_api.history import export_points


async def export_csv(
    devices: DeviceConsole, device_id: int, pin: int, start: datetime, end: datetime
) -> AsyncIterator[bytes]:
    """Every raw point of V``pin`` in ``[start, end)``, oldest first, as CSV bytes."""
    info = await devices.info(device_id)
    spec = info.by_pin.get(pin)
    if spec is None:
        raise NotFoundError(f"the device's template has no datastream on V{pin}")
    if end <= start:
        raise ValidationError("end must be after start")
    return export_points(stream_raw(devices.pool, device_id, pin, start, end), spec, "csv")
