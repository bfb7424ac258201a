"""Accounts rules that need no server: the permission catalogue, the built-in roles as
migration 0006 writes them, every /api route guarded, input checks, the e-mail outbox."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from backend.access.guards import guarded
from backend.access.permissions import ALL, BUILTIN_ROLES, DESCRIPTIONS, Permission, expand, parse
from backend.accounts.mail import Mailer
from backend.accounts.values import check_email, check_password
from backend.errors import ValidationError
from backend.settings import Settings


def test_every_permission_is_described_and_named_by_group() -> None:
    assert set(DESCRIPTIONS) == set(Permission)
    groups = {p.value.split(".")[0] for p in Permission}
    assert groups == {
        "roles",
        "users",
        "audit",
        "devices",
        "tokens",
        "templates",
        "air",
        "orgs",
        "automations",
        "locations",
        "api",
        "webhooks",
    }


def test_builtin_roles_in_the_migration_match_the_code() -> None:
    sql = (resources.files("backend.db.migrations") / "0006_accounts.sql").read_text()
    for role_id, (_name, permissions) in BUILTIN_ROLES.items():
        match = re.search(rf"UPDATE role SET permissions = '\{{([^}}]*)\}}' WHERE id = {role_id};", sql)
        assert match, role_id
        assert set(match[1].split(",")) == {str(p) for p in permissions}


def test_admin_has_everything_and_unknown_names_are_refused() -> None:
    assert expand([ALL]) == frozenset(Permission)
    assert expand(["users.view", "retired.permission"]) == {Permission.USERS_VIEW}
    assert parse(["users.view"]) == {Permission.USERS_VIEW}
    with pytest.raises(ValidationError, match="unknown permission 'users.fly'"):
        parse(["users.fly"])
    with pytest.raises(ValidationError):
        parse([ALL])  # '*' is Admin's alone, never a custom role's


def test_every_api_route_is_public_or_guarded_by_a_permission() -> None:
    from litestar import Litestar

    from backend.server.routers import api_router, app_dependencies

    app = Litestar([api_router()], dependencies=app_dependencies())  # the app mounts exactly this router
    api = [
        (route.path, handler)
        for route in app.routes
        if route.path.startswith("/api")
        for handler in getattr(route, "route_handlers", [])
        if set(handler.http_methods) != {"OPTIONS"}
    ]  # Litestar's own CORS preflight answer
    assert len(api) > 25
    unguarded = [(path, handler.handler_name) for path, handler in api if not guarded(handler)]
    assert unguarded == []
    assert "/api/users/me" in (app.openapi_schema.paths or {})


@pytest.mark.parametrize("bad", ["", "no-at-sign", "two@@signs", "a b@c.d", "x@" + "y" * 260])
def test_bad_email_addresses_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="valid e-mail"):
        check_email(bad)


def test_password_length_is_checked() -> None:
    assert check_password("12345678") == "12345678"
    for bad in ("1234567", "x" * 257):
        with pytest.raises(ValidationError, match="8 to 256"):
            check_password(bad)


async def test_without_smtp_mail_is_written_to_the_outbox_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="backend.accounts.mail")
    await Mailer(Settings(data_dir=tmp_path)).send("a@example.com", "Hello", "open http://x/?token=abc\n")
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    text = files[0].read_text()
    assert "To: a@example.com" in text and "Subject: Hello" in text and "token=abc" in text
    assert "token=abc" in caplog.text and str(files[0]) in caplog.text
