"""Wire types of the platform API, with Blynk's field names (camelCase) and shapes."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")
# ruff: noqa: N815 (Blynk's names)


class BlynkPage(msgspec.Struct, Generic[T]):
    """Blynk's page: ``{"content": [...], "totalElements": N}``."""

    content: list[T]
    totalElements: int


class HardwareInfo(msgspec.Struct):
    version: str | None
    fwType: str | None
    blynkVersion: str | None
    boardType: str | None
    build: str | None
    templateId: str | None


class DataStreamValue(msgspec.Struct):
    dataStreamId: int
    pin: str
    dataStreamLabel: str
    dataStreamAlias: str
    value: Any
    updatedAt: int | None


class MetaValue(msgspec.Struct):
    type: str
    value: str


class MetaFieldValue(msgspec.Struct):
    id: int
    name: str
    value: MetaValue


class PlatformDevice(msgspec.Struct, omit_defaults=True):
    """A device (``baseInfo``, list and edit answers leave out the token, values and metadata)."""

    id: int
    templateId: int
    orgId: int
    name: str
    activatedAt: int
    ownerUserId: int | None = None
    hardwareInfo: HardwareInfo | None = None
    connectTime: int = 0
    disconnectTime: int = 0
    ip: str | None = None
    online: bool = False
    token: str | None = None
    dataStreamValues: list[DataStreamValue] | None = None
    metaFieldValues: list[MetaFieldValue] | None = None


class DeviceCreateIn(msgspec.Struct):
    templateId: int | str
    name: str
    orgId: int | None = None
    ownerId: int | None = None


class DeviceEditIn(msgspec.Struct):
    name: str


class Connected(msgspec.Struct):
    connected: bool


class DatastreamWriteIn(msgspec.Struct):
    deviceId: int
    dataStreamId: int | str
    value: Any


class DatastreamsWriteIn(msgspec.Struct):
    deviceId: int
    values: dict[str, Any]


class PropertyIn(msgspec.Struct):
    deviceId: int
    dataStreamId: int | str
    property: str
    value: Any


class TriggerEventIn(msgspec.Struct):
    deviceId: int
    eventCode: str
    eventDescription: str = ""


class TransferIn(msgspec.Struct):
    deviceId: int
    newUserId: int | None = None
    newOrgId: int | None = None


class MetafieldIn(msgspec.Struct):
    deviceId: int
    value: Any
    metaFieldId: int | None = None
    metaFieldName: str | None = None


class ImportPoint(msgspec.Struct):
    value: Any
    ts: int


class ImportBatchIn(msgspec.Struct):
    """``/device/import/batch``: timestamped points (epoch milliseconds) into one datastream."""

    deviceId: int
    dataStreamId: int | str
    values: list[ImportPoint]


class ActivatedDevice(msgspec.Struct):
    """One device of ``/device/last-activated``."""

    id: int
    templateId: int
    orgId: int
    ownerUserId: int | None
    activationTime: int


class DeviceTagOut(msgspec.Struct):
    """A tag of a device (openblynk's tags are labels identified by their text: no id)."""

    tagOwnerOrgId: int
    name: str


class OrgTagOut(msgspec.Struct):
    """A tag in use in an organization, with how many of its visible devices carry it."""

    name: str
    devices: int


class HistoryPoint(msgspec.Struct):
    createdAt: int
    value: Any


class SeriesBucket(msgspec.Struct):
    ts: int
    min: float
    max: float
    avg: float
    count: int


class SeriesOut(msgspec.Struct):
    """Chart buckets of a range (issue #4's query API): at most ``points``, each with min, max, average."""

    source: str
    bucketMs: int
    buckets: list[SeriesBucket]


class RawPageOut(msgspec.Struct):
    """A page of raw points and the cursor of the next one (None at the end)."""

    content: list[HistoryPoint]
    next: str | None


class ActionLogEntryOut(msgspec.Struct):
    """One line of Blynk's actions log: who set which value of a virtual pin, when, and whether
    the device was online then."""

    triggerUserEmail: str
    value: Any
    pin: int
    pinType: str
    isOnline: bool
    createdAt: int


class TimelineEntryOut(msgspec.Struct):
    id: int
    eventCode: str | None
    eventType: str
    description: str
    ts: int


class PlatformOrg(msgspec.Struct):
    id: int
    name: str
    parentOrganizationId: int | None
    tz: str
    isActive: bool
    createdAt: int


class OrgCreateIn(msgspec.Struct):
    name: str
    parentOrganizationId: int | None = None
    tz: str | None = None


class PlatformTemplate(msgspec.Struct):
    id: int
    templateIds: list[str]
    orgId: int
    name: str
    boardType: str
    connectionType: str
    description: str
    createdAt: int


class PlatformDatastream(msgspec.Struct):
    id: int
    label: str
    alias: str
    units: str
    type: str
    defaultValue: Any
    pin: int
    pinType: str
    min: float | None
    max: float | None


class PlatformEvent(msgspec.Struct):
    code: str
    name: str
    type: str
    description: str


class PlatformMetafield(msgspec.Struct):
    id: int
    name: str
    type: str
    defaultValue: str | None


class PlatformUser(msgspec.Struct):
    id: int
    name: str
    email: str
    roleId: int
    orgId: int
    status: str
    registeredAt: int
    lastLoggedAt: int | None


class InviteIn(msgspec.Struct):
    email: str
    roleId: int
    name: str = ""
    orgId: int | None = None


class RegisterIn(msgspec.Struct):
    """``users/register``: the address to send the link to. ``locale`` is accepted and unused
    (openblynk's e-mails and console are in English)."""

    email: str
    locale: str = ""


class UserCreateIn(msgspec.Struct):
    """``users/create`` and ``users/create-in-org`` (Blynk's other fields, such as ``title`` or
    ``address``, have no place in openblynk and are ignored). ``password`` is the password
    itself, hashed here with argon2: Blynk's ``passwordHash`` is a digest its own clients make
    before sending, which openblynk's sign-in (taking the password) could never match."""

    email: str
    roleId: int
    name: str = ""
    password: str | None = None
    passwordHash: str | None = None
    orgId: int | None = None


class UserTransferIn(msgspec.Struct):
    userId: int
    targetOrgId: int
    roleId: int


class InvitationOut(msgspec.Struct):
    id: int
    email: str
    orgId: int
    roleId: int
    expiresAt: int


class OAuthClientIn(msgspec.Struct):
    name: str
    org_id: int | None = None
    permissions: list[str] | None = None
    mqtt_enabled: bool = False
    """"May use MQTT": it may also log in to the broker as ``integration:<client_id>``."""


class OAuthClientMqttIn(msgspec.Struct):
    """Switch an OAuth client's "may use MQTT"."""

    mqtt_enabled: bool


class OAuthClientOut(msgspec.Struct):
    id: int
    client_id: str
    org_id: int
    name: str
    permissions: list[str]
    created_at: str
    revoked_at: str | None
    mqtt_enabled: bool = False


class NewOAuthClientOut(msgspec.Struct):
    """A client just made: ``client_secret`` is shown this once."""

    client: OAuthClientOut
    client_secret: str


class TokenOut(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
