"""Blynk.Air JSON routes under ``/api/ota`` and the device download route.

The console's user sessions and roles are being built (issue #5); until they land these
routes carry no guard and act in the root organization. The download route needs none: its
token is the device's permission.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.response import Stream

from backend.ota.download import Download, RangeNotSatisfiableError
from backend.ota.schemas import Firmware, Shipment, ShipmentCreate, ShipmentDevice
from backend.ota.wiring import OtaServices

CHUNK = 64 * 1024


def _ota(request: Request[Any, Any, Any]) -> OtaServices:
    return request.app.state.ota  # type: ignore[no-any-return]


def _base(request: Request[Any, Any, Any]) -> str:
    return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


def _content_length(request: Request[Any, Any, Any]) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None


class OtaController(Controller):
    """Firmware images, shipments and the signing key."""

    path = "/api/ota"
    tags = ["Blynk.Air"]

    @post("/firmware", status_code=201, request_max_body_size=None)  # the service enforces its own limit
    async def upload(self, request: Request[Any, Any, Any], filename: str) -> Firmware:
        """Upload a ``.bin`` or ``.tar`` image as the raw request body (``?filename=fw.bin``)."""
        ota = _ota(request)
        return await ota.firmware.upload(await ota.org(), filename, _content_length(request), request.stream())

    @get("/firmware")
    async def list_firmware(self, request: Request[Any, Any, Any]) -> list[Firmware]:
        """Every uploaded image, newest first."""
        ota = _ota(request)
        return await ota.firmware.list_all(await ota.org())

    @get("/firmware/{firmware_id:int}")
    async def get_firmware(self, request: Request[Any, Any, Any], firmware_id: int) -> Firmware:
        """One image: size, hashes, signature and its info tag."""
        ota = _ota(request)
        return await ota.firmware.get(await ota.org(), firmware_id)

    @delete("/firmware/{firmware_id:int}", status_code=204)
    async def delete_firmware(self, request: Request[Any, Any, Any], firmware_id: int) -> None:
        """Delete an image no shipment uses."""
        ota = _ota(request)
        await ota.firmware.delete(await ota.org(), firmware_id)

    @get("/signing-key")
    async def signing_key(self, request: Request[Any, Any, Any]) -> dict[str, str]:
        """The public key devices pin to check firmware signatures (raw 32 bytes, base64)."""
        return _ota(request).public_key_document()

    @post("/shipments", status_code=201)
    async def create_shipment(self, request: Request[Any, Any, Any], data: ShipmentCreate) -> Shipment:
        """Start a shipment (live at once; the scheduler paces it)."""
        ota = _ota(request)
        return await ota.shipments.create(await ota.org(), data, _base(request))

    @get("/shipments")
    async def list_shipments(self, request: Request[Any, Any, Any]) -> list[Shipment]:
        """Every shipment with its counts per device status."""
        ota = _ota(request)
        return await ota.shipments.list_all(await ota.org())

    @get("/shipments/{shipment_id:int}")
    async def get_shipment(self, request: Request[Any, Any, Any], shipment_id: int) -> Shipment:
        """One shipment with its counts per device status."""
        ota = _ota(request)
        return await ota.shipments.get(await ota.org(), shipment_id)

    @get("/shipments/{shipment_id:int}/devices")
    async def shipment_devices(self, request: Request[Any, Any, Any], shipment_id: int) -> list[ShipmentDevice]:
        """The status of each device, with Blynk's status names."""
        ota = _ota(request)
        return await ota.shipments.devices(await ota.org(), shipment_id)

    @post("/shipments/{shipment_id:int}/{action:str}", status_code=200)
    async def shipment_action(self, request: Request[Any, Any, Any], shipment_id: int, action: str) -> Shipment:
        """``pause``, ``resume`` or ``cancel`` a shipment."""
        ota = _ota(request)
        return await ota.shipments.set_state(await ota.org(), shipment_id, action)

    @delete("/shipments/{shipment_id:int}", status_code=204)
    async def delete_shipment(self, request: Request[Any, Any, Any], shipment_id: int) -> None:
        """Delete a cancelled or finished shipment."""
        ota = _ota(request)
        await ota.shipments.delete(await ota.org(), shipment_id)

    @get("/download", media_type=MediaType.TEXT)
    async def download(self, request: Request[Any, Any, Any], token: str) -> Response[Any]:
        """The image for the device the token was made for (``Range`` supported)."""
        service = _ota(request).download
        try:
            plan = await service.open(token, request.headers.get("range"))
        except RangeNotSatisfiableError as exc:
            return Response({"error": {"message": exc.message}}, status_code=416, media_type=MediaType.JSON,
                            headers={"Content-Range": f"bytes */{exc.size}"})
        return Stream(_chunks(plan, service.sent), status_code=206 if plan.partial else 200,
                      media_type="application/octet-stream", headers=plan.headers)


async def _chunks(plan: Download, sent: Any) -> AsyncIterator[bytes]:
    """The bytes of the range; what went out is recorded however the response ends."""
    count, complete = 0, False
    try:
        with open(plan.path, "rb") as fh:
            fh.seek(plan.start)
            left = plan.end - plan.start + 1
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
                count += len(chunk)
            complete = left == 0
    finally:
        sent(plan, count, complete)
