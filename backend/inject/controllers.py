"""HTTP handlers of Blynk.Inject: the console's JSON routes under ``/api/inject`` and the platform
API's under ``/api/v1/organization/static-tokens`` (thin: one service call and a wire type each)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.access.guards import requires, requires_any
from backend.access.paging import page_args
from backend.access.permissions import Permission as P
from backend.inject.deps import InjectServices, inject_dependencies
from backend.inject.labels import label_sheet
from backend.inject.schemas import (
    ClaimedOut,
    ClaimIn,
    GenerateIn,
    HeadlessClaimIn,
    ImportIn,
    MadeOut,
    PlatformClaimed,
    PlatformClaimIn,
    PlatformDeviceToken,
    PlatformGenerateIn,
    PlatformHeadlessClaimIn,
    PlatformProvisionIn,
    PlatformProvisioningToken,
    PlatformStaticToken,
    PlatformUnclaimIn,
    ProvisionIn,
    ProvisioningOut,
    StaticTokenPage,
    TokenOut,
    claimed_out,
    platform_claimed,
    platform_device_token,
    platform_provisioning,
    platform_token,
    provisioning_out,
    token_out,
)
from backend.inject.static_tokens import csv_export
from backend.inject.tokens import tokens_csv
from backend.platform_api.params import DeviceId, Page, Size, TemplateId
from backend.platform_api.schemas import BlynkPage

Inject = NamedDependency[InjectServices]
VIEW_TOKENS = requires(P.TOKENS_VIEW)
EDIT_TOKENS = requires(P.TOKENS_EDIT)
MAKE_TOKENS = requires(P.TOKENS_EDIT, P.DEVICES_EDIT)
CLAIM = requires_any(P.DEVICES_EDIT, P.DEVICES_EDIT_OWN)
OptionalTemplate = Annotated[int | None, QueryParameter(name="templateId", description="Template identifier")]


class InjectController(Controller):
    """Static tokens and claims for the console (session cookie, same origin)."""

    path = "/inject"
    tags = ["Console: Blynk.Inject"]
    dependencies = inject_dependencies()

    @get("/static-tokens", guards=[VIEW_TOKENS])
    async def list_tokens(
        self,
        inject: Inject,
        template_id: FromQuery[int | None] = None,
        page: FromQuery[int] = 0,
        size: FromQuery[int] = 100,
    ) -> StaticTokenPage:
        """A page of the static tokens of the caller's organizations (no secrets)."""
        rows, total = await inject.tokens.page(template_id, *page_args(page, size))
        return StaticTokenPage([token_out(r) for r in rows], total)

    @post("/static-tokens/generate", guards=[MAKE_TOKENS], status_code=HTTP_201_CREATED)
    async def generate(self, data: JSONBody[GenerateIn], inject: Inject) -> MadeOut:
        """``count`` new static tokens of a template."""
        made = await inject.tokens.generate(data.template_id, data.count, data.org_id)
        return MadeOut(len(made), [t.id for t in made])

    @post("/static-tokens/import", guards=[MAKE_TOKENS], status_code=HTTP_201_CREATED)
    async def import_csv(self, data: JSONBody[ImportIn], inject: Inject) -> MadeOut:
        """One static token per CSV line, its columns mapped to metadata fields."""
        made = await inject.tokens.import_csv(data.template_id, data.csv, data.mapping, data.org_id)
        return MadeOut(len(made), [t.id for t in made])

    @get("/static-tokens/export.csv", guards=[VIEW_TOKENS])
    async def export_csv(self, inject: Inject, template_id: FromQuery[int]) -> Response[str]:
        """Every static token of a template with its auth token and claim code (audited)."""
        return Response(
            csv_export(await inject.tokens.issued(template_id)),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="static_tokens_{template_id}.csv"'},
        )

    @get("/static-tokens/labels.svg", guards=[VIEW_TOKENS])
    async def labels(self, inject: Inject, template_id: FromQuery[int]) -> Response[str]:
        """Printable QR labels (A4, 3 × 8) of every static token of a template (audited)."""
        return Response(
            label_sheet(await inject.tokens.issued(template_id), inject.runtime.settings.public_url),
            media_type="image/svg+xml",
            headers={"Content-Disposition": f'attachment; filename="static_tokens_{template_id}.svg"'},
        )

    @post("/claim", guards=[CLAIM], status_code=HTTP_201_CREATED)
    async def claim(self, data: JSONBody[ClaimIn], inject: Inject) -> ClaimedOut:
        """Claim a device with its claim code: it becomes the caller's, in the caller's organization."""
        return claimed_out(await inject.claims.claim(data.code, data.name))

    @post("/claim/headless", guards=[CLAIM], status_code=HTTP_201_CREATED)
    async def claim_headless(self, data: JSONBody[HeadlessClaimIn], inject: Inject) -> ClaimedOut:
        """Claim a device without a screen: its serial and the PIN of the claim window it opened."""
        return claimed_out(await inject.claims.claim_headless(data.serial, data.pin, data.name))

    @post("/provisioning", guards=[CLAIM], status_code=HTTP_201_CREATED)
    async def provisioning(self, data: JSONBody[ProvisionIn], inject: Inject) -> ProvisioningOut:
        """A Wi-Fi provisioning token: the device that first connects with it becomes the caller's."""
        issued = await inject.provisioning.issue(data.template_id, data.name)
        return provisioning_out(issued, inject.runtime.settings.mqtt_port)

    @post("/devices/{device_id:int}/unclaim", guards=[CLAIM], status_code=HTTP_204_NO_CONTENT)
    async def unclaim(self, device_id: FromPath[int], inject: Inject) -> None:
        """Give a claimed device back to its manufacturer; its data here is erased."""
        await inject.claims.unclaim(device_id)

    @post("/devices/{device_id:int}/token/reissue", guards=[EDIT_TOKENS], status_code=HTTP_200_OK)
    async def reissue(self, device_id: FromPath[int], inject: Inject) -> TokenOut:
        """A new auth token; the old one stops working and the device is disconnected now."""
        return TokenOut((await inject.device_tokens.reissue(device_id)).value)

    @post("/devices/{device_id:int}/token/revoke", guards=[EDIT_TOKENS], status_code=HTTP_204_NO_CONTENT)
    async def revoke(self, device_id: FromPath[int], inject: Inject) -> None:
        """End the device's auth token now (disconnected, presence ``revoked``) until one is reissued."""
        await inject.device_tokens.revoke(device_id)

    @get("/tokens/export.csv", guards=[VIEW_TOKENS])
    async def export_tokens(self, inject: Inject, template_id: FromQuery[int]) -> Response[str]:
        """The auth token of every visible device of a template (audited)."""
        return Response(
            tokens_csv(await inject.device_tokens.of_template(template_id)),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="device_tokens_{template_id}.csv"'},
        )


class PlatformDeviceTokenController(Controller):
    """Reissue, revoke and export devices' auth tokens (Bearer token; openblynk's routes)."""

    path = "/device"
    tags = ["Platform API: device tokens"]
    dependencies = inject_dependencies()

    @post("/token/reissue", guards=[EDIT_TOKENS], status_code=HTTP_200_OK)
    async def reissue(self, device_id: DeviceId, inject: Inject) -> TokenOut:
        """A new auth token for ``deviceId``; the old one stops working and the device is disconnected."""
        return TokenOut((await inject.device_tokens.reissue(device_id)).value)

    @post("/token/revoke", guards=[EDIT_TOKENS], status_code=HTTP_204_NO_CONTENT)
    async def revoke(self, device_id: DeviceId, inject: Inject) -> None:
        """End the auth token of ``deviceId`` now, until one is reissued."""
        await inject.device_tokens.revoke(device_id)

    @post("/provisioning-token", guards=[CLAIM], status_code=HTTP_201_CREATED)
    async def provisioning_token(
        self, data: JSONBody[PlatformProvisionIn], inject: Inject
    ) -> PlatformProvisioningToken:
        """A Wi-Fi provisioning token for a device of ``templateId`` named ``name``, in ``orgId``
        for ``userId``: the device that first connects with it becomes theirs."""
        issued = await inject.provisioning.issue(data.templateId, data.name, data.orgId, data.userId)
        return platform_provisioning(issued)

    @get("/tokens", guards=[VIEW_TOKENS])
    async def tokens(self, template_id: TemplateId, inject: Inject) -> list[PlatformDeviceToken]:
        """Every visible device of ``templateId`` with its auth token (audited)."""
        return [platform_device_token(t) for t in await inject.device_tokens.of_template(template_id)]


class PlatformInjectController(Controller):
    """Blynk's static tokens API (Bearer token)."""

    path = "/static-tokens"
    tags = ["Platform API: static tokens"]
    dependencies = inject_dependencies()

    @get("/", guards=[VIEW_TOKENS])
    async def list_tokens(
        self, inject: Inject, template_id: OptionalTemplate = None, page: Page = 0, size: Size = 100
    ) -> BlynkPage[PlatformStaticToken]:
        """Static tokens of the caller's organizations with their device tokens and claim codes."""
        rows, total = await inject.tokens.page(template_id, *page_args(page, size))
        issued = await inject.tokens.issued(template_id, [r.id for r in rows]) if rows else []
        return BlynkPage([platform_token(i) for i in issued], total)

    @post("/generate", guards=[MAKE_TOKENS], status_code=HTTP_201_CREATED)
    async def generate(self, data: JSONBody[PlatformGenerateIn], inject: Inject) -> list[PlatformStaticToken]:
        """``count`` new static tokens of a template (``productId``), in ``orgId`` or the caller's."""
        made = await inject.tokens.generate(data.productId, data.count, data.orgId)
        return [platform_token(i) for i in await inject.tokens.issued(data.productId, [t.id for t in made])]

    @post("/claim", guards=[CLAIM], status_code=HTTP_200_OK)
    async def claim(self, data: JSONBody[PlatformClaimIn], inject: Inject) -> PlatformClaimed:
        """Claim a device with its claim code (``token``) into ``orgId`` for ``userId``."""
        return platform_claimed(await inject.claims.claim(data.token, data.name, data.orgId, data.userId))

    @post("/claim-headless", guards=[CLAIM], status_code=HTTP_200_OK)
    async def claim_headless(self, data: JSONBody[PlatformHeadlessClaimIn], inject: Inject) -> PlatformClaimed:
        """Claim a device by its serial and the PIN of its open claim window, into ``orgId`` for ``userId``."""
        claimed = await inject.claims.claim_headless(data.serial, data.pin, data.name, data.orgId, data.userId)
        return platform_claimed(claimed)

    @post("/unclaim", guards=[CLAIM], status_code=HTTP_204_NO_CONTENT)
    async def unclaim(self, data: JSONBody[PlatformUnclaimIn], inject: Inject) -> None:
        """Give a claimed device back to its manufacturer."""
        await inject.claims.unclaim(data.deviceId)
