"""Rate limits hold across app replicas: two real app processes (uvicorn) on one database
together stay within a webhook's 10 requests a minute and within a device's HTTP device API
rate, where each used to count only its own requests (two processes allowed twice the limit)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from backend.device_api.ratelimit import LEASE_SECONDS
from backend.webhooks.signing import SecretBox
from tests.support.accounts import Api
from tests.support.automation_stack import EngineStack, engine_stack
from tests.support.stack import TEST_SECRET
from tests.support.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.slow
ADMIN = ("admin@test.local", "admin-password-123")  # the root administrator tests/support/provision.py makes
RATE = 4
"""OPENBLYNK_DEVICE_RATE_LIMIT of both apps: requests a second per device."""


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[EngineStack]:
    settings = {"replica": "a", "device_rate_limit": str(RATE), "webhook_allowed_hosts": "127.0.0.1"}
    with engine_stack(pg_server, template_db, devices=1, **settings) as stack:
        stack.start_app(name="app-b", replica="b")
        yield stack


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


def signed_in(world: EngineStack) -> list[Api]:
    """The root administrator, signed in on each app."""
    apis = [Api(app.config.base_url) for app in world.apps]
    for api in apis:
        api.login(*ADMIN)
    return apis


def test_two_replicas_send_a_webhook_at_most_10_times_a_minute(world: EngineStack, receiver: Receiver) -> None:
    with world.db() as conn:
        row = conn.execute(
            "INSERT INTO webhook (org_id, name, trigger_kind, method, url, body_template, secret)"
            " SELECT org_id, 'limited', 'manual', 'POST', %s, '{}', %s FROM app_user WHERE email = %s RETURNING id",
            (receiver.url("/hook"), SecretBox(TEST_SECRET).seal("whsec_limited"), ADMIN[0]),
        ).fetchone()
    assert row is not None
    apis = signed_in(world)
    answers = []
    for n in range(24):  # "send test", alternately on each app
        r = apis[n % 2].post(f"/api/console/webhooks/{row[0]}/test")
        assert r.status_code == 200, r.text
        answers.append(r.json())
    for api in apis:
        api.close()
    assert [a["ok"] for a in answers] == [True] * 10 + [False] * 14
    assert {a["error"] for a in answers[10:]} == {"over the limit of 10 requests a minute: not sent"}
    assert len(receiver.requests) == 10


def test_two_replicas_keep_a_devices_http_request_rate(world: EngineStack) -> None:
    token = world.devices[0].token
    clients = [httpx.Client(base_url=app.config.base_url, timeout=30) for app in world.apps]
    statuses: list[list[int]] = [[], []]
    started = time.monotonic()
    for n in range(40):  # as fast as the apps answer, alternately
        r = clients[n % 2].get(f"/external/api/get?token={token}&v0")
        statuses[n % 2].append(r.status_code)
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()
    admitted = sum(s.count(200) for s in statuses)
    assert sum(s.count(429) for s in statuses) == 40 - admitted
    # one process alone admits at most RATE * (t + 1) in t seconds (a second's burst, then the
    # rate); the replicas together at most RATE * (t + 1 + LEASE_SECONDS), however fast they ran.
    # Each counting alone, they admitted a burst each: 2 * RATE * (t + 1).
    assert admitted <= RATE * (elapsed + 1 + LEASE_SECONDS), (admitted, elapsed, statuses)
    assert 200 in statuses[0] and 200 in statuses[1]  # both replicas serve the device
    with psycopg.connect(world.config.database_url) as conn:
        (granted,) = conn.execute("SELECT count(*) FROM device_rate_bucket").fetchone() or (0,)
    assert granted == 1  # one shared bucket, the device's
