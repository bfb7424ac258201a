"""Pages a visitor opens without a session: sign-in, sign-up, the links e-mails carry
(sign-up confirmation, password reset, invitation acceptance). Each page's form posts to the
accounts context's ``/api`` route; no sign-in logic lives here."""

from __future__ import annotations

import unicodedata

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from backend.access.guards import PUBLIC
from backend.accounts.invitations import InvitationLinks
from backend.accounts.runtime import AccountsRuntime
from backend.errors import OpenBlynkError
from console_ui.render import page


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another host), else the
    devices list. The value arrives decoded; browsers drop tabs and line breaks from a URL and
    read ``\\`` as ``/``, so ``/%09/evil.example`` (a tab) or ``/\\evil.example`` would leave the site:
    a path must start with one ``/`` followed by neither ``/`` nor ``\\``, and hold no control
    character, whitespace or backslash anywhere. Braces are percent-encoded, because the page's
    script fills ``{name}`` placeholders of its ``go:`` target (``/{x}/evil`` would become ``//evil``)."""
    if (
        not target
        or not target.startswith("/")
        or target[1:2] in ("/", "\\")
        or "\\" in target
        or any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in target)
    ):
        return "/devices"
    return target.replace("{", "%7B").replace("}", "%7D")


@get("/login", opt=PUBLIC)
async def login_page(
    request: Request,  # type: ignore[type-arg]  # noqa: A002
    accounts_runtime: NamedDependency[AccountsRuntime],
    next: FromQuery[str | None] = None,
) -> Template:
    """Sign in with e-mail and password."""
    return page(request, "login.html", next=safe_next(next), signup=accounts_runtime.settings.signup_enabled)


@get("/signup", opt=PUBLIC)
async def signup_page(request: Request, accounts_runtime: NamedDependency[AccountsRuntime]) -> Template:  # type: ignore[type-arg]
    """Ask for an account (when the server allows sign-up)."""
    return page(request, "signup.html", enabled=accounts_runtime.settings.signup_enabled)


@get("/signup/confirm", opt=PUBLIC)
async def signup_confirm_page(request: Request, token: FromQuery[str] = "") -> Template:  # type: ignore[type-arg]
    """The e-mailed sign-up link: one button finishes the account."""
    return page(request, "signup_confirm.html", token=token)


@get("/password-reset", opt=PUBLIC)
async def password_reset_page(request: Request, token: FromQuery[str] = "") -> Template:  # type: ignore[type-arg]
    """Without a token: ask for a reset link. With the e-mailed token: choose a new password."""
    return page(request, "password_reset.html", token=token)


@get("/invitations/accept", opt=PUBLIC)
async def invitation_page(
    request: Request,  # type: ignore[type-arg]
    invitation_links: NamedDependency[InvitationLinks],
    token: FromQuery[str] = "",
) -> Template:
    """The e-mailed invitation link: shows whom it invites where, then name and password."""
    preview, problem = None, ""
    try:
        preview = await invitation_links.preview(token)
    except OpenBlynkError as exc:
        problem = exc.message
    return page(request, "invitation.html", token=token, preview=preview, problem=problem)


@get("/", opt=PUBLIC)
async def home() -> Redirect:
    """The console opens on the devices list (which asks to sign in first when needed)."""
    return Redirect("/devices")


ROUTES = [login_page, signup_page, signup_confirm_page, password_reset_page, invitation_page, home]
