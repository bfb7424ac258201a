"""Wire types of the accounts routes: sign-in, users, roles and invitations (separate from the tables)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import msgspec

from backend.accounts.invitations import InvitationInfo
from backend.accounts.roles import RoleInfo
from backend.accounts.users import UserInfo

# What the services return is what goes on the wire: one class per shape, never a mirror.
UserOut = UserInfo
RoleOut = RoleInfo
InvitationOut = InvitationInfo

T = TypeVar("T")


class LoginIn(msgspec.Struct):
    email: str
    password: str


class SignupIn(msgspec.Struct):
    email: str
    password: str
    name: str = ""


class TokenIn(msgspec.Struct):
    token: str


class EmailIn(msgspec.Struct):
    email: str


class PasswordResetIn(msgspec.Struct):
    token: str
    password: str


class PasswordChangeIn(msgspec.Struct):
    current_password: str
    new_password: str


class SessionOut(msgspec.Struct):
    """Answer of a sign-in: send ``csrf_token`` back as the ``X-CSRF-Token`` header."""

    user: UserOut
    csrf_token: str
    expires_at: datetime


class MeOut(msgspec.Struct):
    user: UserOut
    permissions: list[str]
    csrf_token: str


class LoggedOut(msgspec.Struct):
    sessions_ended: int


class UserUpdateIn(msgspec.Struct):
    name: str | None = None
    role_id: int | None = None


class RoleIn(msgspec.Struct):
    name: str
    permissions: list[str]
    org_id: int | None = None


class RoleUpdateIn(msgspec.Struct):
    name: str | None = None
    permissions: list[str] | None = None


class PermissionOut(msgspec.Struct):
    name: str
    description: str


class InvitationIn(msgspec.Struct):
    email: str
    role_id: int
    org_id: int | None = None
    name: str = ""


class InvitationPreviewOut(msgspec.Struct):
    email: str
    organization: str
    expires_at: datetime


class InvitationAcceptIn(msgspec.Struct):
    token: str
    password: str
    name: str = ""


def wire(obj: object, typ: type[T]) -> T:
    """A service result (dataclass) as a wire type."""
    return msgspec.convert(obj, typ, from_attributes=True)
