"""HTTP handlers of the device API's data endpoints: timestamped import, data export,
provisioning and file upload, and the routes that serve exports and uploads back.

Register ``DATA_ROUTES`` after ``DeviceApiController``; the handlers take the ``data_api``
dependency (:class:`DataApi`, built by :func:`build_data_api`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from litestar import Controller, MediaType, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.response import File

from backend.connections import PublicRequest
from backend.device_api.batch import BatchImportService
from backend.device_api.common import DailyQuota, base_url
from backend.device_api.controllers import request_query
from backend.device_api.export import ExportService
from backend.device_api.files import UploadService
from backend.device_api.provision import ProvisionService
from backend.device_api.services import DeviceApiService
from backend.devices.latest import LatestValues
from backend.numbers import is_digits
from backend.settings import Settings

# Served files come from devices: never let a browser run them in the app's origin.
_UPLOAD_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class DataApi:
    """The services behind these routes (the ``data_api`` dependency)."""

    batch: BatchImportService
    export: ExportService
    provision: ProvisionService
    upload: UploadService


def build_data_api(api: DeviceApiService, latest: LatestValues, settings: Settings) -> DataApi:
    """The services behind these routes, on the device API's services and pool."""
    pool = api.pool
    return DataApi(
        batch=BatchImportService(
            api,
            pool,
            latest,
            DailyQuota(pool, "import", settings.import_daily_points),
            max_string_bytes=settings.string_max_bytes,
            max_age=timedelta(days=settings.timestamped_max_age_days),
        ),
        export=ExportService(
            api,
            pool,
            settings.data_dir / "exports",
            DailyQuota(pool, "export", settings.export_daily_limit),
            timedelta(hours=settings.export_ttl_hours),
        ),
        provision=ProvisionService(api, pool),
        upload=UploadService(
            api,
            pool,
            settings.data_dir / "uploads",
            DailyQuota(pool, "upload", settings.upload_daily_limit),
            max_bytes=settings.upload_max_bytes,
            keep=settings.upload_files_per_device,
        ),
    )


def _base(request: PublicRequest) -> str:
    return base_url(request.url.scheme, request.headers.get("host") or request.url.netloc)


class DataApiController(Controller):
    """``/external/api/...`` endpoints that move data in bulk or complete provisioning."""

    path = "/external/api"
    tags = ["Blynk device HTTP API"]

    @get("/data/get")
    async def data_get(self, request: PublicRequest, data_api: NamedDependency[DataApi]) -> Response[object]:
        """Export history as a zipped CSV; answers ``{"link": ...}``."""
        return Response(await data_api.export.create(request_query(request), _base(request)), media_type=MediaType.JSON)

    @get("/provision")
    async def provision(self, request: PublicRequest, data_api: NamedDependency[DataApi]) -> Response[str]:
        """Complete Wi-Fi provisioning: check the template id, store the firmware info."""
        await data_api.provision.provision(request_query(request))
        return Response("", media_type=MediaType.TEXT)

    @post("/upload", status_code=200, request_max_body_size=None)  # the service enforces its own limit
    async def upload(self, request: PublicRequest, data_api: NamedDependency[DataApi]) -> Response[str]:
        """Store a multipart ``upfile``; answers the URL it is served at."""
        url = await data_api.upload.upload(
            request_query(request),
            request.headers.get("content-type"),
            _content_length(request),
            request.stream(),
            _base(request),
        )
        return Response(url, media_type=MediaType.TEXT)


# A function, not a Controller method: Litestar 2.25 refuses a second controller on a path that
# another controller already serves (GET batch/update), but takes a plain handler after it.
@post(
    "/external/api/batch/update", status_code=200, tags=["Blynk device HTTP API"], request_max_body_size=None
)  # the service refuses a larger body with Blynk's text
async def batch_update_timestamped(request: PublicRequest, data_api: NamedDependency[DataApi]) -> Response[str]:
    """Import ``[[ts_ms, value], ...]`` into one datastream (``pin=`` or ``dataStreamId=``)."""
    await data_api.batch.import_points(request_query(request), request.headers.get("content-type"), request.stream())
    return Response("", media_type=MediaType.TEXT)


@get("/device_uploads/{device_id:int}/{name:str}", include_in_schema=False)
async def serve_upload(request: PublicRequest, data_api: NamedDependency[DataApi], device_id: int, name: str) -> File:
    """A file a device uploaded."""
    found = await data_api.upload.find(device_id, name)
    if found is None:
        raise NotFoundException()
    return File(
        found.path,
        filename=found.name,
        media_type=found.content_type,
        content_disposition_type="inline",
        headers=_UPLOAD_HEADERS,
    )


@get("/{name:str}", include_in_schema=False)
async def serve_export(request: PublicRequest, data_api: NamedDependency[DataApi], name: str) -> File:
    """A data export zip (``/device_data_<id>_<time>.zip``) until it expires."""
    path = await data_api.export.find(name)
    if path is None:
        raise NotFoundException()
    return File(path, filename=name, media_type="application/zip")


def _content_length(request: PublicRequest) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw and is_digits(raw) else None


DATA_ROUTES: list[type[Controller] | HTTPRouteHandler] = [
    DataApiController,
    batch_update_timestamped,
    serve_upload,
    serve_export,
]
