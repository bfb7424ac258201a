"""WebhookSender against a real PostgreSQL and a real local HTTP server: signatures, Blynk's
limits (10 a minute, 5 KB body, 16 KB of the response), retries with backoff, the delivery
log, the automatic disabling with the admins' notice, and the address guard."""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backend.accounts.mail import Mailer
from backend.db.engine import Database
from backend.notifications.service import Notifier
from backend.settings import Settings
from backend.transport.tls import ensure_local_ca
from backend.webhooks.alerts import AdminAlerts
from backend.webhooks.delivery import WebhookSender
from backend.webhooks.guard import AddressGuard
from backend.webhooks.retention import trim_deliveries
from backend.webhooks.signing import SecretBox
from tests.support.stack import TEST_SECRET
from tests.support.webhook_receiver import BIG, Receiver, receiving

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)
BOX = SecretBox(TEST_SECRET)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Database]:
    async with Database(fresh_db, pool_size=2) as database:
        yield database


def _rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def _org(url: str) -> tuple[int, int]:
    """An organization with an admin (and a plain user); their ids."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO organization (name) VALUES ('Farm') RETURNING id").fetchone()
        assert row
        org = int(row[0])
        admin = conn.execute(
            "INSERT INTO app_user (org_id, email, password_hash, role_id) VALUES (%s, 'boss@example.test', 'x', 1)"
            " RETURNING id",
            (org,),
        ).fetchone()
        conn.execute(
            "INSERT INTO app_user (org_id, email, password_hash, role_id) VALUES (%s, 'hand@example.test', 'x', 3)",
            (org,),
        )
        assert admin
        return org, int(admin[0])


def _hook(url: str, org: int, target: str, **fields: Any) -> tuple[int, str]:
    """A webhook of ``org`` sending to ``target``; its id and secret."""
    values = {
        "name": "hook",
        "trigger_kind": "manual",
        "method": "POST",
        "body_kind": "json",
        "body_template": '{"device": "{DEVICE_NAME}", "value": "{TRIGGER_VALUE}"}',
        "headers": "{}",
        "secret": "whsec_test",
        **fields,
    }
    secret = str(values["secret"])
    values["secret"] = BOX.seal(secret)  # stored sealed, as the service stores it
    columns = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"INSERT INTO webhook (org_id, url, {columns}) VALUES (%s, %s, {marks}) RETURNING id",
            (org, target, *values.values()),
        ).fetchone()
        assert row
        return int(row[0]), secret


def _sender(db: Database, **kwargs: Any) -> WebhookSender:
    kwargs.setdefault("guard", AddressGuard(allowed_networks=LOOPBACK))
    kwargs.setdefault("box", BOX)
    kwargs.setdefault("failure_limit", 10)
    kwargs.setdefault("backoff_s", 0.01)
    return WebhookSender(db.pool, **kwargs)


async def test_a_delivery_is_signed_escaped_and_logged(fresh_db: str, db: Database, receiver: Receiver) -> None:
    org, _ = _org(fresh_db)
    hook, secret = _hook(fresh_db, org, receiver.url("/ok"), headers='{"X-Farm": "{ORG_NAME}"}')
    context = {"DEVICE_NAME": 'Pump "north"', "TRIGGER_VALUE": "21.5"}
    delivery = await _sender(db).fire(hook, org, context, trigger="test")
    assert (delivery.ok, delivery.status, delivery.error, delivery.attempts) == (True, 200, None, 1)
    assert delivery.response_head == "thanks"
    [request] = receiver.requests
    assert request.method == "POST"
    assert json.loads(request.body) == {"device": 'Pump "north"', "value": "21.5"}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-farm"] == "Farm"
    assert receiver.verified(request, secret)
    assert not receiver.verified(request, "whsec_other")
    rows = _rows(fresh_db, "SELECT trigger, request, ok, refused, status, response_head, attempt FROM webhook_delivery")
    assert rows == [("test", f"POST {receiver.url('/ok')} ({len(request.body)} bytes)", True, False, 200, "thanks", 1)]


async def test_blynks_lower_case_placeholders_are_filled_too(fresh_db: str, db: Database, receiver: Receiver) -> None:
    org, _ = _org(fresh_db)
    body = "device={device_name}&value={dataStream_value}&org={org_name}&same={DEVICE_NAME}"
    hook, _ = _hook(fresh_db, org, receiver.url("/ok"), body_kind="form", body_template=body)
    context = {"DEVICE_NAME": "Pump 1", "TRIGGER_VALUE": "0.5"}
    assert (await _sender(db).fire(hook, org, context, trigger="blynk")).ok
    assert receiver.requests[0].body == b"device=Pump+1&value=0.5&org=Farm&same=Pump+1"


async def test_a_webhook_of_another_organization_is_not_sent(fresh_db: str, db: Database, receiver: Receiver) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/ok"))
    delivery = await _sender(db).fire(hook, org + 1000, {}, trigger="test")
    assert (delivery.ok, delivery.error) == (False, "no such webhook")
    assert receiver.requests == []


async def test_the_eleventh_request_in_a_minute_is_refused_and_logged(
    fresh_db: str, db: Database, receiver: Receiver
) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/ok"))
    clock = Clock()
    sender = _sender(db, clock=clock)
    outcomes = [await sender.fire(hook, org, {}, trigger="burst") for _ in range(11)]
    assert [d.ok for d in outcomes] == [True] * 10 + [False]
    assert outcomes[10].refused
    assert outcomes[10].error == "over the limit of 10 requests a minute: not sent"
    assert len(receiver.requests) == 10
    assert _rows(fresh_db, "SELECT refused, count(*) FROM webhook_delivery GROUP BY refused ORDER BY refused") == [
        (False, 10),
        (True, 1),
    ]
    assert _rows(fresh_db, "SELECT failures, enabled FROM webhook") == [(0, True)]  # a refusal is no failure
    assert (await sender.fire(hook, org, {}, trigger="flood")).refused  # refused again, not logged again yet
    clock.now += 10
    assert (await sender.fire(hook, org, {}, trigger="flood")).refused  # 10 s on: logged once more
    assert _rows(fresh_db, "SELECT trigger FROM webhook_delivery WHERE refused ORDER BY id") == [("burst",), ("flood",)]
    clock.now += 50.5
    assert (await sender.fire(hook, org, {}, trigger="later")).ok
    assert len(receiver.requests) == 11


async def test_the_log_keeps_the_raw_history_days_and_at_most_its_newest_entries(fresh_db: str, db: Database) -> None:
    org, _ = _org(fresh_db)
    one, _ = _hook(fresh_db, org, "https://hooks.example/1", name="one")
    two, _ = _hook(fresh_db, org, "https://hooks.example/2", name="two")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for hook, ages in ((one, [40, 3, 2, 1, 0]), (two, [0])):
            for age in ages:
                conn.execute(
                    "INSERT INTO webhook_delivery (webhook_id, org_id, at, trigger, request, ok)"
                    " VALUES (%s, %s, now() - make_interval(days => %s), %s, 'POST x', true)",
                    (hook, org, age, f"{hook}-{age}"),
                )
    assert await trim_deliveries(db.pool, keep_days=30, keep_per_webhook=2) == 3
    assert _rows(fresh_db, "SELECT trigger FROM webhook_delivery ORDER BY id") == [
        (f"{one}-1",),
        (f"{one}-0",),
        (f"{two}-0",),
    ]


async def test_a_body_over_5_kb_is_refused_when_sent(fresh_db: str, db: Database, receiver: Receiver) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/ok"), body_kind="plain", body_template="{TRIGGER_VALUE}")
    sender = _sender(db)
    assert (await sender.fire(hook, org, {"TRIGGER_VALUE": "x" * 5120}, trigger="fits")).ok
    delivery = await sender.fire(hook, org, {"TRIGGER_VALUE": "x" * 5121}, trigger="too big")
    assert (delivery.ok, delivery.refused) == (False, True)
    assert delivery.error == "the body has 5121 bytes, over the limit of 5120 (5 KB)"
    assert [len(r.body) for r in receiver.requests] == [5120]


async def test_at_most_16_kb_of_the_response_is_read(fresh_db: str, db: Database, receiver: Receiver) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/big"))
    delivery = await _sender(db).fire(hook, org, {}, trigger="big")
    assert delivery.ok
    assert BIG > 16 * 1024
    assert delivery.response_bytes == 16 * 1024
    assert _rows(fresh_db, "SELECT length(response_head) FROM webhook_delivery") == [(16 * 1024,)]


async def test_a_5xx_is_retried_with_growing_waits_then_succeeds(
    fresh_db: str, db: Database, receiver: Receiver
) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/flaky/2"))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    delivery = await _sender(db, sleep=sleep, backoff_s=0.5).fire(hook, org, {}, trigger="flaky")
    assert (delivery.ok, delivery.status, delivery.attempts) == (True, 200, 3)
    assert waits == [0.5, 1.0]
    assert len(receiver.requests) == 3
    assert _rows(fresh_db, "SELECT ok, status, attempt FROM webhook_delivery") == [(True, 200, 3)]


async def test_a_connection_error_is_retried_and_logged(fresh_db: str, db: Database) -> None:
    org, _ = _org(fresh_db)
    with receiving() as gone:
        target = gone.url("/ok")
    hook, _ = _hook(fresh_db, org, target)  # nothing listens there any more
    delivery = await _sender(db).fire(hook, org, {}, trigger="down")
    assert (delivery.ok, delivery.status, delivery.attempts) == (False, None, 3)
    assert delivery.error is not None and "ConnectError" in delivery.error
    assert _rows(fresh_db, "SELECT ok, refused, attempt, failures FROM webhook_delivery, webhook") == [
        (False, False, 3, 1)
    ]


async def test_a_webhook_failing_in_a_row_is_disabled_and_the_admins_told(
    fresh_db: str, db: Database, receiver: Receiver, tmp_path: Path
) -> None:
    org, admin = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/fail"), name="Irrigation log")
    settings = Settings(data_dir=tmp_path)
    mailer = Mailer(settings)
    alert = AdminAlerts(db, mailer, Notifier(db.pool, mailer, 20))
    sender = _sender(db, failure_limit=3, alert=alert)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("LISTEN openblynk_changes")
        for _ in range(3):
            delivery = await sender.fire(hook, org, {}, trigger="broken")
            assert (delivery.ok, delivery.status, delivery.error) == (False, 500, "the receiver answered 500")
        payloads = {n.payload for n in conn.notifies(timeout=5, stop_after=2)}
    assert payloads == {f"webhook:{hook}", f"notice:{admin}"}  # the triggers reload; the admin's bell
    [(enabled, failures, reason)] = _rows(fresh_db, "SELECT enabled, failures, disabled_reason FROM webhook")
    assert (enabled, failures) == (False, 3)
    assert reason == "3 failed deliveries in a row, the last: the receiver answered 500"
    assert _rows(fresh_db, "SELECT user_id, source, source_id, title FROM notification") == [
        (admin, "webhook", hook, "Webhook 'Irrigation log' was disabled")
    ]
    mails = list((tmp_path / "mail").glob("*.eml"))
    assert len(mails) == 1
    assert "To: boss@example.test" in mails[0].read_text()
    assert _rows(fresh_db, "SELECT action, target_id, details->>'reason' FROM audit_log") == [
        ("webhook.auto_disable", str(hook), reason)
    ]
    later = await sender.fire(hook, org, {}, trigger="after")
    assert (later.ok, later.refused, later.error) == (False, True, "the webhook is disabled")
    assert len(receiver.requests) == 9  # three tries of three deliveries, none after


async def test_a_success_resets_the_failures_in_a_row(fresh_db: str, db: Database, receiver: Receiver) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/fail"))
    sender = _sender(db, attempts=1)
    await sender.fire(hook, org, {}, trigger="x")
    await sender.fire(hook, org, {}, trigger="x")
    assert _rows(fresh_db, "SELECT failures FROM webhook") == [(2,)]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("UPDATE webhook SET url = %s", (receiver.url("/ok"),))
    assert (await sender.fire(hook, org, {}, trigger="x")).ok
    assert _rows(fresh_db, "SELECT failures FROM webhook") == [(0,)]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/ok",
        "http://[::1]:{port}/ok",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:{port}/ok",
    ],
)
async def test_by_default_loopback_and_link_local_targets_are_refused(
    fresh_db: str, db: Database, receiver: Receiver, target: str
) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, target.format(port=receiver.port))
    delivery = await _sender(db, guard=AddressGuard()).fire(hook, org, {}, trigger="ssrf")
    assert (delivery.ok, delivery.refused, delivery.status) == (False, True, None)
    assert delivery.error is not None and "OPENBLYNK_WEBHOOK_ALLOWED_HOSTS" in delivery.error
    assert receiver.requests == []
    assert _rows(fresh_db, "SELECT ok, refused, failures FROM webhook_delivery, webhook") == [(False, True, 1)]


async def test_the_connection_goes_to_the_checked_address_with_the_name_in_host(
    fresh_db: str, db: Database, receiver: Receiver
) -> None:
    """``hooks.test`` resolves (once, through the guard) to 127.0.0.1: the system's resolver
    never knew the name, so the request can only have gone to the address the guard checked."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return ["127.0.0.1"]

    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/ok", host="hooks.test"))
    guard = AddressGuard(frozenset({"hooks.test"}), resolver=resolver)
    delivery = await _sender(db, guard=guard).fire(hook, org, {}, trigger="pinned")
    assert delivery.ok
    assert asked == ["hooks.test"]
    assert receiver.requests[0].headers["host"] == f"hooks.test:{receiver.port}"


async def test_a_name_resolving_to_a_public_and_a_private_address_is_refused(
    fresh_db: str, db: Database, receiver: Receiver
) -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["93.184.215.14", "10.0.0.7"]

    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, "http://rebind.test/ok")
    delivery = await _sender(db, guard=AddressGuard(resolver=resolver)).fire(hook, org, {}, trigger="mixed")
    assert delivery.refused
    assert delivery.error is not None and "10.0.0.7, a private-use address" in delivery.error


async def test_redirects_are_followed_on_the_same_host_only(fresh_db: str, db: Database, receiver: Receiver) -> None:
    org, _ = _org(fresh_db)
    here, _ = _hook(fresh_db, org, receiver.url("/here"), name="here")
    away, _ = _hook(fresh_db, org, receiver.url("/away"), name="away")
    sender = _sender(db)
    assert (await sender.fire(here, org, {}, trigger="r")).ok
    refused = await sender.fire(away, org, {}, trigger="r")
    assert (refused.ok, refused.status) == (False, 302)
    assert refused.error == "a redirect to another host was refused (example.com)"
    assert [r.path for r in receiver.requests] == ["/here", "/ok", "/away"]


async def test_queued_deliveries_are_made_by_the_workers_which_stop_cleanly(
    fresh_db: str, db: Database, receiver: Receiver
) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/ok"))
    sender = _sender(db, workers=2)
    sender.start()
    try:
        assert all(sender.enqueue(hook, org, {"TRIGGER_VALUE": str(n)}, "queued") for n in range(5))
        await sender.drain()
    finally:
        await sender.stop()
    assert sorted(json.loads(r.body)["value"] for r in receiver.requests) == ["0", "1", "2", "3", "4"]


async def test_a_secret_sealed_with_another_key_is_refused_not_sent(
    fresh_db: str, db: Database, receiver: Receiver
) -> None:
    org, _ = _org(fresh_db)
    hook, _ = _hook(fresh_db, org, receiver.url("/ok"))
    delivery = await _sender(db, box=SecretBox("another-secret-key")).fire(hook, org, {}, trigger="rekeyed")
    assert (delivery.ok, delivery.refused) == (False, True)
    assert delivery.error == "the webhook's secret cannot be read: was OPENBLYNK_SECRET_KEY changed?"
    assert receiver.requests == []


async def test_https_goes_to_the_checked_address_and_checks_the_certificate_of_the_name(
    fresh_db: str, db: Database, tmp_path: Path
) -> None:
    """The request is sent to 127.0.0.1 (pinned) while TLS names ``hooks.test`` (SNI) and checks
    the certificate against that name: the receiver's certificate is for ``hooks.test`` only, so
    the same address under another name fails the check and sends nothing."""
    files = ensure_local_ca(tmp_path / "tls", ["hooks.test"])
    assert files.cafile is not None
    trust = ssl.create_default_context(cafile=str(files.cafile))

    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"]

    guard = AddressGuard(frozenset({"hooks.test", "other.test"}), resolver=resolver)
    org, _ = _org(fresh_db)
    with receiving(tls=(files.certfile, files.keyfile)) as receiver:
        named, secret = _hook(fresh_db, org, f"https://hooks.test:{receiver.port}/ok", name="named")
        other, _ = _hook(fresh_db, org, f"https://other.test:{receiver.port}/ok", name="other")
        sender = _sender(db, guard=guard, trust=trust, attempts=1)
        delivery = await sender.fire(named, org, {}, trigger="tls")
        assert (delivery.ok, delivery.status) == (True, 200)
        [request] = receiver.requests
        assert request.headers["host"] == f"hooks.test:{receiver.port}"
        assert receiver.verified(request, secret)
        refused = await sender.fire(other, org, {}, trigger="tls")
        assert (refused.ok, refused.status) == (False, None)
        assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error
        assert len(receiver.requests) == 1
