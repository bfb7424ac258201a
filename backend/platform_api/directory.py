"""Organizations, templates and users through the platform API, in Blynk's shapes.

Each call is the accounts and organizations services' own (``OrgTreeService``,
``UserService``, ``InvitationService``): the same scope, checks and audit log as the console.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission, Principal
from backend.access.scope import Scope
from backend.accounts.invitations import InvitationInfo, InvitationService
from backend.accounts.users import UserInfo, UserService
from backend.errors import NotFoundError, PermissionDeniedError, ValidationError
from backend.orgs.tree import OrgInfo, OrgTreeService
from backend.platform_api.devices import ms
from backend.platform_api.schemas import (
    InvitationOut,
    PlatformDatastream,
    PlatformEvent,
    PlatformMetafield,
    PlatformOrg,
    PlatformTemplate,
    PlatformUser,
)
from backend.templates.meta import SYSTEM_FIELDS
from backend.templates.models import Template
from backend.templates.services import TemplateService

BLYNK_TYPES = {"integer": "INT", "double": "DOUBLE", "string": "STRING", "enum": "ENUM", "location": "LOCATION"}
EVENT_TYPES = {"info": "INFORMATION", "warning": "WARNING", "critical": "CRITICAL", "content": "CONTENT"}


def org_out(org: OrgInfo) -> PlatformOrg:
    return PlatformOrg(org.id, org.name, org.parent_id, org.tz, True, ms(org.created_at))


def user_out(user: UserInfo) -> PlatformUser:
    return PlatformUser(
        user.id,
        user.name,
        user.email,
        user.role_id,
        user.org_id,
        user.status.upper(),
        ms(user.created_at),
        ms(user.last_login_at) if user.last_login_at else None,
    )


def invitation_out(inv: InvitationInfo) -> InvitationOut:
    return InvitationOut(inv.id, inv.email, inv.org_id, inv.role_id, ms(inv.expires_at))


def template_out(t: Template) -> PlatformTemplate:
    assert t.id is not None
    return PlatformTemplate(
        t.id, [t.public_id], t.org_id, t.name, t.hardware, t.connection_type, t.description, ms(t.created_at)
    )


class PlatformDirectory:
    """The organization tree, templates and users of the caller's scope."""

    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        principal: Principal,
        orgs: OrgTreeService,
        users: UserService,
        invitations: InvitationService,
    ) -> None:
        self._session = session
        self._scope = scope
        self._principal = principal
        self._orgs = orgs
        self._users = users
        self._invitations = invitations
        self.templates = TemplateService(session)

    # organizations
    async def org(self, org_id: int | None) -> PlatformOrg:
        """One organization in scope (the caller's own by default)."""
        return org_out(await self._orgs.get(org_id if org_id is not None else self._principal.org_id))

    async def search_orgs(self, name: str, page: int, size: int) -> tuple[list[PlatformOrg], int]:
        """Organizations in scope whose name contains ``name``, by id."""
        found = [o for o in await self._orgs.list() if name.strip().lower() in o.name.lower()]
        return [org_out(o) for o in found[page * size : (page + 1) * size]], len(found)

    async def create_org(self, name: str, parent_id: int | None, tz: str | None) -> PlatformOrg:
        return org_out(await self._orgs.create(name, parent_id, tz))

    async def delete_org(self, org_id: int) -> None:
        await self._orgs.delete(org_id)

    # templates
    async def list_templates(self, page: int, size: int) -> tuple[list[PlatformTemplate], int]:
        """Templates of every organization in scope, by id."""
        orgs = sorted(await self._scope.org_ids())
        rows = list(
            (
                await self._session.exec(
                    select(Template).where(col(Template.org_id).in_(orgs)).order_by(col(Template.id))
                )
            ).all()
        )
        return [template_out(t) for t in rows[page * size : (page + 1) * size]], len(rows)

    async def template(self, template_id: int) -> Template:
        """One template of an organization in scope."""
        found = await self._session.get(Template, template_id)
        if found is None or found.org_id not in await self._scope.org_ids():
            raise NotFoundError("Template is not found.")
        return found

    async def template_datastreams(self, template_id: int) -> list[PlatformDatastream]:
        t = await self.template(template_id)
        assert t.id is not None
        return [
            PlatformDatastream(
                d.pin,
                d.name,
                d.alias or d.name,
                d.units,
                BLYNK_TYPES.get(d.type, d.type.upper()),
                d.default_value,
                d.pin,
                "VIRTUAL",
                d.min,
                d.max,
            )
            for d in await self.templates.datastreams(t.id)
        ]

    async def template_events(self, template_id: int) -> list[PlatformEvent]:
        t = await self.template(template_id)
        assert t.id is not None
        return [
            PlatformEvent(e.code, e.name, EVENT_TYPES.get(e.type, e.type.upper()), e.description)
            for e in await self.templates.events(t.id)
        ]

    async def template_metafields(self, template_id: int) -> list[PlatformMetafield]:
        t = await self.template(template_id)
        assert t.id is not None
        system = [PlatformMetafield(f.field_id, f.name, f.type, f.default_value) for f in SYSTEM_FIELDS]
        return system + [
            PlatformMetafield(m.field_id, m.name, m.type, m.default_value)
            for m in await self.templates.meta_fields(t.id)
        ]

    # users
    async def users(self, org_id: int | None, page: int, size: int) -> tuple[list[PlatformUser], int]:
        found, total = await self._users.list(org_id, page, size)
        return [user_out(u) for u in found], total

    async def user(self, user_id: int) -> PlatformUser:
        try:
            return user_out(await self._users.get(user_id))
        except NotFoundError:
            raise NotFoundError("User is not found or you don't have access to him.") from None

    async def search_users(self, query: str, page: int, size: int) -> tuple[list[PlatformUser], int]:
        """Users in scope whose e-mail or name contains ``query``."""
        text = query.strip().lower()
        if not text:
            raise ValidationError("query must not be empty")
        everyone: list[UserInfo] = []
        batch, offset = 1000, 0
        while True:
            found, total = await self._users.list(None, offset, batch)
            everyone += found
            offset += 1
            if offset * batch >= total:
                break
        hits = [u for u in everyone if text in u.email.lower() or text in u.name.lower()]
        return [user_out(u) for u in hits[page * size : (page + 1) * size]], len(hits)

    async def set_role(self, user_id: int, role_id: int) -> PlatformUser:
        return user_out(await self._users.update(user_id, None, role_id))

    async def create_user(
        self,
        email: str,
        name: str,
        password: str | None,
        password_hash: str | None,
        role_id: int,
        org_id: int | None,
        *,
        new_org: bool,
    ) -> PlatformUser:
        """An active user with a password in ``org_id`` (the caller's organization by default) or,
        with ``new_org``, in a new organization under it named after the user (Blynk's "Clients
        organizations"); everything made is audited, and nothing stays made if a check fails."""
        if password is None:
            raise ValidationError(
                "give the new user's password as password: openblynk hashes it with argon2 and "
                "cannot sign anyone in with a passwordHash made by another client"
                if password_hash is not None
                else "password is required"
            )
        org = org_id if org_id is not None else self._principal.org_id
        await self._target_org(org)
        if new_org:
            if not self._principal.has(Permission.ORGS_CREATE):
                raise PermissionDeniedError(
                    "your role lacks the permission orgs.create (users/create makes an "
                    "organization for the user; use users/create-in-org otherwise)"
                )
            org = (await self._orgs.create((name.strip() or email.strip())[:100], org, None)).id
        return user_out(await self._users.create(org, email, name, password, role_id))

    async def transfer_user(self, user_id: int, org_id: int, role_id: int) -> PlatformUser:
        """Move a user of the scope to another organization of it, with a role there."""
        await self.user(user_id)
        await self._target_org(org_id)
        return user_out(await self._users.transfer(user_id, org_id, role_id))

    async def _target_org(self, org_id: int) -> None:
        try:
            await self._scope.require_org(org_id)
        except NotFoundError:
            raise NotFoundError("Target organization is not found.") from None

    async def register(self, email: str) -> None:
        """An e-mailed registration link (a new organization under the caller's for its follower)."""
        await self._invitations.register(email)

    async def invite(self, email: str, role_id: int, name: str, org_id: int | None) -> InvitationOut:
        """An e-mailed invitation (accounts are made by whoever holds the address)."""
        return invitation_out(await self._invitations.invite(org_id, email, role_id, name))
