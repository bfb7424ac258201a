"""Sign-in, sessions, CSRF, sign-out (everywhere), sign-up, password reset and suspension,
against the real app over HTTP, a real PostgreSQL and a real local SMTP server."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tests.support.accounts import ADMIN, ROOT_ADMIN, STAFF, AccountsStack, Api, invite_and_join, start_accounts_stack


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(pg_server, template_db, "auth")


@pytest.fixture(scope="module")
def root(acc: AccountsStack) -> Iterator[Api]:
    with acc.login(*ROOT_ADMIN) as api:
        yield api


def test_login_sets_a_secure_session_cookie_and_me_answers(acc: AccountsStack, root: Api) -> None:
    with acc.client() as api:
        r = api.post("/api/auth/login", json={"email": ROOT_ADMIN[0].upper(), "password": ROOT_ADMIN[1]})
        assert r.status_code == 200, r.text
        cookies = r.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("openblynk_session="))
        assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/" in session
        csrf_cookie = next(c for c in cookies if c.startswith("openblynk_csrf="))
        assert "HttpOnly" not in csrf_cookie
        me = api.get("/api/users/me").json()
        assert me["user"]["email"] == ROOT_ADMIN[0] and "orgs.view_sub" in me["permissions"]
        assert me["csrf_token"] == r.json()["csrf_token"]
        assert "password_hash" not in r.text and r.json()["user"]["last_login_at"] is not None
    with acc.db() as db:  # only a hash of the cookie is stored
        token = session.split(";")[0].split("=", 1)[1]
        assert db.execute(
            "SELECT count(*) FROM user_session WHERE token_hash::text LIKE %s", (f"%{token}%",)
        ).fetchone() == (0,)


def test_wrong_password_and_unknown_account_get_the_same_answer(acc: AccountsStack) -> None:
    with acc.client() as api:
        a = api.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": "wrong-password"})
        b = api.post("/api/auth/login", json={"email": "nobody@example.com", "password": "wrong-password"})
        assert a.status_code == b.status_code == 401 and a.json() == b.json()
        assert api.get("/api/users/me").status_code == 401


def test_state_changing_request_without_csrf_token_is_refused(acc: AccountsStack, root: Api) -> None:
    r = root.post("/api/orgs", json={"name": "No CSRF"}, headers={})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]["message"]
    r = root.post("/api/orgs", json={"name": "Bad CSRF"}, headers={"X-CSRF-Token": "guess"})
    assert r.status_code == 403
    r = root.post(
        "/api/orgs", json={"name": "Other site"}, headers={"X-CSRF-Token": root.csrf, "Origin": "http://evil.example"}
    )
    assert r.status_code == 403 and "cross-site" in r.json()["error"]["message"]
    names = [o["name"] for o in root.get("/api/orgs").json()]
    assert not {"No CSRF", "Bad CSRF", "Other site"} & set(names)
    r = root.post("/api/orgs", json={"name": "With CSRF"})
    assert r.status_code == 201, r.text


def test_expired_session_stops_working(acc: AccountsStack) -> None:
    with acc.login(*ROOT_ADMIN) as api:
        assert api.get("/api/users/me").status_code == 200
        with acc.db() as db:
            db.execute(
                "UPDATE user_session SET expires_at = now() - interval '1 second' WHERE csrf_token = %s", (api.csrf,)
            )
        r = api.get("/api/users/me")
        assert r.status_code == 401 and "sign in again" in r.json()["error"]["message"]


def test_logout_and_logout_everywhere(acc: AccountsStack, root: Api) -> None:
    user = invite_and_join(acc, root, root.me["org_id"], "everywhere@example.com", STAFF)
    second = acc.login("everywhere@example.com", "a-good-password-1")
    third = acc.login("everywhere@example.com", "a-good-password-1")
    r = user.post("/api/auth/logout")
    assert r.status_code == 200 and r.json() == {"sessions_ended": 1}
    assert user.get("/api/users/me").status_code == 401
    assert second.get("/api/users/me").status_code == 200
    r = second.post("/api/auth/logout-all")
    assert r.status_code == 200 and r.json() == {"sessions_ended": 2}
    assert second.get("/api/users/me").status_code == 401 and third.get("/api/users/me").status_code == 401
    for api in (user, second, third):
        api.close()


def test_password_reset_link_works_once(acc: AccountsStack, root: Api) -> None:
    address = "forgetful@example.com"
    member = invite_and_join(acc, root, root.me["org_id"], address, STAFF)
    with acc.client() as anon:
        sent = len(acc.outbox.to(address))
        assert anon.post("/api/auth/password-reset", json={"email": address}).status_code == 202
        # an unknown address is answered alike and mails nobody
        assert anon.post("/api/auth/password-reset", json={"email": "ghost@example.com"}).status_code == 202
        token = acc.outbox.last_token(address, sent + 1)
        assert acc.outbox.to(address)[-1]["Subject"] == "Reset your openblynk password"
        assert "http://console.test/password-reset?token=" in acc.outbox.to(address)[-1].get_content()
        r = anon.post("/api/auth/password-reset/confirm", json={"token": token, "password": "short"})
        assert r.status_code == 400 and "8 to 256" in r.json()["error"]["message"]
        r = anon.post("/api/auth/password-reset/confirm", json={"token": token, "password": "new-password-42"})
        assert r.status_code == 204, r.text
        r = anon.post("/api/auth/password-reset/confirm", json={"token": token, "password": "another-one-42"})
        assert r.status_code == 400 and r.json()["error"]["message"] == "this link has already been used"
    assert member.get("/api/users/me").status_code == 401  # a reset ends every session
    acc.login(address, "new-password-42").close()
    member.close()


def test_expired_reset_link_is_refused(acc: AccountsStack, root: Api) -> None:
    address = "late@example.com"
    invite_and_join(acc, root, root.me["org_id"], address, STAFF).close()
    with acc.client() as anon:
        sent = len(acc.outbox.to(address))
        anon.post("/api/auth/password-reset", json={"email": address})
        token = acc.outbox.last_token(address, sent + 1)
        with acc.db() as db:
            db.execute(
                "UPDATE account_token SET expires_at = now() - interval '1 second' "
                "WHERE purpose = 'password_reset' AND email = %s",
                (address,),
            )
        r = anon.post("/api/auth/password-reset/confirm", json={"token": token, "password": "new-password-42"})
        assert r.status_code == 400 and r.json()["error"]["message"] == "this link has expired"


def test_signup_by_confirmed_email_makes_an_admin_of_a_new_organization(acc: AccountsStack, root: Api) -> None:
    address = "maker@example.com"
    with acc.client() as anon:
        r = anon.post("/api/auth/signup", json={"email": address, "password": "maker-password-1", "name": "Maker"})
        assert r.status_code == 202, r.text
        r = anon.post("/api/auth/login", json={"email": address, "password": "maker-password-1"})
        assert r.status_code == 401  # not before the link is used
        token = acc.outbox.last_token(address)
        r = anon.post("/api/auth/signup/confirm", json={"token": token})
        assert r.status_code == 201, r.text
        assert r.json()["role_id"] == ADMIN
        assert anon.post("/api/auth/signup/confirm", json={"token": token}).status_code == 400
        # signing up again with a taken address makes nothing and says so by e-mail only
        r = anon.post("/api/auth/signup", json={"email": address, "password": "maker-password-1"})
        assert r.status_code == 202 and "already has an account" in acc.outbox.to(address)[-1].get_content()
    with acc.login(address, "maker-password-1") as maker:
        orgs = maker.get("/api/orgs").json()
        assert [o["parent_id"] for o in orgs] == [root.me["org_id"]]
    assert any(o["name"] == address for o in root.get("/api/orgs").json())


def test_suspended_user_is_out_at_once(acc: AccountsStack, root: Api) -> None:
    member = invite_and_join(acc, root, root.me["org_id"], "suspect@example.com", STAFF)
    uid = member.me["id"]
    r = root.post(f"/api/users/{uid}/suspend")
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    assert member.get("/api/users/me").status_code == 401
    with acc.client() as again:
        r = again.post("/api/auth/login", json={"email": "suspect@example.com", "password": "a-good-password-1"})
        assert r.status_code == 401 and "suspended" in r.json()["error"]["message"]
    assert root.post(f"/api/users/{uid}/activate").json()["status"] == "active"
    acc.login("suspect@example.com", "a-good-password-1").close()
    member.close()


def test_legacy_scrypt_password_is_rehashed_with_argon2_at_login(acc: AccountsStack, root: Api) -> None:
    member = invite_and_join(acc, root, root.me["org_id"], "old@example.com", STAFF)
    salt = b"0123456789abcdef"
    digest = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(b"legacy-password")
    legacy = f"scrypt$32768$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    with acc.db() as db:
        db.execute("UPDATE app_user SET password_hash = %s WHERE id = %s", (legacy, member.me["id"]))
    acc.login("old@example.com", "legacy-password").close()
    with acc.db() as db:
        row = db.execute("SELECT password_hash FROM app_user WHERE id = %s", (member.me["id"],)).fetchone()
    assert row is not None and row[0].startswith("$argon2id$")
    acc.login("old@example.com", "legacy-password").close()
    member.close()


def test_change_password_ends_other_sessions(acc: AccountsStack, root: Api) -> None:
    member = invite_and_join(acc, root, root.me["org_id"], "changer@example.com", STAFF)
    other = acc.login("changer@example.com", "a-good-password-1")
    r = member.post("/api/auth/password", json={"current_password": "wrong", "new_password": "new-password-42"})
    assert r.status_code == 400
    r = member.post(
        "/api/auth/password", json={"current_password": "a-good-password-1", "new_password": "new-password-42"}
    )
    assert r.status_code == 204, r.text
    assert member.get("/api/users/me").status_code == 200 and other.get("/api/users/me").status_code == 401
    member.close()
    other.close()


def test_bad_bodies_get_a_clear_json_error(acc: AccountsStack) -> None:
    r = httpx.post(f"{acc.base_url}/api/auth/login", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()
    r = httpx.post(f"{acc.base_url}/api/auth/signup", json={"email": "not-an-address", "password": "long-enough-1"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "enter a valid e-mail address"
