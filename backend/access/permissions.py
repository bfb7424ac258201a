"""The one catalogue of permissions, the built-in roles, and who is asking (:class:`Principal`).

Permission names follow the groups of Blynk's Roles & Permissions page: permissions control,
users, devices, auth tokens, templates, Blynk.Air, organizations, automations, locations and
the developer API. A role stores names from this catalogue; ``*`` (Admin only) means all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from backend.errors import ValidationError

ALL = "*"


class Permission(StrEnum):
    """Every permission a role can hold."""

    # permissions control
    ROLES_VIEW = "roles.view"
    ROLES_EDIT = "roles.edit"
    # users
    USERS_VIEW = "users.view"
    USERS_INVITE = "users.invite"
    USERS_EDIT = "users.edit"
    USERS_DELETE = "users.delete"
    USERS_SUSPEND = "users.suspend"
    USERS_LOGOUT = "users.logout"
    AUDIT_VIEW = "audit.view"
    # devices
    DEVICES_VIEW = "devices.view"
    DEVICES_VIEW_OWN = "devices.view.own"
    DEVICES_EDIT = "devices.edit"
    DEVICES_EDIT_OWN = "devices.edit.own"
    DEVICES_MOVE = "devices.move"
    # auth tokens
    TOKENS_VIEW = "tokens.view"
    TOKENS_EDIT = "tokens.edit"
    # templates
    TEMPLATES_VIEW = "templates.view"
    TEMPLATES_EDIT = "templates.edit"
    # Blynk.Air
    AIR_VIEW = "air.view"
    AIR_SHIP = "air.ship"
    AIR_CONTROL = "air.control"
    # organizations
    ORGS_VIEW_SUB = "orgs.view_sub"
    ORGS_CREATE = "orgs.create"
    ORGS_EDIT = "orgs.edit"
    ORGS_DELETE = "orgs.delete"
    ORGS_MOVE = "orgs.move"
    # automations
    AUTOMATIONS_VIEW = "automations.view"
    AUTOMATIONS_CREATE = "automations.create"
    AUTOMATIONS_EDIT = "automations.edit"
    AUTOMATIONS_DELETE = "automations.delete"
    AUTOMATIONS_EXECUTE = "automations.execute"
    # locations
    LOCATIONS_VIEW = "locations.view"
    LOCATIONS_EDIT = "locations.edit"
    # developer API
    API_CLIENTS = "api.clients"
    WEBHOOKS_VIEW = "webhooks.view"
    WEBHOOKS_EDIT = "webhooks.edit"


DESCRIPTIONS: dict[Permission, str] = {
    Permission.ROLES_VIEW: "see the organization's roles",
    Permission.ROLES_EDIT: "create, change and delete custom roles",
    Permission.USERS_VIEW: "see users",
    Permission.USERS_INVITE: "invite users by e-mail",
    Permission.USERS_EDIT: "rename users and change their role",
    Permission.USERS_DELETE: "delete users",
    Permission.USERS_SUSPEND: "suspend and reactivate users",
    Permission.USERS_LOGOUT: "end all sessions of a user",
    Permission.AUDIT_VIEW: "read the actions log",
    Permission.DEVICES_VIEW: "see every device of the organization",
    Permission.DEVICES_VIEW_OWN: "see the devices one owns",
    Permission.DEVICES_EDIT: "create, change and delete devices",
    Permission.DEVICES_EDIT_OWN: "change the devices one owns",
    Permission.DEVICES_MOVE: "move devices between organizations",
    Permission.TOKENS_VIEW: "see device auth tokens",
    Permission.TOKENS_EDIT: "replace device auth tokens",
    Permission.TEMPLATES_VIEW: "see templates",
    Permission.TEMPLATES_EDIT: "create, change and delete templates",
    Permission.AIR_VIEW: "see Blynk.Air shipments",
    Permission.AIR_SHIP: "create shipments",
    Permission.AIR_CONTROL: "stop and pause shipments",
    Permission.ORGS_VIEW_SUB: "see and switch to sub-organizations",
    Permission.ORGS_CREATE: "create sub-organizations",
    Permission.ORGS_EDIT: "change organization settings",
    Permission.ORGS_DELETE: "delete empty sub-organizations",
    Permission.ORGS_MOVE: "move sub-organizations in the tree",
    Permission.AUTOMATIONS_VIEW: "see automations",
    Permission.AUTOMATIONS_CREATE: "create automations",
    Permission.AUTOMATIONS_EDIT: "change automations",
    Permission.AUTOMATIONS_DELETE: "delete automations",
    Permission.AUTOMATIONS_EXECUTE: "run automations and scenes",
    Permission.LOCATIONS_VIEW: "see locations and the devices at each",
    Permission.LOCATIONS_EDIT: "create, change and delete locations, and assign devices to them",
    Permission.API_CLIENTS: "manage OAuth2 clients of the platform API",
    Permission.WEBHOOKS_VIEW: "see webhooks and their delivery log",
    Permission.WEBHOOKS_EDIT: "create, change, test and delete webhooks (their secrets included)",
}

ADMIN_ROLE, STAFF_ROLE, USER_ROLE = 1, 2, 3
BUILTIN_ROLES: dict[int, tuple[str, frozenset[str]]] = {
    ADMIN_ROLE: ("Admin", frozenset({ALL})),
    STAFF_ROLE: (
        "Staff",
        frozenset(
            {
                Permission.DEVICES_VIEW,
                Permission.DEVICES_VIEW_OWN,
                Permission.DEVICES_EDIT,
                Permission.DEVICES_EDIT_OWN,
                Permission.TOKENS_VIEW,
                Permission.TEMPLATES_VIEW,
                Permission.AIR_VIEW,
                Permission.USERS_VIEW,
                Permission.AUTOMATIONS_VIEW,
                Permission.AUTOMATIONS_EXECUTE,
            }
        ),
    ),
    USER_ROLE: (
        "User",
        frozenset({Permission.DEVICES_VIEW_OWN, Permission.DEVICES_EDIT_OWN, Permission.AUTOMATIONS_VIEW}),
    ),
}
"""Blynk's built-in roles; migration 0006 writes the same sets (a test compares them)."""


def expand(stored: Iterable[str]) -> frozenset[Permission]:
    """The permissions a stored list grants (``*`` is all; names no longer known are ignored)."""
    names = set(stored)
    if ALL in names:
        return frozenset(Permission)
    known = {p.value for p in Permission}
    return frozenset(Permission(n) for n in names if n in known)


def parse(names: Iterable[str]) -> frozenset[Permission]:
    """Permissions named by a client; an unknown name is refused with the list of known ones."""
    out = set()
    for name in names:
        try:
            out.add(Permission(name))
        except ValueError:
            raise ValidationError(f"unknown permission {name!r}; see GET /api/permissions") from None
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, as the services see them: a signed-in user or a platform API client; where,
    allowed what, from which address."""

    user_id: int
    org_id: int
    email: str
    role_id: int
    permissions: frozenset[Permission]
    ip: str | None = None
    session_id: int | None = None
    csrf_token: str = field(default="", repr=False)
    client_id: int | None = None
    """Set when the caller is a platform API client (OAuth2) rather than a signed-in user; its
    ``user_id`` is then 0, which no user, owner or creator ever has."""
    maker_id: int | None = None
    """For a platform API client: the user who made it, whose current role bounds its permissions
    (a client it makes belongs to that user too)."""

    def has(self, permission: Permission) -> bool:
        """True when the role grants ``permission``."""
        return permission in self.permissions
