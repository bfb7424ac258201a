"""``GET /external/api/provision``: a device completes Wi-Fi provisioning (Blynk.Inject).

The device proves it holds its new token and says which template and firmware it runs. The
``templateId`` must be the public id (``TMPL...``) of the device's template; the firmware
fields are stored on the device as ``info/mcu`` stores them (``ver`` → ``fw_version``,
``build`` → ``fw_build``, ``fwType`` → ``fw_type``, ``blVer`` → ``blynk_version``,
``templateId`` → ``board_template_id``). A field not sent keeps its stored value. ``type``
(``MCU``/``NCP``) and ``boType`` (board type) are accepted but not stored: the device table has
no column for them yet.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from backend import errors as e
from backend.device_api.common import Query, first
from backend.device_api.services import DeviceApiService
from backend.errors import BlynkApiError

# Blynk does not document its answer to a wrong template id; this text is openblynk's own.
TEMPLATE_MISMATCH = "Template ID doesn't match the device's template."
FIELD_MAX = 64  # as info/mcu
_COLUMNS = {"ver": "fw_version", "build": "fw_build", "fwType": "fw_type", "blVer": "blynk_version"}
_UPDATE_SQL = (
    "UPDATE device SET board_template_id = %(tmpl)s, "
    + ", ".join(f"{col} = coalesce(%({key})s, {col})" for key, col in _COLUMNS.items())
    + ", last_seen = now() WHERE id = %(device)s"
)


class ProvisionService:
    """Completes provisioning for a device that calls in with its token."""

    def __init__(self, api: DeviceApiService, pool: AsyncConnectionPool) -> None:
        self.api = api
        self.pool = pool

    async def provision(self, query: Query) -> None:
        """Check the template id and store the firmware information."""
        device = await self.api.reporting_device(query)  # counts for HTTP-only online
        template_id = first(query, "templateId")
        if not template_id:
            raise BlynkApiError(e.BAD_PARAMS)
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT public_id FROM template WHERE id = %s", (device.template_id,))
            ).fetchone()
            if row is None or row[0] != template_id:
                raise BlynkApiError(TEMPLATE_MISMATCH)
            values: dict[str, object] = {key: _field(first(query, key)) for key in _COLUMNS}
            await conn.execute(_UPDATE_SQL, {**values, "tmpl": template_id, "device": device.id})


def _field(value: str | None) -> str | None:
    """A firmware field as stored: None if absent or empty, cut at 64 characters."""
    return value[:FIELD_MAX] if value else None
