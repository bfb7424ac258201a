"""HTTP handlers of sign-in, users, roles and invitations under ``/api`` (thin: one service
call each; the guards say who may call them)."""

from __future__ import annotations

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from backend.access.guards import PUBLIC, requires, signed_in
from backend.access.paging import Page, page_args
from backend.access.permissions import DESCRIPTIONS, Permission, Principal
from backend.accounts.auth import AuthService
from backend.accounts.invitations import InvitationLinks, InvitationService
from backend.accounts.roles import RoleService
from backend.accounts.runtime import AccountsRuntime
from backend.accounts.schemas import (
    EmailIn,
    InvitationAcceptIn,
    InvitationIn,
    InvitationOut,
    InvitationPreviewOut,
    LoggedOut,
    LoginIn,
    MeOut,
    PasswordChangeIn,
    PasswordResetIn,
    PermissionOut,
    RoleIn,
    RoleOut,
    RoleUpdateIn,
    SessionOut,
    SignupIn,
    TokenIn,
    UserOut,
    UserUpdateIn,
    wire,
)
from backend.accounts.sessions import CSRF_COOKIE, SESSION_COOKIE
from backend.accounts.users import UserService
from backend.settings import Settings

P = Permission


def _secure(request: Request, settings: Settings) -> bool:  # type: ignore[type-arg]
    if settings.session_cookie_secure != "auto":
        return settings.session_cookie_secure == "true"
    return request.url.scheme == "https" or settings.env == "production"


def _cookies(request: Request, settings: Settings, token: str, csrf: str, max_age: int) -> list[Cookie]:  # type: ignore[type-arg]
    secure = _secure(request, settings)
    return [
        Cookie(
            key=SESSION_COOKIE, value=token, path="/", httponly=True, samesite="lax", secure=secure, max_age=max_age
        ),
        Cookie(key=CSRF_COOKIE, value=csrf, path="/", httponly=False, samesite="lax", secure=secure, max_age=max_age),
    ]


class AuthController(Controller):
    """Sign-in, sign-out, sign-up and passwords."""

    path = "/auth"

    @post("/login", opt=PUBLIC, status_code=HTTP_200_OK)
    async def login(
        self,
        request: Request,  # type: ignore[type-arg]
        data: JSONBody[LoginIn],
        auth_service: NamedDependency[AuthService],
        accounts_runtime: NamedDependency[AccountsRuntime],
    ) -> Response[SessionOut]:
        """Sign in: sets the HttpOnly session cookie; send ``csrf_token`` back as ``X-CSRF-Token``."""
        user, opened = await auth_service.login(data.email, data.password)
        lifetime = int(accounts_runtime.session_lifetime.total_seconds())
        return Response(
            SessionOut(user, opened.csrf_token, opened.expires_at),
            cookies=_cookies(request, accounts_runtime.settings, opened.token, opened.csrf_token, lifetime),
        )

    @post("/logout", guards=[signed_in], status_code=HTTP_200_OK)
    async def logout(
        self,
        request: Request,  # type: ignore[type-arg]
        auth_service: NamedDependency[AuthService],
        principal: NamedDependency[Principal],
        accounts_runtime: NamedDependency[AccountsRuntime],
    ) -> Response[LoggedOut]:
        """End this session."""
        ended = await auth_service.logout(principal)
        return Response(LoggedOut(ended), cookies=_cookies(request, accounts_runtime.settings, "", "", 0))

    @post("/logout-all", guards=[signed_in], status_code=HTTP_200_OK)
    async def logout_all(
        self,
        request: Request,  # type: ignore[type-arg]
        auth_service: NamedDependency[AuthService],
        principal: NamedDependency[Principal],
        accounts_runtime: NamedDependency[AccountsRuntime],
    ) -> Response[LoggedOut]:
        """End every session of the signed-in user, on every browser."""
        ended = await auth_service.logout(principal, everywhere=True)
        return Response(LoggedOut(ended), cookies=_cookies(request, accounts_runtime.settings, "", "", 0))

    @post("/signup", opt=PUBLIC, status_code=HTTP_202_ACCEPTED)
    async def signup(self, data: JSONBody[SignupIn], auth_service: NamedDependency[AuthService]) -> dict[str, str]:
        """Ask for an account (when sign-up is on): a confirmation link is e-mailed."""
        await auth_service.signup(data.email, data.name, data.password)
        return {"message": "check your e-mail for a link to finish signing up"}

    @post("/signup/confirm", opt=PUBLIC)
    async def confirm_signup(self, data: JSONBody[TokenIn], auth_service: NamedDependency[AuthService]) -> UserOut:
        """Use the sign-up link: makes the account, Admin of a new organization."""
        return await auth_service.confirm_signup(data.token)

    @post("/password-reset", opt=PUBLIC, status_code=HTTP_202_ACCEPTED)
    async def request_reset(
        self, data: JSONBody[EmailIn], auth_service: NamedDependency[AuthService]
    ) -> dict[str, str]:
        """E-mail a password-reset link (the answer is the same whether the address is known)."""
        await auth_service.request_password_reset(data.email)
        return {"message": "if this address has an account, a link to reset its password was sent"}

    @post("/password-reset/confirm", opt=PUBLIC, status_code=HTTP_204_NO_CONTENT)
    async def reset(self, data: JSONBody[PasswordResetIn], auth_service: NamedDependency[AuthService]) -> None:
        """Set a new password with a reset link (works once); every session of the user ends."""
        await auth_service.reset_password(data.token, data.password)

    @post("/password", guards=[signed_in], status_code=HTTP_204_NO_CONTENT)
    async def change_password(
        self,
        data: JSONBody[PasswordChangeIn],
        auth_service: NamedDependency[AuthService],
        principal: NamedDependency[Principal],
    ) -> None:
        """Change one's own password; the user's other sessions end."""
        await auth_service.change_password(principal, data.current_password, data.new_password)


class UserController(Controller):
    """Users of the organizations in the caller's scope."""

    path = "/users"

    @get("/me", guards=[signed_in])
    async def me(self, users_service: NamedDependency[UserService], principal: NamedDependency[Principal]) -> MeOut:
        """The signed-in user, their permissions and this session's CSRF token."""
        return MeOut(await users_service.me(), sorted(principal.permissions), principal.csrf_token)

    @get("/", guards=[requires(P.USERS_VIEW)])
    async def list_users(
        self,
        users_service: NamedDependency[UserService],
        org_id: FromQuery[int | None] = None,
        page: FromQuery[int] = 0,
        size: FromQuery[int] = 50,
    ) -> Page[UserOut]:
        """Users of one organization (``org_id``) or of every organization in scope."""
        page, size = page_args(page, size)
        users, total = await users_service.list(org_id, page, size)
        return Page([u for u in users], total, page, size)

    @get("/{user_id:int}", guards=[requires(P.USERS_VIEW)])
    async def get_user(self, user_id: FromPath[int], users_service: NamedDependency[UserService]) -> UserOut:
        """One user."""
        return await users_service.get(user_id)

    @patch("/{user_id:int}", guards=[requires(P.USERS_EDIT)])
    async def update_user(
        self, user_id: FromPath[int], data: JSONBody[UserUpdateIn], users_service: NamedDependency[UserService]
    ) -> UserOut:
        """Rename a user or change their role."""
        return await users_service.update(user_id, data.name, data.role_id)

    @post("/{user_id:int}/suspend", guards=[requires(P.USERS_SUSPEND)], status_code=HTTP_200_OK)
    async def suspend(self, user_id: FromPath[int], users_service: NamedDependency[UserService]) -> UserOut:
        """Suspend a user: their sessions stop working at once and they cannot sign in."""
        return await users_service.set_suspended(user_id, True)

    @post("/{user_id:int}/activate", guards=[requires(P.USERS_SUSPEND)], status_code=HTTP_200_OK)
    async def activate(self, user_id: FromPath[int], users_service: NamedDependency[UserService]) -> UserOut:
        """Let a suspended user sign in again."""
        return await users_service.set_suspended(user_id, False)

    @post("/{user_id:int}/logout", guards=[requires(P.USERS_LOGOUT)], status_code=HTTP_200_OK)
    async def force_logout(self, user_id: FromPath[int], users_service: NamedDependency[UserService]) -> LoggedOut:
        """End every session of a user."""
        return LoggedOut(await users_service.end_sessions(user_id))

    @delete("/{user_id:int}", guards=[requires(P.USERS_DELETE)])
    async def delete_user(self, user_id: FromPath[int], users_service: NamedDependency[UserService]) -> None:
        """Delete a user."""
        await users_service.delete(user_id)


class RoleController(Controller):
    """Built-in and custom roles."""

    path = "/roles"

    @get("/", guards=[requires(P.ROLES_VIEW)])
    async def list_roles(
        self, roles_service: NamedDependency[RoleService], org_id: FromQuery[int | None] = None
    ) -> list[RoleOut]:
        """The built-in roles and an organization's custom roles (the caller's by default)."""
        return [r for r in await roles_service.list(org_id)]

    @get("/{role_id:int}", guards=[requires(P.ROLES_VIEW)])
    async def get_role(self, role_id: FromPath[int], roles_service: NamedDependency[RoleService]) -> RoleOut:
        """One role."""
        return await roles_service.get(role_id)

    @post("/", guards=[requires(P.ROLES_EDIT)])
    async def create_role(self, data: JSONBody[RoleIn], roles_service: NamedDependency[RoleService]) -> RoleOut:
        """A custom role (at most 9 per organization) with permissions the caller has."""
        return await roles_service.create(data.org_id, data.name, data.permissions)

    @patch("/{role_id:int}", guards=[requires(P.ROLES_EDIT)])
    async def update_role(
        self, role_id: FromPath[int], data: JSONBody[RoleUpdateIn], roles_service: NamedDependency[RoleService]
    ) -> RoleOut:
        """Rename a custom role or change its permissions."""
        return await roles_service.update(role_id, data.name, data.permissions)

    @delete("/{role_id:int}", guards=[requires(P.ROLES_EDIT)])
    async def delete_role(self, role_id: FromPath[int], roles_service: NamedDependency[RoleService]) -> None:
        """Delete a custom role that nobody has."""
        await roles_service.delete(role_id)


@get("/permissions", guards=[signed_in])
async def list_permissions() -> list[PermissionOut]:
    """The catalogue of permissions a role can hold."""
    return [PermissionOut(p.value, DESCRIPTIONS[p]) for p in Permission]


class InvitationController(Controller):
    """Invitations by e-mail."""

    path = "/invitations"

    @post("/", guards=[requires(P.USERS_INVITE)])
    async def invite(
        self, data: JSONBody[InvitationIn], invitations_service: NamedDependency[InvitationService]
    ) -> InvitationOut:
        """Invite an address without an account (25 a day per organization)."""
        return await invitations_service.invite(data.org_id, data.email, data.role_id, data.name)

    @get("/", guards=[requires(P.USERS_INVITE)])
    async def list_invitations(
        self, invitations_service: NamedDependency[InvitationService], org_id: FromQuery[int | None] = None
    ) -> list[InvitationOut]:
        """Pending invitations of an organization (the caller's by default)."""
        return [i for i in await invitations_service.list(org_id)]

    @delete("/{invitation_id:int}", guards=[requires(P.USERS_INVITE)])
    async def withdraw(
        self, invitation_id: FromPath[int], invitations_service: NamedDependency[InvitationService]
    ) -> None:
        """Withdraw a pending invitation: its link stops working."""
        await invitations_service.withdraw(invitation_id)

    @get("/preview", opt=PUBLIC)
    async def preview(
        self, token: FromQuery[str], invitation_links: NamedDependency[InvitationLinks]
    ) -> InvitationPreviewOut:
        """What a working invitation link is for (address and organization)."""
        return wire(await invitation_links.preview(token), InvitationPreviewOut)

    @post("/accept", opt=PUBLIC)
    async def accept(
        self, data: JSONBody[InvitationAcceptIn], invitation_links: NamedDependency[InvitationLinks]
    ) -> UserOut:
        """Use an invitation link (once, before it expires): makes the invitee's account."""
        return await invitation_links.accept(data.token, data.name, data.password)
