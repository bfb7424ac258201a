"""Blynk.Air JSON routes under ``/api/ota`` and the device download route.

The routes sit in the ``/api`` router: a console session (with its CSRF check) and the
Blynk.Air permissions of the catalogue (``air.view``, ``air.ship``, ``air.control``); each acts
in the caller's own organization, so another tenant's firmware or shipment is answered 404.
The download route is public: its token is the device's permission.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream

from backend.access.guards import PUBLIC, requires
from backend.access.permissions import Permission as P
from backend.access.permissions import Principal
from backend.numbers import is_digits
from backend.ota.download import Download, RangeNotSatisfiableError
from backend.ota.schemas import Firmware, Shipment, ShipmentCreate, ShipmentDevice
from backend.ota.wiring import OtaServices

CHUNK = 64 * 1024


VIEW, SHIP, CONTROL = requires(P.AIR_VIEW), requires(P.AIR_SHIP), requires(P.AIR_CONTROL)


def _org(request: Request[Any, Any, Any]) -> int:
    """The caller's organization: Blynk.Air works in it."""
    principal: Principal = request.user
    return principal.org_id


def _base(request: Request[Any, Any, Any]) -> str:
    return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


def _content_length(request: Request[Any, Any, Any]) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw and is_digits(raw) else None


class OtaController(Controller):
    """Firmware images, shipments and the signing key."""

    path = "/ota"
    tags = ["Blynk.Air"]

    @post("/firmware", guards=[SHIP], status_code=201, request_max_body_size=None)  # the service enforces its own limit
    async def upload(
        self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices], filename: FromQuery[str]
    ) -> Firmware:
        """Upload a ``.bin`` or ``.tar`` image as the raw request body (``?filename=fw.bin``)."""
        return await ota.firmware.upload(_org(request), filename, _content_length(request), request.stream())

    @get("/firmware", guards=[VIEW])
    async def list_firmware(self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices]) -> list[Firmware]:
        """Every uploaded image, newest first."""
        return await ota.firmware.list_all(_org(request))

    @get("/firmware/{firmware_id:int}", guards=[VIEW])
    async def get_firmware(
        self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices], firmware_id: FromPath[int]
    ) -> Firmware:
        """One image: size, hashes, signature and its info tag."""
        return await ota.firmware.get(_org(request), firmware_id)

    @delete("/firmware/{firmware_id:int}", guards=[SHIP], status_code=204)
    async def delete_firmware(
        self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices], firmware_id: FromPath[int]
    ) -> None:
        """Delete an image no shipment uses."""
        await ota.firmware.delete(_org(request), firmware_id)

    @get("/signing-key", guards=[VIEW])
    async def signing_key(self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices]) -> dict[str, str]:
        """The public key devices pin to check firmware signatures (raw 32 bytes, base64)."""
        return ota.public_key_document()

    @post("/shipments", guards=[SHIP], status_code=201)
    async def create_shipment(
        self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices], data: JSONBody[ShipmentCreate]
    ) -> Shipment:
        """Start a shipment (live at once; the scheduler paces it)."""
        return await ota.shipments.create(_org(request), data, _base(request))

    @get("/shipments", guards=[VIEW])
    async def list_shipments(
        self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices]
    ) -> list[Shipment]:
        """Every shipment with its counts per device status."""
        return await ota.shipments.list_all(_org(request))

    @get("/shipments/{shipment_id:int}", guards=[VIEW])
    async def get_shipment(
        self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices], shipment_id: FromPath[int]
    ) -> Shipment:
        """One shipment with its counts per device status."""
        return await ota.shipments.get(_org(request), shipment_id)

    @get("/shipments/{shipment_id:int}/devices", guards=[VIEW])
    async def shipment_devices(
        self,
        request: Request[Any, Any, Any],
        ota: NamedDependency[OtaServices],
        shipment_id: FromPath[int],
        status: FromQuery[str | None] = None,
    ) -> list[ShipmentDevice]:
        """The status of each device (``?status=`` for one status), with Blynk's status names."""
        return await ota.shipments.devices(_org(request), shipment_id, status)

    @post("/shipments/{shipment_id:int}/{action:str}", guards=[CONTROL], status_code=200)
    async def shipment_action(
        self,
        request: Request[Any, Any, Any],
        ota: NamedDependency[OtaServices],
        shipment_id: FromPath[int],
        action: FromPath[str],
    ) -> Shipment:
        """``pause``, ``resume`` or ``cancel`` a shipment."""
        return await ota.shipments.set_state(_org(request), shipment_id, action)

    @delete("/shipments/{shipment_id:int}", guards=[CONTROL], status_code=204)
    async def delete_shipment(
        self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices], shipment_id: FromPath[int]
    ) -> None:
        """Delete a cancelled or finished shipment."""
        await ota.shipments.delete(_org(request), shipment_id)

    @get("/download", opt=PUBLIC, media_type=MediaType.TEXT)
    async def download(
        self, request: Request[Any, Any, Any], ota: NamedDependency[OtaServices], token: FromQuery[str]
    ) -> Response[Any]:
        """The image for the device the token was made for (``Range`` supported)."""
        service = ota.download
        try:
            plan = await service.open(token, request.headers.get("range"))
        except RangeNotSatisfiableError as exc:
            return Response(
                {"error": {"message": exc.message}},
                status_code=416,
                media_type=MediaType.JSON,
                headers={"Content-Range": f"bytes */{exc.size}"},
            )
        return Stream(
            _chunks(plan, service.sent),
            status_code=206 if plan.partial else 200,
            media_type="application/octet-stream",
            headers=plan.headers,
        )


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
