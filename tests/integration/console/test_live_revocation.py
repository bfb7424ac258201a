"""The console's ``/live`` WebSocket follows access changes (issue #11 item 2).

An open socket used to keep streaming until its 30-second idle check, and never checked its
devices again: after sign-out, suspension, a new role or a move, it kept showing devices the
user could no longer see. Now every such change sends a change notice (PostgreSQL NOTIFY, heard
by every app process) and the socket checks its session and devices again at once: it is
closed (code 4008) when the session ended or nothing is left to show, and narrowed otherwise,
which it announces with ``{"type": "devices", ...}``.

Each test opens a real socket as a real user of organization X watching devices ``a`` and
``b``, sees values of both arrive, makes the change through the real HTTP API and then waits
for the close or the narrowing. The issue's bound is one second; the waits below allow
``WAIT`` seconds so that a loaded CI machine does not fail them, and a notice-driven check
takes milliseconds (the periodic backstop is 30 s, far beyond ``WAIT``, so passing here proves
the notice path). After a narrowing, a value written to the removed device must not arrive
while one written after it to the remaining device does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.sync.connection import Connection as ClientConnection

from tests.support.accounts import (
    ADMIN,
    ROOT_ADMIN,
    STAFF,
    USER,
    AccountsStack,
    Api,
    invite_and_join,
    start_accounts_stack,
)

WAIT = 3.0
"""Seconds a socket gets to close or narrow: the issue asks for 1 s; 2 s more for CI noise."""
PASSWORD = "a-good-password-1"
V1 = "/api/v1/organization"
Message = dict[str, Any]


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(pg_server, template_db, "live")


@pytest.fixture(scope="module")
def root(acc: AccountsStack) -> Iterator[Api]:
    with acc.login(*ROOT_ADMIN) as api:
        yield api


@pytest.fixture(scope="module")
def template(root: Api) -> int:
    r = root.post("/api/console/templates", json={"name": f"Live {uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    tid = int(r.json()["id"])
    r = root.post(
        f"/api/console/templates/{tid}/datastreams",
        json={"pin": "V0", "name": "Level", "type": "integer", "min": 0, "max": 1000000},
    )
    assert r.status_code == 200, r.text
    return tid


@dataclass
class World:
    """Organizations X and Y under the root; devices a and b in X; user u of X signed in."""

    acc: AccountsStack
    root: Api
    x: int
    y: int
    a: int
    b: int
    u: Api

    @property
    def user_id(self) -> int:
        return int(self.u.me["id"])


def make_org(root: Api, parent: int | None = None) -> int:
    r = root.post("/api/orgs", json={"name": f"Org {uuid.uuid4().hex[:8]}", "parent_id": parent})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def make_device(root: Api, template: int, org: int) -> int:
    r = root.post("/api/console/devices", json={"name": f"Dev {uuid.uuid4().hex[:6]}", "template_id": template})
    assert r.status_code == 201, r.text
    device = int(r.json()["id"])
    move(root, device, org)
    return device


def move(root: Api, device: int, org: int) -> None:
    r = root.post(f"/api/devices/{device}/move", json={"org_id": org})
    assert r.status_code == 200, r.text


def make_world(acc: AccountsStack, root: Api, template: int, role: int = STAFF, x: int | None = None) -> World:
    x = make_org(root) if x is None else x
    a, b = make_device(root, template, x), make_device(root, template, x)
    u = invite_and_join(acc, root, x, f"live-{uuid.uuid4().hex[:8]}@example.com", role, PASSWORD)
    return World(acc, root, x, make_org(root), a, b, u)


@pytest.fixture
def world(acc: AccountsStack, root: Api, template: int) -> Iterator[World]:
    w = make_world(acc, root, template)
    yield w
    w.u.close()


def platform(acc: AccountsStack, root: Api) -> httpx.Client:
    """A platform API client of the root organization (every permission)."""
    r = root.post("/api/oauth2/clients", json={"name": f"Live {uuid.uuid4().hex[:6]}", "org_id": None})
    assert r.status_code == 201, r.text
    made = r.json()
    r = httpx.post(
        f"{acc.base_url}/oauth2/token",
        params={"grant_type": "client_credentials"},
        auth=(made["client"]["client_id"], made["client_secret"]),
    )
    assert r.status_code == 200, r.text
    return httpx.Client(
        base_url=acc.base_url, timeout=30, headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )


def own(acc: AccountsStack, device: int, user: int) -> None:
    """Make ``user`` the owner of ``device`` (set-up only: straight in the database)."""
    with acc.db() as db:
        db.execute("UPDATE device SET owner_id = %s WHERE id = %s", (user, device))


def write(root: Api, device: int, value: int) -> None:
    """Set V0 of a device through the console API: the app hands it to the live feed before answering."""
    r = root.post(f"/api/console/devices/{device}/values/0", json={"value": str(value)})
    assert r.status_code == 200, r.text


def receive_until(ws: ClientConnection, wanted: Callable[[Message], bool], timeout: float = 10.0) -> list[Message]:
    """Messages up to and including the first ``wanted`` one (TimeoutError if none comes in time)."""
    deadline = time.monotonic() + timeout
    seen: list[Message] = []
    while not seen or not wanted(seen[-1]):
        seen.append(json.loads(ws.recv(max(0.01, deadline - time.monotonic()))))
    return seen


def value_of(device: int, value: int) -> Callable[[Message], bool]:
    return lambda m: m.get("type") == "value" and m.get("device") == device and m.get("value") == str(value)


@dataclass
class Watching:
    """An open socket of ``w.u`` watching a and b, values of both seen arriving."""

    ws: ClientConnection
    counter: int = 100

    def both_flow(self, w: World) -> None:
        self.counter += 1
        write(w.root, w.a, self.counter)
        write(w.root, w.b, self.counter)
        seen = receive_until(self.ws, value_of(w.b, self.counter))
        assert any(value_of(w.a, self.counter)(m) for m in seen), seen


def open_socket(w: World, session: Api | None = None) -> ClientConnection:
    cookie = "; ".join(f"{k}={v}" for k, v in (session or w.u).cookies.items())
    return ws_connect(
        f"ws://127.0.0.1:{w.acc.config.http_port}/live?devices={w.a},{w.b}",
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    )


@pytest.fixture
def watching(world: World) -> Iterator[Watching]:
    with open_socket(world) as ws:
        assert json.loads(ws.recv(10)) == {"type": "hello", "devices": sorted([world.a, world.b]), "online": []}
        watch = Watching(ws)
        watch.both_flow(world)
        yield watch


def assert_closed(ws: ClientConnection) -> None:
    """The socket is closed by the server (4008) within ``WAIT``; values sent before it may come."""
    with pytest.raises(ConnectionClosed) as closed:
        receive_until(ws, lambda m: False, WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008, closed.value


def assert_narrowed(w: World, watch: Watching, b_exists: bool = True) -> None:
    """Within ``WAIT`` the socket says it keeps only a; from then on b's values do not come while
    a's do (b's value is written first, so it would arrive first). A deleted b (``b_exists``
    False) can be written no more; then a's value must come with nothing of b before it."""
    receive_until(watch.ws, lambda m: m == {"type": "devices", "devices": [w.a]}, WAIT)
    watch.counter += 1
    for device in (w.b, w.a) if b_exists else (w.a,):
        write(w.root, device, watch.counter)
    seen = receive_until(watch.ws, value_of(w.a, watch.counter))
    assert [m for m in seen if m.get("device") == w.b] == [], seen


# -- the session ends: the socket closes ---------------------------------------------------------


def test_sign_out_closes_the_socket(world: World, watching: Watching) -> None:
    assert world.u.post("/api/auth/logout").status_code == 200
    assert_closed(watching.ws)


def test_sign_out_everywhere_closes_the_socket(world: World, watching: Watching) -> None:
    assert world.u.post("/api/auth/logout-all").status_code == 200
    assert_closed(watching.ws)


def test_a_password_change_elsewhere_closes_the_socket(world: World, watching: Watching) -> None:
    with world.acc.login(world.u.me["email"], PASSWORD) as elsewhere:
        r = elsewhere.post(
            "/api/auth/password", json={"current_password": PASSWORD, "new_password": "another-good-password-2"}
        )
        assert r.status_code == 204, r.text
    assert_closed(watching.ws)


def test_a_password_reset_closes_the_socket(world: World, watching: Watching) -> None:
    address = world.u.me["email"]
    count = len(world.acc.outbox.to(address)) + 1
    with world.acc.client() as anon:
        assert anon.post("/api/auth/password-reset", json={"email": address}).status_code == 202
        r = anon.post(
            "/api/auth/password-reset/confirm",
            json={"token": world.acc.outbox.last_token(address, count), "password": "another-good-password-2"},
        )
        assert r.status_code == 204, r.text
    assert_closed(watching.ws)


def test_an_administrator_ending_the_users_sessions_closes_the_socket(world: World, watching: Watching) -> None:
    r = world.root.post(f"/api/users/{world.user_id}/logout")
    assert r.status_code == 200, r.text
    assert_closed(watching.ws)


def test_suspension_closes_the_socket(world: World, watching: Watching) -> None:
    r = world.root.post(f"/api/users/{world.user_id}/suspend")
    assert r.status_code == 200, r.text
    assert_closed(watching.ws)


def test_deleting_the_user_closes_the_socket(world: World, watching: Watching) -> None:
    r = world.root.delete(f"/api/users/{world.user_id}")
    assert r.status_code == 204, r.text
    assert_closed(watching.ws)


def test_moving_the_user_to_another_organization_closes_the_socket(world: World, watching: Watching) -> None:
    with platform(world.acc, world.root) as api:
        r = api.post(f"{V1}/users/transfer", json={"userId": world.user_id, "targetOrgId": world.y, "roleId": STAFF})
        assert r.status_code == 201, r.text
    assert_closed(watching.ws)  # in Y the user sees neither a nor b


# -- access shrinks: the socket keeps only what is still visible -----------------------------------


def test_a_role_without_devices_view_narrows_the_socket_to_owned_devices(world: World, watching: Watching) -> None:
    own(world.acc, world.a, world.user_id)
    r = world.root.patch(f"/api/users/{world.user_id}", json={"role_id": USER})  # devices.view.own only
    assert r.status_code == 200, r.text
    assert_narrowed(world, watching)


def test_editing_a_custom_role_narrows_its_users_sockets(acc: AccountsStack, root: Api, template: int) -> None:
    x = make_org(root)
    r = root.post(
        "/api/roles", json={"name": "Watchers", "org_id": x, "permissions": ["devices.view", "devices.view.own"]}
    )
    assert r.status_code == 201, r.text
    role = int(r.json()["id"])
    w = make_world(acc, root, template, role=role, x=x)
    own(acc, w.a, w.user_id)
    with w.u, open_socket(w) as ws:
        assert json.loads(ws.recv(10))["devices"] == sorted([w.a, w.b])
        watch = Watching(ws)
        watch.both_flow(w)
        r = root.patch(f"/api/roles/{role}", json={"permissions": ["devices.view.own"]})
        assert r.status_code == 200, r.text
        assert_narrowed(w, watch)


def test_a_device_moved_out_of_scope_leaves_the_socket(world: World, watching: Watching) -> None:
    move(world.root, world.b, world.y)
    assert_narrowed(world, watching)


def test_a_deleted_device_leaves_the_socket(world: World, watching: Watching) -> None:
    with platform(world.acc, world.root) as api:
        r = api.delete(f"{V1}/device", params={"deviceId": world.b})
        assert r.status_code == 204, r.text
    assert world.root.get(f"/api/devices/{world.b}").status_code == 404
    assert_narrowed(world, watching, b_exists=False)


def test_a_device_given_to_another_owner_leaves_an_owners_socket(acc: AccountsStack, root: Api, template: int) -> None:
    w = make_world(acc, root, template, role=USER)
    own(acc, w.a, w.user_id)
    own(acc, w.b, w.user_id)
    with w.u, open_socket(w) as ws:
        assert json.loads(ws.recv(10))["devices"] == sorted([w.a, w.b])
        watch = Watching(ws)
        watch.both_flow(w)
        with platform(acc, root) as api:
            r = api.delete(f"{V1}/device/owner", params={"deviceId": w.b})
            assert r.status_code == 204, r.text
        assert_narrowed(w, watch)


def test_an_organization_moved_away_leaves_the_socket_of_its_former_parent(
    acc: AccountsStack, root: Api, template: int
) -> None:
    x = make_org(root)
    child = make_org(root, parent=x)
    w = make_world(acc, root, template, role=ADMIN, x=x)  # an Admin of X sees X's sub-organizations
    move(root, w.b, child)
    with w.u, open_socket(w) as ws:
        assert json.loads(ws.recv(10))["devices"] == sorted([w.a, w.b])
        watch = Watching(ws)
        watch.both_flow(w)
        r = root.post(f"/api/orgs/{child}/move", json={"parent_id": w.y})
        assert r.status_code == 200, r.text
        assert_narrowed(w, watch)


def test_other_users_sockets_are_left_alone(
    world: World, watching: Watching, acc: AccountsStack, root: Api, template: int
) -> None:
    """Another user's sign-out in the same organization neither closes nor narrows this socket."""
    other = invite_and_join(acc, root, world.x, f"other-{uuid.uuid4().hex[:8]}@example.com", STAFF, PASSWORD)
    with other:
        assert other.post("/api/auth/logout").status_code == 200
    watching.both_flow(world)
