"""HTTP handlers of organizations, templates and users under ``/api/v1/organization``, and
Blynk's endpoints this server does not offer (answered with Blynk's error shape and 501)."""

from __future__ import annotations

import re
from typing import Annotated

from litestar import Controller, MediaType, Response, delete, get, post, put, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT, HTTP_501_NOT_IMPLEMENTED

from backend.access.guards import requires, signed_in
from backend.access.paging import page_args
from backend.access.permissions import Permission as P
from backend.platform_api.context import PlatformServices
from backend.platform_api.directory import template_out
from backend.platform_api.params import OptionalOrgId, OrgId, Page, RoleId, Size, TemplateId, UserId
from backend.platform_api.schemas import (
    BlynkPage,
    InvitationOut,
    InviteIn,
    OrgCreateIn,
    PlatformDatastream,
    PlatformEvent,
    PlatformMetafield,
    PlatformOrg,
    PlatformTemplate,
    PlatformUser,
    RegisterIn,
    UserCreateIn,
    UserTransferIn,
)

Api = NamedDependency[PlatformServices]
TEMPLATES = requires(P.TEMPLATES_VIEW)
USERS = requires(P.USERS_VIEW)
CREATE_USERS = requires(P.USERS_INVITE, P.USERS_EDIT)
"""Making an account with a password: whoever may invite users and set their roles."""


class PlatformOrgController(Controller):
    """Blynk's organization API."""

    path = "/"
    tags = ["Platform API: organizations"]

    @get("/", guards=[signed_in])
    async def get_org(self, api: Api, org_id: OptionalOrgId = None) -> PlatformOrg:
        """One organization of the caller's scope (``orgId``; the caller's own by default)."""
        return await api.directory.org(org_id)

    @get("/profile", guards=[signed_in])
    async def profile(self, api: Api) -> PlatformOrg:
        """The caller's own organization."""
        return await api.directory.org(None)

    @get("/search", guards=[signed_in])
    async def search(
        self, api: Api, name: Annotated[str, QueryParameter(name="name")] = "", page: Page = 0, size: Size = 20
    ) -> BlynkPage[PlatformOrg]:
        """Organizations of the scope whose name contains ``name``."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.directory.search_orgs(name, page, size))

    @post("/create", guards=[requires(P.ORGS_CREATE)], status_code=HTTP_201_CREATED)
    async def create(self, data: JSONBody[OrgCreateIn], api: Api) -> PlatformOrg:
        """A sub-organization (of the caller's by default, or of ``parentOrganizationId``)."""
        return await api.directory.create_org(data.name, data.parentOrganizationId, data.tz)

    @delete("/", guards=[requires(P.ORGS_DELETE)], status_code=HTTP_204_NO_CONTENT)
    async def delete_org(self, org_id: OrgId, api: Api) -> None:
        """Delete an empty sub-organization."""
        await api.directory.delete_org(org_id)


class PlatformTemplateController(Controller):
    """Blynk's templates API."""

    path = "/"
    tags = ["Platform API: templates"]

    @get("/templates", guards=[TEMPLATES])
    async def list_templates(self, api: Api, page: Page = 0, size: Size = 20) -> BlynkPage[PlatformTemplate]:
        """Templates of every organization in scope."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.directory.list_templates(page, size))

    @get("/template", guards=[TEMPLATES])
    async def get_template(self, template_id: TemplateId, api: Api) -> PlatformTemplate:
        """One template."""
        return template_out(await api.directory.template(template_id))

    @get("/template/datastreams", guards=[TEMPLATES])
    async def datastreams(self, template_id: TemplateId, api: Api) -> list[PlatformDatastream]:
        """A template's datastreams (``id`` is the pin number)."""
        return await api.directory.template_datastreams(template_id)

    @get("/template/events", guards=[TEMPLATES])
    async def events(self, template_id: TemplateId, api: Api) -> list[PlatformEvent]:
        """A template's events."""
        return await api.directory.template_events(template_id)

    @get("/template/metafields", guards=[TEMPLATES])
    async def metafields(self, template_id: TemplateId, api: Api) -> list[PlatformMetafield]:
        """A template's metadata fields (the system ones first)."""
        return await api.directory.template_metafields(template_id)


class PlatformUserController(Controller):
    """Blynk's users API."""

    path = "/"
    tags = ["Platform API: users"]

    @get("/users", guards=[USERS])
    async def list_users(
        self, api: Api, org_id: OptionalOrgId = None, page: Page = 0, size: Size = 20
    ) -> BlynkPage[PlatformUser]:
        """Users of one organization (``orgId``) or of the whole scope."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.directory.users(org_id, page, size))

    @get("/user", guards=[USERS])
    async def get_user(self, user_id: UserId, api: Api) -> PlatformUser:
        """One user."""
        return await api.directory.user(user_id)

    @get("/search/users", guards=[USERS])
    async def search_users(
        self, api: Api, text: Annotated[str, QueryParameter(name="query")], page: Page = 0, size: Size = 20
    ) -> BlynkPage[PlatformUser]:
        """Users whose e-mail or name contains ``query``."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.directory.search_users(text, page, size))

    @put("/users/role", guards=[requires(P.USERS_EDIT)])
    async def set_role(self, user_id: UserId, role_id: RoleId, api: Api) -> PlatformUser:
        """Give a user another role (never one with permissions the caller lacks)."""
        return await api.directory.set_role(user_id, role_id)

    @post("/users/invite", guards=[requires(P.USERS_INVITE)], status_code=HTTP_201_CREATED)
    async def invite(self, data: JSONBody[InviteIn], api: Api) -> InvitationOut:
        """Invite an e-mail address (an account is made when the e-mailed link is used)."""
        return await api.directory.invite(data.email, data.roleId, data.name, data.orgId)

    @post("/users/register", guards=[requires(P.USERS_INVITE, P.ORGS_CREATE)], status_code=HTTP_204_NO_CONTENT)
    async def register(self, data: JSONBody[RegisterIn], api: Api) -> None:
        """E-mail a registration link: whoever follows it chooses a name and password and gets a
        new organization under the caller's, as its Admin (204, as Blynk)."""
        await api.directory.register(data.email)

    @post("/users/create", guards=[CREATE_USERS], status_code=HTTP_201_CREATED)
    async def create_user(self, data: JSONBody[UserCreateIn], api: Api) -> PlatformUser:
        """A new organization under the caller's (or under ``orgId``; also needs ``orgs.create``),
        named after the user, and in it a user with a password and ``roleId``."""
        return await api.directory.create_user(
            data.email, data.name, data.password, data.passwordHash, data.roleId, data.orgId, new_org=True
        )

    @post("/users/create-in-org", guards=[CREATE_USERS], status_code=HTTP_201_CREATED)
    async def create_user_in_org(self, data: JSONBody[UserCreateIn], api: Api) -> PlatformUser:
        """A user with a password and ``roleId`` in ``orgId`` (the caller's organization by default)."""
        return await api.directory.create_user(
            data.email, data.name, data.password, data.passwordHash, data.roleId, data.orgId, new_org=False
        )

    @post("/users/transfer", guards=[requires(P.USERS_EDIT)], status_code=HTTP_201_CREATED)
    async def transfer_user(self, data: JSONBody[UserTransferIn], api: Api) -> PlatformUser:
        """Move a user to another organization of the scope with a role given there (201, as Blynk)."""
        return await api.directory.transfer_user(data.userId, data.targetOrgId, data.roleId)


NOT_OFFERED: dict[str, tuple[HttpMethod, str]] = {}
"""Blynk's routes this server answers with 501 (none now: static tokens came with issue #17)."""


def _not_offered(path: str, method: HttpMethod, what: str) -> HTTPRouteHandler:
    async def handler() -> Response[dict[str, dict[str, str]]]:
        return Response(
            {"error": {"message": f"Not supported by this server: {what}."}}, status_code=HTTP_501_NOT_IMPLEMENTED
        )

    handler.__doc__ = f"Not offered by this server ({what}); answers 501 with Blynk's error body."
    return route(
        path,
        http_method=[method],
        guards=[signed_in],
        status_code=HTTP_501_NOT_IMPLEMENTED,
        tags=["Platform API: not offered"],
        media_type=MediaType.JSON,
        operation_id="notOffered" + "".join(w.title() for w in re.split(r"[/-]", path) if w),
        name=f"not-offered:{path}",
    )(handler)


NOT_OFFERED_ROUTES = [_not_offered(path, method, what) for path, (method, what) in NOT_OFFERED.items()]
