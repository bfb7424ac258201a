"""HTTP handlers of Blynk's device API: thin, one service call each."""

from __future__ import annotations

from urllib.parse import parse_qsl

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency

from backend.connections import PublicRequest
from backend.device_api.services import DeviceApiService, Query


def request_query(request: PublicRequest) -> Query:
    """The query string as sent: Blynk puts pins as bare keys (``?token=..&v1&v2``) and repeats
    ``value``, so keys are kept in order, blank ones and repeats included."""
    return parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)


def _text(body: str) -> Response[str]:
    return Response(body, media_type=MediaType.TEXT)


class DeviceApiController(Controller):
    """``/external/api/...``: the endpoints Blynk firmware and scripts call with a device token."""

    path = "/external/api"
    tags = ["Blynk device HTTP API"]

    @get("/get")
    async def get_values(
        self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]
    ) -> Response[object]:
        """Read one datastream (plain value) or several (JSON object)."""
        result = await device_api.get(request_query(request))
        if isinstance(result, str):
            return _text(result)  # type: ignore[return-value]
        return Response(result, media_type=MediaType.JSON)

    @get("/getAll")
    async def get_all(self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]) -> dict[str, object]:
        """Every datastream value of the device, keyed ``v<pin>``."""
        return await device_api.get_all(request_query(request))

    @get("/update")
    async def update(self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]) -> Response[str]:
        """Write one datastream; the device receives it over MQTT."""
        await device_api.update(request_query(request))
        return _text("")

    @get("/batch/update")
    async def batch_update(
        self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]
    ) -> Response[str]:
        """Write several datastreams in one request."""
        await device_api.batch_update(request_query(request))
        return _text("")

    @get("/isHardwareConnected")
    async def is_hardware_connected(
        self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]
    ) -> Response[str]:
        """``true`` while the device is connected."""
        return _text("true" if await device_api.is_connected(request_query(request)) else "false")

    @get("/update/property")
    async def update_property(
        self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]
    ) -> Response[str]:
        """Set widget properties of a datastream (``pin=v1&label=Hi``)."""
        await device_api.update_property(request_query(request))
        return _text("")

    # two spellings of one path: the default operation ids would collide and break /schema
    @get(["/logEvent", "/logevent"], operation_id=lambda _h, _m, path: "ExternalApi_" + str(path[-1]))
    async def log_event(self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]) -> Response[str]:
        """Log an event of the template on the device's timeline."""
        await device_api.log_event(request_query(request))
        return _text("")

    @get("/device/meta")
    async def get_meta(self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]) -> Response[str]:
        """A metadata value of the device, as plain text."""
        return _text(await device_api.get_meta(request_query(request)))

    @get("/device/meta/update")
    async def update_meta(self, request: PublicRequest, device_api: NamedDependency[DeviceApiService]) -> Response[str]:
        """Set a metadata value; the device receives it on ``downlink/meta/<name>``."""
        await device_api.update_meta(request_query(request))
        return _text("")
