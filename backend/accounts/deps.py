"""The accounts services of a request, as dependencies (Litestar ``Provide``): each built on the
request's transaction (``db_session``), scope (``org_scope``) and audit log (``audit``)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.guards import client_ip
from backend.access.scope import Scope
from backend.accounts.auth import AuthService, Visitor
from backend.accounts.invitations import InvitationLinks, InvitationService
from backend.accounts.roles import RoleService
from backend.accounts.runtime import AccountsRuntime
from backend.accounts.sessions import SessionService
from backend.accounts.users import UserService
from backend.audit.services import AuditService


def provide_visitor(request: Request[Any, Any, Any]) -> Visitor:
    return Visitor(client_ip(request), request.headers.get("user-agent", ""))


def provide_auth(
    db_session: NamedDependency[AsyncSession],
    accounts_runtime: NamedDependency[AccountsRuntime],
    audit: NamedDependency[AuditService],
    visitor: NamedDependency[Visitor],
) -> AuthService:
    return AuthService(
        db_session, accounts_runtime.settings, accounts_runtime.mailer, audit, visitor, accounts_runtime.user_joined
    )


def provide_users(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    accounts_runtime: NamedDependency[AccountsRuntime],
) -> UserService:
    sessions = SessionService(db_session, accounts_runtime.session_lifetime)
    return UserService(db_session, org_scope, audit, sessions, accounts_runtime.user_joined)


def provide_roles(
    db_session: NamedDependency[AsyncSession], org_scope: NamedDependency[Scope], audit: NamedDependency[AuditService]
) -> RoleService:
    return RoleService(db_session, org_scope, audit)


def provide_invitations(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    accounts_runtime: NamedDependency[AccountsRuntime],
) -> InvitationService:
    return InvitationService(db_session, org_scope, audit, accounts_runtime.mailer, accounts_runtime.settings)


def provide_invitation_links(
    db_session: NamedDependency[AsyncSession],
    audit: NamedDependency[AuditService],
    visitor: NamedDependency[Visitor],
    accounts_runtime: NamedDependency[AccountsRuntime],
) -> InvitationLinks:
    return InvitationLinks(
        db_session, audit, visitor.ip, accounts_runtime.settings.org_max_depth, accounts_runtime.user_joined
    )


def accounts_dependencies() -> dict[str, Provide]:
    """What the accounts area provides to the routes that use its services."""
    return {
        "visitor": Provide(provide_visitor, sync_to_thread=False),
        "auth_service": Provide(provide_auth, sync_to_thread=False),
        "users_service": Provide(provide_users, sync_to_thread=False),
        "roles_service": Provide(provide_roles, sync_to_thread=False),
        "invitations_service": Provide(provide_invitations, sync_to_thread=False),
        "invitation_links": Provide(provide_invitation_links, sync_to_thread=False),
    }
