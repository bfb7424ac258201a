"""Wire types of the inject routes: the console's (snake case) and the platform API's (Blynk's
names)."""

from __future__ import annotations

import msgspec

from backend.inject.claims import Claimed
from backend.inject.provisioning import ProvisioningToken
from backend.inject.static_tokens import Issued, StaticToken
from backend.inject.tokens import DeviceToken


class GenerateIn(msgspec.Struct, forbid_unknown_fields=True):
    template_id: int
    count: int
    org_id: int | None = None


class ImportIn(msgspec.Struct, forbid_unknown_fields=True):
    template_id: int
    csv: str
    mapping: dict[str, str]
    """CSV column → metadata field of the template."""
    org_id: int | None = None


class ClaimIn(msgspec.Struct, forbid_unknown_fields=True):
    code: str
    name: str | None = None


class HeadlessClaimIn(msgspec.Struct, forbid_unknown_fields=True):
    serial: str
    pin: str
    name: str | None = None


class StaticTokenOut(msgspec.Struct):
    id: int
    org_id: int
    template_id: int
    template_name: str
    status: str
    device_id: int | None
    claimed_org_id: int | None
    owner_id: int | None
    meta: dict[str, str]
    created_at: str


class StaticTokenPage(msgspec.Struct):
    content: list[StaticTokenOut]
    total: int


class MadeOut(msgspec.Struct):
    created: int
    ids: list[int]


class ClaimedOut(msgspec.Struct):
    device_id: int
    org_id: int
    owner_id: int | None
    name: str
    template_id: int


def token_out(t: StaticToken) -> StaticTokenOut:
    return StaticTokenOut(
        t.id,
        t.org_id,
        t.template_id,
        t.template_name,
        t.status,
        t.device_id,
        t.claimed_org_id,
        t.owner_id,
        t.meta,
        t.created_at.isoformat(),
    )


def claimed_out(c: Claimed) -> ClaimedOut:
    return ClaimedOut(c.device_id, c.org_id, c.owner_id, c.name, c.template_id)


# -- the platform API (Blynk's names) --------------------------------------------------------


class PlatformGenerateIn(msgspec.Struct, forbid_unknown_fields=True):
    productId: int  # noqa: N815 (Blynk's name: the template)
    count: int
    orgId: int | None = None  # noqa: N815


class PlatformClaimIn(msgspec.Struct, forbid_unknown_fields=True):
    token: str
    """The claim code (``sqr_…``), as Blynk's token object names it."""
    orgId: int | None = None  # noqa: N815
    userId: int | None = None  # noqa: N815
    name: str | None = None


class PlatformHeadlessClaimIn(msgspec.Struct, forbid_unknown_fields=True):
    serial: str
    pin: str
    orgId: int | None = None  # noqa: N815
    userId: int | None = None  # noqa: N815
    name: str | None = None


class PlatformUnclaimIn(msgspec.Struct, forbid_unknown_fields=True):
    deviceId: int  # noqa: N815


class PlatformStaticToken(msgspec.Struct):
    """Blynk's static token object, plus our ``id`` and the metadata it carries."""

    id: int
    token: str
    orgId: int  # noqa: N815
    productId: int  # noqa: N815
    deviceToken: str  # noqa: N815
    createdAt: int  # noqa: N815
    status: str
    ownerId: int | None  # noqa: N815
    deviceId: int | None  # noqa: N815
    claimedOrgId: int | None  # noqa: N815
    meta: dict[str, str]


class PlatformClaimed(msgspec.Struct):
    deviceId: int  # noqa: N815
    orgId: int  # noqa: N815
    ownerId: int | None  # noqa: N815
    name: str
    productId: int  # noqa: N815


def platform_token(i: Issued) -> PlatformStaticToken:
    t = i.token
    return PlatformStaticToken(
        t.id,
        i.claim_code.value,
        t.org_id,
        t.template_id,
        i.auth_token.value,
        int(t.created_at.timestamp() * 1000),
        t.status,
        t.owner_id,
        t.device_id,
        t.claimed_org_id,
        t.meta,
    )


def platform_claimed(c: Claimed) -> PlatformClaimed:
    return PlatformClaimed(c.device_id, c.org_id, c.owner_id, c.name, c.template_id)


class TokenOut(msgspec.Struct):
    token: str


class PlatformDeviceToken(msgspec.Struct):
    deviceId: int  # noqa: N815
    name: str
    orgId: int  # noqa: N815
    token: str


def platform_device_token(t: DeviceToken) -> PlatformDeviceToken:
    return PlatformDeviceToken(t.device_id, t.name, t.org_id, t.token)


class ProvisionIn(msgspec.Struct, forbid_unknown_fields=True):
    template_id: int
    name: str


class ProvisioningOut(msgspec.Struct):
    token: str
    expires_at: str
    template_public: str
    mqtt_port: int


class PlatformProvisionIn(msgspec.Struct, forbid_unknown_fields=True):
    templateId: int  # noqa: N815
    name: str
    orgId: int | None = None  # noqa: N815
    userId: int | None = None  # noqa: N815


class PlatformProvisioningToken(msgspec.Struct):
    token: str
    expiresAt: int  # noqa: N815
    templateId: str  # noqa: N815


def provisioning_out(p: ProvisioningToken, mqtt_port: int) -> ProvisioningOut:
    return ProvisioningOut(p.token.value, p.expires_at.isoformat(), p.template_public, mqtt_port)


def platform_provisioning(p: ProvisioningToken) -> PlatformProvisioningToken:
    return PlatformProvisioningToken(p.token.value, int(p.expires_at.timestamp() * 1000), p.template_public)
