"""Sign-in throttling per account and per address: 429 with Retry-After, counted in
PostgreSQL. Its own app: the address limit locks out 127.0.0.1, which every test uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.accounts import ROOT_ADMIN, STAFF, AccountsStack, invite_and_join, start_accounts_stack


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(
        pg_server,
        template_db,
        "throttle",
        login_failures_per_account="3",
        login_failures_per_address="7",
        login_failure_window_seconds="600",
    )


def test_account_then_address_throttling(acc: AccountsStack) -> None:
    with acc.login(*ROOT_ADMIN) as root:
        invite_and_join(acc, root, root.me["org_id"], "target@example.com", STAFF).close()
    with acc.client() as api:
        good = {"email": "target@example.com", "password": "a-good-password-1"}
        for _ in range(3):
            assert api.post("/api/auth/login", json={**good, "password": "guess"}).status_code == 401
        r = api.post("/api/auth/login", json=good)  # even the right password waits now
        assert r.status_code == 429 and "this account" in r.json()["error"]["message"]
        assert 0 < int(r.headers["Retry-After"]) <= 600
        # another account from the same address still signs in (3 failures < 7), and a good
        # sign-in does not clear the target's count
        assert api.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}).status_code == 200
        assert api.post("/api/auth/login", json=good).status_code == 429
        for i in range(4):  # unknown accounts count against the address too
            assert api.post("/api/auth/login", json={"email": f"x{i}@example.com", "password": "p"}).status_code == 401
        r = api.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]})
        assert r.status_code == 429 and "your address" in r.json()["error"]["message"]
        assert int(r.headers["Retry-After"]) > 0
    with acc.db() as db:  # when the window has passed, sign-in works again
        db.execute("UPDATE login_failure SET at = at - interval '601 seconds'")
    acc.login(*ROOT_ADMIN).close()
    acc.login("target@example.com", "a-good-password-1").close()
