"""Blynk's HTTP device API (``/external/api/...``), byte-compatible with blynk.cloud.

Every error is a :class:`BlynkApiError` carrying Blynk's exact message text; the app's
exception handler answers it as HTTP 400 ``{"error":{"message":"..."}}``. A device over its
request rate (:mod:`backend.device_api.ratelimit`) is answered 429 in the same shape.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backend import errors as e
from backend.device_api.common import named_datastream, spec_for_pin_key
from backend.device_api.ratelimit import DeviceRateLimit
from backend.devices.context import DeviceServices
from backend.devices.data import DataService
from backend.devices.meta import ReadOnlyMetaError
from backend.devices.place import lat_lon
from backend.devices.properties import UnknownPropertyError
from backend.devices.registry import DeviceInfo, DeviceRegistry
from backend.devices.timeline import UnknownEventError
from backend.errors import BlynkApiError, UnavailableError, ValidationError
from backend.numbers import is_digits
from backend.security import Secrets
from backend.templates.meta import MetaFieldSpec
from backend.templates.values import MULTI_SEPARATOR, DatastreamSpec, json_of

_RESERVED = {"token", "dataStreamId", "value", "pin"}

# Blynk's texts for events and metadata (reference §2), byte for byte.
NO_EVENT_CODE = "Event code is not provided."
UNKNOWN_EVENT = "Can't find Event with this code in Product template"
WRONG_META_FIELD = "Wrong metaField format."
NO_META_FIELD = "MetaField doesn't exist."
WRONG_VALUE = "Wrong value"
LOC_LATLON = "loc.latlon"
COMMIT_WAIT_SECONDS = 30.0
"""How long ``update`` and ``batch/update`` wait for their values' commit before answering 503
(the values may still be stored later: a client that sends them again may store them twice)."""

Query = list[tuple[str, str]]


@dataclass(frozen=True)
class PinRef:
    """A datastream named in a request, with the key the caller used for it."""

    key: str
    spec: DatastreamSpec


class DeviceApiService:
    """The logic behind the device HTTP endpoints."""

    def __init__(
        self,
        registry: DeviceRegistry,
        secrets: Secrets,
        data: DataService,
        pool: AsyncConnectionPool,
        services: DeviceServices,
        rate_limit: DeviceRateLimit,
    ) -> None:
        self.registry = registry
        self.secrets = secrets
        self.data = data
        self.pool = pool
        self.services = services
        self.rate_limit = rate_limit

    async def reporting_device(self, query: Query) -> DeviceInfo:
        """The device whose token is in the query, counted as reporting data (Blynk's "log
        when device reports any data": an HTTP-only device is online for a while after it)."""
        device = await self.device(query)
        await self.services.lifecycle.http_report(device)
        return device

    async def device(self, query: Query) -> DeviceInfo:
        """The device whose token is in the query, counted against its request rate limit
        (every token request of the device API comes through here)."""
        tokens = [v for k, v in query if k == "token"]
        if not tokens or not tokens[0]:
            raise BlynkApiError(e.NO_TOKEN)
        device = await self.registry.by_token_hmac(self.secrets.token_hmac(tokens[0]))
        if device is None:
            raise BlynkApiError(e.INVALID_TOKEN)
        await self.rate_limit.admit(device.id)
        return device

    async def get(self, query: Query) -> str | dict[str, Any]:
        """One pin → its plain value; several → a JSON object keyed as asked."""
        device = await self.device(query)
        refs = self._pins(device, query, bare=True)
        if not refs:
            raise BlynkApiError(e.WRONG_PIN)
        if len(refs) == 1:
            value = await self.data.current(device, refs[0].spec)
            return "" if value is None else _plain(value)
        out: dict[str, Any] = {}
        for ref in refs:
            value = await self.data.current(device, ref.spec)
            out[ref.key] = None if value is None else json_of(ref.spec, value)
        return out

    async def get_all(self, query: Query) -> dict[str, Any]:
        """Every datastream that has a value, keyed ``v<pin>``."""
        device = await self.device(query)
        latest = await self.data.latest.get_all(device.id)
        out: dict[str, Any] = {}
        for pin in sorted(latest):
            spec = device.by_pin.get(pin)
            if spec is not None:
                out[f"v{pin}"] = json_of(spec, latest[pin].value)
        return out

    async def update(self, query: Query) -> None:
        """Set one datastream; the device receives it on ``downlink/ds/<name>``."""
        device = await self.reporting_device(query)
        if any(k == "dataStreamId" for k, _ in query) or any(k == "pin" for k, _ in query):
            ref = self._explicit(device, query)
            values = [v for k, v in query if k == "value"]
            if not values:
                raise BlynkApiError(e.BAD_PARAMS)
            await self._write(device, ref.spec, MULTI_SEPARATOR.join(values))
            await self._committed()
            return
        refs = self._pins(device, query, bare=False)
        if len(refs) != 1:
            raise BlynkApiError(e.WRONG_PIN if not refs else e.BAD_PARAMS)
        values = [v for k, v in query if k == refs[0].key]
        await self._write(device, refs[0].spec, MULTI_SEPARATOR.join(values))
        await self._committed()

    async def batch_update(self, query: Query) -> None:
        """Set several datastreams at once (``batch/update?token=..&v1=..&v2=..``)."""
        device = await self.reporting_device(query)
        refs = self._pins(device, query, bare=False)
        if not refs:
            raise BlynkApiError(e.WRONG_PIN)
        checked = []
        for ref in refs:  # check everything first: a bad value changes nothing
            raw = MULTI_SEPARATOR.join(v for k, v in query if k == ref.key)
            try:
                checked.append((ref.spec, raw, self.data.check(ref.spec, raw)))
            except ValidationError:
                raise BlynkApiError(e.WRONG_TYPE) from None
        for spec, raw, _ in checked:
            await self._write(device, spec, raw)
        await self._committed()

    async def _committed(self) -> None:
        """Return once the values written so far are committed to history: ``update`` and
        ``batch/update`` answer 200 only then, so an answered value survives any crash.
        Raises :class:`UnavailableError` (503) after :data:`COMMIT_WAIT_SECONDS`."""
        try:
            async with asyncio.timeout(COMMIT_WAIT_SECONDS):
                await self.data.history.settled_now()
        except TimeoutError:
            raise UnavailableError(
                "the value is not stored yet (the database does not answer); send it again"
            ) from None

    async def is_connected(self, query: Query) -> bool:
        """True while the device holds an MQTT connection."""
        device = await self.device(query)
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT online FROM device WHERE id = %s", (device.id,))).fetchone()
        return bool(row and row[0])

    async def update_property(self, query: Query) -> None:
        """``update/property?token=&pin=v1&label=Hi``: store widget properties of a datastream.

        No downlink is sent: Blynk documents none for properties (they are for the apps).
        """
        device = await self.reporting_device(query)
        pins = [v for k, v in query if k == "pin"]
        if not pins:
            raise BlynkApiError(e.WRONG_PIN)
        spec = spec_for_pin_key(device, pins[0])
        props: dict[str, list[str]] = {}
        for key, value in query:
            if key not in ("token", "pin"):
                props.setdefault(key, []).append(value)
        if not props:
            raise BlynkApiError(e.BAD_PARAMS)
        for name, values in props.items():
            try:
                await self.services.properties.set(device.id, spec.pin, name, MULTI_SEPARATOR.join(values))
            except UnknownPropertyError:
                raise BlynkApiError(f"Unknown widget property '{name[:40]}'.") from None
            except ValidationError as exc:
                raise BlynkApiError(exc.message) from None

    async def log_event(self, query: Query) -> None:
        """``logEvent?token=&code=&description=``: an event on the device's timeline."""
        device = await self.reporting_device(query)
        code = next((v for k, v in query if k == "code"), "")
        if not code:
            raise BlynkApiError(NO_EVENT_CODE)
        description = next((v for k, v in query if k == "description"), "")
        try:
            await self.services.timeline.log_event(device, code, description)
        except UnknownEventError:
            raise BlynkApiError(UNKNOWN_EVENT) from None
        except ValidationError as exc:  # over a rate limit
            raise BlynkApiError(exc.message) from None

    async def get_meta(self, query: Query) -> str:
        """``device/meta?token=&metaFieldId=`` (or ``metaFieldName=``): the value as plain text."""
        device = await self.device(query)
        if _meta_key(query) == LOC_LATLON:
            point = await lat_lon(device, self.data, self.services.meta)
            return "" if point is None else f"{point[0]!r} {point[1]!r}"
        spec = self._meta_field(device, query)
        return await self.services.meta.value(device, spec)

    async def update_meta(self, query: Query) -> None:
        """``device/meta/update?token=&metaFieldId=|metaFieldName=&value=``; pushed to the device."""
        device = await self.reporting_device(query)
        spec = self._meta_field(device, query)
        values = [v for k, v in query if k == "value"]
        if not values:
            raise BlynkApiError(e.BAD_PARAMS)
        try:
            await self.services.meta.set_from_server(device, spec, MULTI_SEPARATOR.join(values))
        except ReadOnlyMetaError:
            raise BlynkApiError(e.BAD_PARAMS) from None
        except ValidationError:
            raise BlynkApiError(WRONG_VALUE) from None

    @staticmethod
    def _meta_field(device: DeviceInfo, query: Query) -> MetaFieldSpec:
        ids = [v for k, v in query if k == "metaFieldId"]
        names = [v for k, v in query if k == "metaFieldName"]
        if ids:
            if not is_digits(ids[0]):
                raise BlynkApiError(WRONG_META_FIELD)
            spec = device.meta_by_id(int(ids[0]))
        elif names and names[0]:
            spec = device.meta.get(names[0])
        else:
            raise BlynkApiError(WRONG_META_FIELD)
        if spec is None:
            raise BlynkApiError(NO_META_FIELD)
        return spec

    async def _write(self, device: DeviceInfo, spec: DatastreamSpec, raw: str) -> None:
        try:
            await self.data.write_from_server(device, spec, raw)
        except ValidationError:
            raise BlynkApiError(e.WRONG_TYPE) from None

    def _explicit(self, device: DeviceInfo, query: Query) -> PinRef:
        spec = named_datastream(device, query)
        assert spec is not None  # callers check that dataStreamId or pin is present
        return PinRef("dataStreamId" if any(k == "dataStreamId" for k, _ in query) else "pin", spec)

    def _pins(self, device: DeviceInfo, query: Query, *, bare: bool) -> list[PinRef]:
        refs: list[PinRef] = []
        seen: set[str] = set()
        for key, _value in query:
            if key in _RESERVED or key in seen:
                if key == "dataStreamId" and bare:
                    refs.append(self._explicit(device, query))
                    seen.add(key)
                continue
            seen.add(key)
            refs.append(PinRef(key, spec_for_pin_key(device, key)))
        return refs


def _meta_key(query: Query) -> str:
    """The metaFieldId or metaFieldName the query names (first one), or ``""``."""
    return next((v for k, v in query if k in ("metaFieldId", "metaFieldName")), "")


def _plain(value: str) -> str:
    """A stored value as the plain-text body of ``get`` (multi-values comma-separated)."""
    return value.replace(MULTI_SEPARATOR, ",")
