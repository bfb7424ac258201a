"""Organization pages: the organization tree, users with invitations, and roles. Every change
is a form posting to the accounts context's ``/api`` routes."""

from __future__ import annotations

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template as Page

from backend.access.guards import requires, signed_in
from backend.access.permissions import DESCRIPTIONS, Principal
from backend.access.permissions import Permission as P
from backend.accounts.invitations import InvitationService
from backend.accounts.roles import RoleService
from backend.accounts.users import UserService
from backend.orgs.tree import OrgTreeService
from console_ui.render import page


@get("/orgs", guards=[signed_in])
async def orgs_page(request: Request, org_tree: NamedDependency[OrgTreeService]) -> Page:  # type: ignore[type-arg]
    """The organizations in scope, as a tree, with a form for a sub-organization."""
    orgs = await org_tree.list()
    children: dict[int | None, list[object]] = {}
    ids = {o.id for o in orgs}
    for o in orgs:
        children.setdefault(o.parent_id if o.parent_id in ids else None, []).append(o)
    return page(request, "orgs.html", orgs=orgs, children=children)


@get("/users", guards=[requires(P.USERS_VIEW)])
async def users_page(
    request: Request,  # type: ignore[type-arg]
    users_service: NamedDependency[UserService],
    roles_service: NamedDependency[RoleService],
    principal: NamedDependency[Principal],
    invitations_service: NamedDependency[InvitationService],
    org_tree: NamedDependency[OrgTreeService],
) -> Page:
    """Users of the organizations in scope, pending invitations, and a form to invite."""
    users, total = await users_service.list(None, 0, 1000)
    roles = await roles_service.list(None) if principal.has(P.ROLES_VIEW) else []
    invitations = await invitations_service.list(None) if principal.has(P.USERS_INVITE) else []
    orgs = {o.id: o for o in await org_tree.list()}
    return page(
        request,
        "users.html",
        users=users,
        total=total,
        roles=roles,
        invitations=invitations,
        orgs=orgs,
        role_names={r.id: r.name for r in roles},
    )


@get("/roles", guards=[requires(P.ROLES_VIEW)])
async def roles_page(request: Request, roles_service: NamedDependency[RoleService]) -> Page:  # type: ignore[type-arg]
    """Built-in and custom roles with their permissions, and a form for a custom role."""
    return page(
        request, "roles.html", roles=await roles_service.list(None), permissions=[(p.value, DESCRIPTIONS[p]) for p in P]
    )


@get("/account", guards=[signed_in])
async def account_page(request: Request, users_service: NamedDependency[UserService]) -> Page:  # type: ignore[type-arg]
    """The signed-in user: change password, sign out everywhere."""
    return page(request, "account.html", me=await users_service.me())


ROUTES = [orgs_page, users_page, roles_page, account_page]
