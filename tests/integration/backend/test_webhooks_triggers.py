"""WebhookTriggers against a real PostgreSQL and a local receiver: which signals fire which
webhooks, the watched datastreams kept in step with the enabled webhooks, and tenants kept
apart (a template shared by two sibling organizations never carries one's values to the
other's webhook)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from backend.db.changes import Change
from backend.db.engine import Database
from backend.devices.signals import ALL_PINS, DeviceSignals, StoredValue, StoredValues
from backend.webhooks.delivery import WebhookSender
from backend.webhooks.guard import AddressGuard
from backend.webhooks.signing import SecretBox
from backend.webhooks.triggers import WebhookTriggers
from tests.support.stack import TEST_SECRET
from tests.support.webhook_receiver import Receiver, receiving

BOX = SecretBox(TEST_SECRET)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


def _one(conn: psycopg.Connection[Any], sql: str, *args: Any) -> int:
    row = conn.execute(sql + " RETURNING id", args).fetchone()
    assert row
    return int(row[0])


def _world(url: str, receiver: Receiver) -> dict[str, int]:
    """P with children A and B; P's template (V0, V1) used by a device in A and one in B; webhooks."""
    ids: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        ids["P"] = _one(conn, "INSERT INTO organization (name) VALUES ('P')")
        for child in ("A", "B"):
            ids[child] = _one(conn, "INSERT INTO organization (name, parent_id) VALUES (%s, %s)", child, ids["P"])
        ids["T"] = _one(
            conn, "INSERT INTO template (public_id, org_id, name) VALUES ('TMPLshared01', %s, 'Soil')", ids["P"]
        )
        conn.execute(
            "INSERT INTO datastream (template_id, pin, name, type) VALUES (%s, 0, 'Moisture', 'double'),"
            " (%s, 1, 'Pump', 'integer')",
            (ids["T"], ids["T"]),
        )
        for child in ("A", "B"):
            ids[f"d{child}"] = _one(
                conn,
                "INSERT INTO device (org_id, template_id, name, token_hmac, token_encrypted) VALUES (%s, %s, %s, %s, 'x')",
                ids[child],
                ids["T"],
                f"Sensor {child}",
                child.encode(),
            )
        ids["userA"] = _one(
            conn,
            "INSERT INTO app_user (org_id, email, name, password_hash, role_id) VALUES (%s, 'new@a.test', 'Newbie', 'x', 3)",
            ids["A"],
        )

        def hook(org: str, path: str, kind: str, body: str, **target: Any) -> int:
            return _one(
                conn,
                "INSERT INTO webhook (org_id, name, trigger_kind, template_id, device_id, pin, method, url, body_kind,"
                " body_template, secret) VALUES (%s, %s, %s, %s, %s, %s, 'POST', %s, 'json', %s, %s)",
                ids[org],
                path,
                kind,
                target.get("template_id"),
                target.get("device_id"),
                target.get("pin"),
                receiver.url(path),
                body,
                BOX.seal("s"),
            )

        body = '{"device": "{DEVICE_NAME}", "value": "{TRIGGER_VALUE}", "user": "{USER_EMAIL}"}'
        ids["hookA"] = hook("A", "/a-moisture", "template_datastream", body, template_id=ids["T"], pin=0)
        ids["hookB"] = hook("B", "/b-any", "device_datastream", body, device_id=ids["dB"])
        hook("A", "/a-user", "user_added", body)
        hook("P", "/p-first", "first_connection", body)
        hook("A", "/a-first", "first_connection", body)
    return ids


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Database]:
    async with Database(fresh_db, pool_size=3) as database:
        yield database


def _value(device: int, template: int, pin: int, text: str) -> StoredValue:
    return StoredValue(
        device, template, pin, "Moisture" if pin == 0 else "Pump", text, float(text), datetime.now(UTC), "device"
    )


def _bodies(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.requests if r.path == path]


@asynccontextmanager
async def _triggers(db: Database) -> AsyncIterator[tuple[DeviceSignals, WebhookSender, WebhookTriggers]]:
    """A process's webhook triggers on ``signals``, delivering to the loopback receiver; stopped
    (and the signals unwatched) afterwards."""
    signals = DeviceSignals()
    sender = WebhookSender(
        db.pool, AddressGuard(allowed_networks=[ipaddress.ip_network("127.0.0.1/32")]), BOX, failure_limit=5
    )
    triggers = WebhookTriggers(db.pool, signals, sender)
    await triggers.load()
    sender.start()
    try:
        yield signals, sender, triggers
    finally:
        await triggers.stop()
        await sender.stop()


async def test_signals_fire_the_webhooks_of_the_devices_organization_and_above(
    fresh_db: str, db: Database, receiver: Receiver
) -> None:
    ids = _world(fresh_db, receiver)
    async with _triggers(db) as (signals, sender, triggers):
        assert signals.watched == {(ids["T"], 0), (ids["T"], ALL_PINS)}
        now = datetime.now(UTC)
        signals.values(  # as DataService.record tells them: plain rows, a Double as its number
            StoredValues(
                [
                    (ids["dA"], ids["T"], 0, "Moisture", 21.5, 21.5, now),  # A's template webhook
                    (ids["dB"], ids["T"], 0, "Moisture", 9.5, 9.5, now),  # B's device webhook, never A's template's
                    (ids["dA"], ids["T"], 1, "Pump", 1.0, 1.0, now),  # nobody's
                ],
                "device",
            )
        )
        signals.user_added(ids["A"], ids["userA"])
        signals.first_connection(ids["dB"])
        await sender.drain()
        assert _bodies(receiver, "/a-moisture") == [{"device": "Sensor A", "value": "21.5", "user": "{USER_EMAIL}"}]
        assert _bodies(receiver, "/b-any") == [{"device": "Sensor B", "value": "9.5", "user": "{USER_EMAIL}"}]
        assert _bodies(receiver, "/a-user") == [
            {"device": "{DEVICE_NAME}", "value": "{TRIGGER_VALUE}", "user": "new@a.test"}
        ]
        assert [b["device"] for b in _bodies(receiver, "/p-first")] == ["Sensor B"]
        assert _bodies(receiver, "/a-first") == []  # B's device is not A's

        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute("UPDATE webhook SET enabled = false WHERE id = %s", (ids["hookA"],))
        await triggers.apply(Change("webhook", ids["hookA"]))
        assert signals.watched == {(ids["T"], ALL_PINS)}  # B's device webhook still watches its template
        signals.values([_value(ids["dA"], ids["T"], 0, "30")])
        await sender.drain()
        assert len(_bodies(receiver, "/a-moisture")) == 1
    assert signals.watched == set()


async def test_a_user_added_before_its_transaction_commits_is_still_delivered(
    fresh_db: str, db: Database, receiver: Receiver
) -> None:
    ids = _world(fresh_db, receiver)
    async with _triggers(db) as (signals, sender, _triggers_running):
        async with await psycopg.AsyncConnection.connect(fresh_db) as conn:  # one open transaction
            row = await (
                await conn.execute(
                    "INSERT INTO app_user (org_id, email, password_hash, role_id) VALUES (%s, 'late@a.test', 'x', 3)"
                    " RETURNING id",
                    (ids["A"],),
                )
            ).fetchone()
            assert row
            signals.user_added(ids["A"], int(row[0]))  # told inside the transaction, as a service would
            await asyncio.sleep(0.6)  # the first lookups find nothing yet
            await conn.commit()
        await sender.drain()
    assert [b["user"] for b in _bodies(receiver, "/a-user")] == ["late@a.test"]
