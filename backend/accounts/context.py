"""The per-request bundle of services the ``/api`` handlers receive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cached_property

from litestar import Request
from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.guards import client_ip
from backend.access.permissions import Principal
from backend.access.scope import Scope
from backend.accounts.auth import AuthService, Visitor
from backend.accounts.invitations import InvitationLinks, InvitationService
from backend.accounts.runtime import AccountsRuntime
from backend.accounts.roles import RoleService
from backend.accounts.sessions import SessionService
from backend.accounts.users import UserService
from backend.audit.services import AuditService
from backend.devices.directory import DeviceDirectory
from backend.devices.tags import DeviceTags
from backend.orgs.tree import OrgTreeService


class ApiServices:
    """The services of one request, sharing its database transaction (committed when the
    handler returns, rolled back when it raises)."""

    def __init__(self, runtime: AccountsRuntime, session: AsyncSession, principal: Principal | None,
                 visitor: Visitor) -> None:
        self.runtime = runtime
        self.session = session
        self._principal = principal
        self.visitor = visitor
        self.audit = AuditService(session)

    @property
    def principal(self) -> Principal:
        assert self._principal is not None, "route is public but asked for the principal"
        return self._principal

    @cached_property
    def scope(self) -> Scope:
        return Scope(self.session, self.principal)

    @cached_property
    def auth(self) -> AuthService:
        return AuthService(self.session, self.runtime.settings, self.runtime.mailer, self.audit, self.visitor)

    @cached_property
    def orgs(self) -> OrgTreeService:
        return OrgTreeService(self.session, self.scope, self.audit, self.runtime.settings.org_max_depth)

    @cached_property
    def devices(self) -> DeviceDirectory:
        return DeviceDirectory(self.session, self.scope, self.audit)

    @cached_property
    def tags(self) -> DeviceTags:
        return DeviceTags(self.session, self.scope, self.audit)

    @cached_property
    def users(self) -> UserService:
        return UserService(self.session, self.scope, self.audit,
                           SessionService(self.session, self.runtime.session_lifetime))

    @cached_property
    def roles(self) -> RoleService:
        return RoleService(self.session, self.scope, self.audit)

    @cached_property
    def invitations(self) -> InvitationService:
        return InvitationService(self.session, self.scope, self.audit, self.runtime.mailer, self.runtime.settings)

    @cached_property
    def invitation_links(self) -> InvitationLinks:
        return InvitationLinks(self.session, self.audit, self.visitor.ip, self.runtime.settings.org_max_depth)


async def provide_services(request: Request, accounts_runtime: NamedDependency[AccountsRuntime]  # type: ignore[type-arg]
                           ) -> AsyncIterator[ApiServices]:
    """The ``svc`` dependency of every ``/api`` handler."""
    runtime = accounts_runtime
    principal = request.scope.get("user")
    visitor = Visitor(client_ip(request), request.headers.get("user-agent", ""))
    async with runtime.db.session() as session:
        yield ApiServices(runtime, session, principal if isinstance(principal, Principal) else None, visitor)
