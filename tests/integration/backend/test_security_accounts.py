"""Issue #11, accounts and sign-in: an OAuth client never outlives or outgrows its maker
(item 4); only same-site paths after sign-in, in a real browser; a used reset link or a new
password withdraws every other reset link; concurrent sign-ins cannot race past the throttle;
a role held by someone stronger cannot be edited or deleted (item 7)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser

from tests.e2e.console_browser import browser  # noqa: F401 (fixture)
from tests.support.accounts import ADMIN, ROOT_ADMIN, STAFF, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.provision import provision, thermostat_doc

V1 = "/api/v1/organization"
MAKER_GONE = (
    "This client no longer works: the user who made it is suspended, was deleted or can no longer "
    "reach its organization."
)


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(pg_server, template_db, "security")


@pytest.fixture(scope="module")
def root(acc: AccountsStack) -> Iterator[Api]:
    with acc.login(*ROOT_ADMIN) as api:
        yield api


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


# -- item 4: OAuth clients and their maker ------------------------------------------------------


class Client:
    """A platform API client made by ``maker``: its credentials and the calls the test makes."""

    def __init__(self, base_url: str, made: dict[str, Any]) -> None:
        self.base_url = base_url
        self.id, self.secret = made["client"]["client_id"], made["client_secret"]

    def token(self, grant: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}/oauth2/token",
            params=grant or {"grant_type": "client_credentials"},
            auth=(self.id, self.secret),
        )

    def bearer(self) -> httpx.Client:
        r = self.token()
        assert r.status_code == 200, r.text
        return httpx.Client(
            base_url=self.base_url, timeout=30, headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )


def new_user(api: httpx.Client, role_id: int) -> httpx.Response:
    return api.post(
        f"{V1}/users/create-in-org", json={"email": unique("made"), "password": "a-good-password-1", "roleId": role_id}
    )


def assert_refused_at_the_token_endpoint(client: Client, refresh_token: str) -> None:
    for grant in (
        {"grant_type": "client_credentials"},
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
    ):
        r = client.token(grant)
        assert r.status_code == 401, (grant["grant_type"], r.text)
        assert r.json() == {"error": "invalid_client", "error_description": MAKER_GONE}


@pytest.fixture
def maker(acc: AccountsStack, root: Api) -> Iterator[tuple[Api, Client]]:
    """An Admin of the root organization and a client they made with every permission they have."""
    api = invite_and_join(acc, root, root.me["org_id"], unique("maker"), ADMIN)
    r = api.post("/api/oauth2/clients", json={"name": "Maker's client"})
    assert r.status_code == 201, r.text
    yield api, Client(acc.base_url, r.json())
    api.close()


def test_a_demoted_makers_client_loses_what_the_maker_lost(
    acc: AccountsStack, root: Api, maker: tuple[Api, Client]
) -> None:
    user, client = maker
    device = provision(acc.config.database_url, thermostat_doc()).devices[0].id  # in the root organization
    viewer = root.post(
        "/api/roles", json={"name": f"Viewer {uuid.uuid4().hex[:6]}", "permissions": ["devices.view", "users.view"]}
    ).json()["id"]
    with client.bearer() as api:
        assert new_user(api, ADMIN).status_code == 201
        assert api.put(f"{V1}/device", params={"deviceId": device}, json={"name": "Renamed"}).status_code == 200
        assert root.patch(f"/api/users/{user.me['id']}", json={"role_id": viewer}).status_code == 200
        # the same token, and a new one: what the maker can still do works, nothing more
        with client.bearer() as fresh:
            for bearer in (api, fresh):
                assert bearer.get(f"{V1}/devices").status_code == 200
                r = new_user(bearer, ADMIN)
                assert r.status_code == 403, r.text
                r = bearer.put(f"{V1}/device", params={"deviceId": device}, json={"name": "Again"})
                assert r.status_code == 403 and "devices.edit" in r.json()["error"]["message"]
        assert root.patch(f"/api/users/{user.me['id']}", json={"role_id": STAFF}).status_code == 200
        assert new_user(api, ADMIN).status_code == 403  # Staff has devices.edit but no users.*
        assert api.put(f"{V1}/device", params={"deviceId": device}, json={"name": "Staff"}).status_code == 200
        assert root.patch(f"/api/users/{user.me['id']}", json={"role_id": ADMIN}).status_code == 200
        assert new_user(api, ADMIN).status_code == 201  # evaluated at each request


def test_a_suspended_makers_client_is_refused(acc: AccountsStack, root: Api, maker: tuple[Api, Client]) -> None:
    user, client = maker
    pair = client.token().json()
    with client.bearer() as api:
        assert api.get(f"{V1}/profile").status_code == 200
        # suspended by any path (here straight in the database): refused at once
        with acc.db() as db:
            db.execute("UPDATE app_user SET status = 'suspended' WHERE id = %s", (user.me["id"],))
        r = api.get(f"{V1}/profile")
        assert r.status_code == 401 and r.json() == {"error": {"message": MAKER_GONE}}
        assert_refused_at_the_token_endpoint(client, pair["refresh_token"])
        with acc.db() as db:
            db.execute("UPDATE app_user SET status = 'active' WHERE id = %s", (user.me["id"],))
        assert api.get(f"{V1}/profile").status_code == 200
        # suspended in the console: its tokens are deleted, so they stay dead after reactivation
        assert root.post(f"/api/users/{user.me['id']}/suspend").status_code == 200
        assert api.get(f"{V1}/profile").status_code == 401
        assert_refused_at_the_token_endpoint(client, pair["refresh_token"])
        assert root.post(f"/api/users/{user.me['id']}/activate").status_code == 200
        assert api.get(f"{V1}/profile").status_code == 401
        assert client.token({"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}).status_code == 400
    with client.bearer() as again:  # the secret still works for the reactivated maker
        assert again.get(f"{V1}/profile").status_code == 200


def test_a_deleted_makers_client_is_refused(acc: AccountsStack, root: Api, maker: tuple[Api, Client]) -> None:
    user, client = maker
    pair = client.token().json()
    with client.bearer() as api:
        assert api.get(f"{V1}/profile").status_code == 200
        assert root.delete(f"/api/users/{user.me['id']}").status_code == 204
        r = api.get(f"{V1}/profile")  # its tokens were deleted with the maker
        assert r.status_code == 401 and "invalid or expired" in r.json()["error"]["message"]
        assert_refused_at_the_token_endpoint(client, pair["refresh_token"])
    with acc.db() as db:
        assert db.execute(
            "SELECT count(*) FROM oauth_token t JOIN oauth_client c ON c.id = t.client_id WHERE c.client_id = %s",
            (client.id,),
        ).fetchone() == (0,)


def test_a_maker_moved_out_of_reach_takes_the_client_with_them(
    acc: AccountsStack, root: Api, maker: tuple[Api, Client]
) -> None:
    user, client = maker
    other = root.post("/api/orgs", json={"name": f"Elsewhere {uuid.uuid4().hex[:6]}"}).json()["id"]
    ops = Client(acc.base_url, root.post("/api/oauth2/clients", json={"name": "Root ops"}).json())
    with client.bearer() as api, ops.bearer() as root_api:
        assert api.get(f"{V1}/profile").status_code == 200
        r = root_api.post(f"{V1}/users/transfer", json={"userId": user.me["id"], "targetOrgId": other, "roleId": ADMIN})
        assert r.status_code == 201, r.text
        r = api.get(f"{V1}/profile")  # the client stays in the root organization, its maker cannot reach it
        assert r.status_code == 401 and r.json() == {"error": {"message": MAKER_GONE}}
        assert client.token().status_code == 401


# -- item 7: open redirect after sign-in ----------------------------------------------------------

HOSTILE_NEXT = [
    "/%09/evil.example/",
    "/%0a/evil.example/",
    "/%0d%0a/evil.example/",
    "//evil.example/",
    "/%5Cevil.example/",
    "https://evil.example/",
    "/%5C%09/evil.example/",
    "%09/evil.example/",
    "/%09%2Fevil.example/",
    "/%E2%80%8B/evil.example/",
    "/%C2%A0/evil.example/",
]


@pytest.mark.parametrize("raw", HOSTILE_NEXT)
def test_the_login_page_keeps_only_same_site_paths(acc: AccountsStack, raw: str) -> None:
    r = httpx.get(f"{acc.base_url}/login?next={raw}")
    assert r.status_code == 200 and 'data-then="go:/devices"' in r.text


@pytest.mark.parametrize(
    ("raw", "lands_on"),
    [
        *[(raw, "/devices") for raw in HOSTILE_NEXT[:7]],
        ("/%7Bx%7D/evil.example/", "/%7Bx%7D/evil.example/"),  # the script's {placeholders} never fill a target
        (quote("/devices?q=a b", safe="/?="), "/devices"),  # a space is refused outright
        ("%2Fdevices", "/devices"),
    ],
)
def test_after_sign_in_the_browser_stays_on_this_site(
    acc: AccountsStack, root: Api, browser: Browser, raw: str, lands_on: str
) -> None:  # noqa: F811
    address = unique("redirected")
    invite_and_join(acc, root, root.me["org_id"], address, STAFF).close()
    ours = urlsplit(acc.base_url).netloc
    context = browser.new_context()
    # another host answers a page of its own (this network resolves none), so leaving shows in page.url
    context.route(
        lambda url: urlsplit(url).netloc != ours,
        lambda route: route.fulfill(status=200, content_type="text/html", body="<p>elsewhere</p>"),
    )
    try:
        page = context.new_page()
        page.goto(f"{acc.base_url}/login?next={raw}")
        page.get_by_label("E-mail").fill(address)
        page.get_by_label("Password").fill("a-good-password-1")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: urlsplit(url).path != "/login", timeout=15_000)
        where = urlsplit(page.url)
        assert (where.scheme, where.netloc) == ("http", ours), page.url
        assert where.path == lands_on
    finally:
        context.close()


# -- item 7: password-reset links -------------------------------------------------------------------


def reset_link(acc: AccountsStack, address: str) -> str:
    count = len(acc.outbox.to(address)) + 1
    assert httpx.post(f"{acc.base_url}/api/auth/password-reset", json={"email": address}).status_code == 202
    return acc.outbox.last_token(address, count)


def use_link(acc: AccountsStack, token: str, password: str) -> httpx.Response:
    return httpx.post(f"{acc.base_url}/api/auth/password-reset/confirm", json={"token": token, "password": password})


@pytest.mark.parametrize("used_first", ["older", "newer"])
def test_using_a_reset_link_withdraws_the_others(acc: AccountsStack, root: Api, used_first: str) -> None:
    address = unique("forgetful")
    invite_and_join(acc, root, root.me["org_id"], address, STAFF).close()
    older, newer = reset_link(acc, address), reset_link(acc, address)
    first, second = (older, newer) if used_first == "older" else (newer, older)
    assert use_link(acc, first, "chosen-password-1").status_code == 204
    r = use_link(acc, second, "attacker-password-1")
    assert r.status_code == 400 and r.json()["error"]["message"] == "this link was withdrawn"
    acc.login(address, "chosen-password-1").close()
    with acc.client() as anon:
        r = anon.post("/api/auth/login", json={"email": address, "password": "attacker-password-1"})
        assert r.status_code == 401


def test_changing_the_password_withdraws_every_reset_link(acc: AccountsStack, root: Api) -> None:
    address = unique("changer")
    with invite_and_join(acc, root, root.me["org_id"], address, STAFF) as member:
        links = [reset_link(acc, address), reset_link(acc, address)]
        r = member.post(
            "/api/auth/password", json={"current_password": "a-good-password-1", "new_password": "changed-password-1"}
        )
        assert r.status_code == 204, r.text
    for token in links:
        r = use_link(acc, token, "attacker-password-1")
        assert r.status_code == 400 and r.json()["error"]["message"] == "this link was withdrawn"
    acc.login(address, "changed-password-1").close()


# -- item 7: roles held by someone stronger ------------------------------------------------------------


def test_a_role_with_permissions_the_editor_lacks_cannot_be_edited_or_deleted(acc: AccountsStack, root: Api) -> None:
    tag = uuid.uuid4().hex[:6]

    def role(name: str, permissions: list[str]) -> int:
        r = root.post("/api/roles", json={"name": f"{name} {tag}", "permissions": permissions})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    boss_role = role("Boss", ["roles.view", "roles.edit", "users.view", "devices.view", "devices.edit"])
    editor_role = role("Editor", ["roles.view", "roles.edit", "users.view", "devices.view"])
    unused = role("Unused", ["devices.edit"])
    small = role("Small", ["users.view"])
    boss = invite_and_join(acc, root, root.me["org_id"], unique("boss"), boss_role)
    editor = invite_and_join(acc, root, root.me["org_id"], unique("editor"), editor_role)
    with boss, editor:
        # strip the boss (whom the editor may not act on) through the role they hold
        for change in (
            {"permissions": ["users.view"]},
            {"permissions": ["roles.view", "roles.edit", "users.view", "devices.view"]},
            {"name": "Demoted"},
        ):
            r = editor.patch(f"/api/roles/{boss_role}", json=change)
            assert r.status_code == 403 and "devices.edit" in r.json()["error"]["message"], (change, r.text)
        assert editor.delete(f"/api/roles/{boss_role}").status_code == 403
        assert editor.delete(f"/api/roles/{unused}").status_code == 403  # nobody holds it, still stronger
        assert boss.get("/api/users/me").json()["permissions"] == [
            "devices.edit",
            "devices.view",
            "roles.edit",
            "roles.view",
            "users.view",
        ]
        with acc.db() as db:
            assert db.execute("SELECT count(*) FROM role WHERE id = %s", (unused,)).fetchone() == (1,)
        # within the editor's own permissions roles can still be changed and deleted
        r = editor.patch(f"/api/roles/{small}", json={"permissions": ["users.view", "devices.view"]})
        assert r.status_code == 200 and r.json()["permissions"] == ["devices.view", "users.view"]
        assert editor.delete(f"/api/roles/{small}").status_code == 204
        # and the boss, who holds every permission of both, may edit the editor's role
        assert (
            boss.patch(
                f"/api/roles/{editor_role}", json={"permissions": ["roles.view", "roles.edit", "users.view"]}
            ).status_code
            == 200
        )


# -- item 7: the sign-in throttle under concurrency ---------------------------------------------------


@pytest.fixture(scope="module")
def throttled(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    """Its own app: the address limit locks out 127.0.0.1, which every test uses."""
    yield from start_accounts_stack(
        pg_server,
        template_db,
        "race",
        login_failures_per_account="5",
        login_failures_per_address="12",
        login_failure_window_seconds="600",
    )


async def _attempts_async(base_url: str, bodies: list[dict[str, str]]) -> Counter[int]:
    async with httpx.AsyncClient(
        base_url=base_url, timeout=120, limits=httpx.Limits(max_connections=len(bodies))
    ) as client:
        answers = await asyncio.gather(*(client.post("/api/auth/login", json=b) for b in bodies))
    return Counter(r.status_code for r in answers)


def _attempts(base_url: str, bodies: list[dict[str, str]]) -> Counter[int]:
    """All sign-in attempts at once; the answers' status codes. In a thread of its own: the
    module's Playwright keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _attempts_async(base_url, bodies)).result()


def test_concurrent_sign_ins_cannot_race_past_the_throttle(throttled: AccountsStack) -> None:
    address = unique("target")
    with throttled.login(*ROOT_ADMIN) as root:
        invite_and_join(throttled, root, root.me["org_id"], address, STAFF).close()
    wrong = {"email": address, "password": "wrong-password-1"}
    # 60 at once against one account: five passwords are checked (401), the rest wait (429)
    assert _attempts(throttled.base_url, [wrong] * 60) == Counter({401: 5, 429: 55})
    with throttled.client() as api:
        r = api.post("/api/auth/login", json={"email": address, "password": "a-good-password-1"})
        assert r.status_code == 429 and "this account" in r.json()["error"]["message"]
    # 60 at once against 60 accounts from the one address: its limit of 12 holds (5 used already)
    others = [{"email": unique("nobody"), "password": "wrong-password-1"} for _ in range(60)]
    assert _attempts(throttled.base_url, others) == Counter({401: 7, 429: 53})
    with throttled.client() as api:
        r = api.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]})
        assert r.status_code == 429 and "your address" in r.json()["error"]["message"]
    with throttled.db() as db:
        assert db.execute("SELECT scope, count(*) FROM login_failure GROUP BY scope ORDER BY scope").fetchall() == [
            ("account", 12),
            ("address", 12),
        ]
