"""The platform API's services of a request (the ``api`` dependency), on the request's
transaction, scope and audit log, plus the platform runtime."""

from __future__ import annotations

from functools import cached_property

from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.access.scope import Scope
from backend.accounts.invitations import InvitationService
from backend.accounts.users import UserService
from backend.audit.services import AuditService
from backend.devices.tags import DeviceTags
from backend.orgs.tree import OrgTreeService
from backend.platform_api.devices import PlatformDevices
from backend.platform_api.directory import PlatformDirectory
from backend.platform_api.history import PlatformHistory
from backend.platform_api.lookups import PlatformLookups
from backend.platform_api.runtime import PlatformRuntime


class PlatformServices:
    """Devices, history, organizations, templates and users as the caller may see them."""

    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        audit: AuditService,
        tags: DeviceTags,
        directory: PlatformDirectory,
        runtime: PlatformRuntime,
    ) -> None:
        self.session = session
        self.scope = scope
        self.audit = audit
        self.tags = tags
        self.directory = directory
        self.runtime = runtime

    @cached_property
    def devices(self) -> PlatformDevices:
        return PlatformDevices(self.session, self.scope, self.audit, self.runtime)

    @cached_property
    def history(self) -> PlatformHistory:
        return PlatformHistory(self.devices, self.runtime.pool)

    @cached_property
    def lookups(self) -> PlatformLookups:
        return PlatformLookups(self.devices, self.tags)


def provide_platform_directory(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    principal: NamedDependency[Principal],
    org_tree: NamedDependency[OrgTreeService],
    users_service: NamedDependency[UserService],
    invitations_service: NamedDependency[InvitationService],
) -> PlatformDirectory:
    return PlatformDirectory(db_session, org_scope, principal, org_tree, users_service, invitations_service)


def provide_platform(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    device_tags: NamedDependency[DeviceTags],
    platform_directory: NamedDependency[PlatformDirectory],
    platform_runtime: NamedDependency[PlatformRuntime],
) -> PlatformServices:
    """The ``api`` dependency of every platform API handler."""
    return PlatformServices(db_session, org_scope, audit, device_tags, platform_directory, platform_runtime)


def platform_dependencies() -> dict[str, Provide]:
    """What the platform API area provides to its routes (with the accounts' and orgs' providers)."""
    return {
        "platform_directory": Provide(provide_platform_directory, sync_to_thread=False),
        "api": Provide(provide_platform, sync_to_thread=False),
    }
