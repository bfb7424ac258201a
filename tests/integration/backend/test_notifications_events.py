"""Event notifications against a real PostgreSQL and a real local SMTP server (aiosmtpd):
every Nth event, the limit period, recipients (owner, admins, a metadata contact, fixed
addresses), the users' preferences and the hourly e-mail limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from backend.accounts.mail import Mailer
from backend.db.engine import Database
from backend.devices.signals import DeviceEventSignal, DeviceSignals
from backend.notifications.events import EventNotifications, addresses_in, due
from backend.notifications.service import Notifier
from backend.settings import Settings
from tests.support.accounts import Outbox
from tests.support.net import free_port, wait_for
from tests.support.provision import provision_async

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@dataclass
class World:
    url: str
    outbox: Outbox
    org: int
    device: int
    template: int
    ids: dict[str, int]
    events: EventNotifications

    def sql(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def settings(self, **notify: Any) -> None:
        self.sql(
            "UPDATE event_def SET notify = %s WHERE template_id = %s", psycopg.types.json.Jsonb(notify), self.template
        )

    def signal(self, at: datetime = T0) -> DeviceEventSignal:
        return DeviceEventSignal(
            self.device, self.org, self.template, "Boiler", "overheat", "Overheat", "WARNING", "Too hot: 91 °C", at
        )

    def in_app(self) -> list[tuple[Any, ...]]:
        return self.sql("SELECT user_id, title, body, level, source, device_id FROM notification ORDER BY id")

    def mails(self, count: int) -> list[str]:
        wait_for(lambda: len(self.outbox.messages) >= count, 10, message=f"{count} e-mails")
        return sorted(m["To"] for m in self.outbox.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[Outbox, int]]:
    outbox = Outbox()
    controller = Controller(outbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield outbox, controller.port
    controller.stop()


@pytest.fixture
async def world(fresh_db: str, smtp: tuple[Outbox, int], tmp_path: Path) -> AsyncIterator[World]:
    doc = {
        "templates": [
            {
                "name": "Boiler",
                "events": [{"code": "overheat", "name": "Overheat", "type": "warning"}],
                "metadata": [{"name": "Contact", "type": "contact"}],
            }
        ],
        "devices": [{"name": "Boiler", "template": "Boiler"}],
    }
    device = (await provision_async(fresh_db, doc)).devices[0].id
    ids: dict[str, int] = {}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        row = conn.execute("SELECT org_id, template_id FROM device WHERE id = %s", (device,)).fetchone()
        assert row
        org, template = row
        other = conn.execute("INSERT INTO organization (name) VALUES ('Elsewhere') RETURNING id").fetchone()
        assert other
        for name, org_id, role, status in (
            ("owner", org, 3, "active"),
            ("boss", org, 1, "active"),
            ("away", org, 1, "suspended"),
            ("staff", org, 2, "active"),
            ("stranger", other[0], 1, "active"),
        ):
            user = conn.execute(
                "INSERT INTO app_user (org_id, email, password_hash, role_id, status) VALUES (%s, %s, 'x', %s, %s)"
                " RETURNING id",
                (org_id, f"{name}@example.test", role, status),
            ).fetchone()
            assert user
            ids[name] = user[0]
        root_admin = conn.execute("SELECT id FROM app_user WHERE email = 'admin@test.local'").fetchone()
        assert root_admin
        ids["root"] = root_admin[0]
        conn.execute("UPDATE device SET owner_id = %s WHERE id = %s", (ids["owner"], device))
        conn.execute(
            "INSERT INTO device_meta (device_id, name, value) VALUES (%s, 'Contact', %s)",
            (device, "Ann Smith, +1 555 0100, ann@site.test"),
        )
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_security="none",
        data_dir=tmp_path,
        notification_emails_per_hour=10,
    )
    async with Database(fresh_db, pool_size=2) as db:
        notifier = Notifier(db.pool, Mailer(settings), settings.notification_emails_per_hour)
        yield World(fresh_db, smtp[0], org, device, template, ids, EventNotifications(db.pool, notifier))


def test_rules() -> None:
    assert [n for n in range(1, 10) if due(n, 3)] == [3, 6, 9]
    assert [n for n in range(1, 4) if due(n, 1)] == [1, 2, 3]
    assert addresses_in("Ann Smith, +1 555 0100, ann@site.test; <b@x.org>") == ["ann@site.test", "b@x.org"]
    assert addresses_in("no address here") == []


async def test_an_event_without_settings_notifies_nobody(world: World) -> None:
    await world.events.handle(world.signal())
    world.settings(email=False, in_app=False)
    await world.events.handle(world.signal())
    assert world.in_app() == []
    assert world.sql("SELECT count(*) FROM event_notify_state") == [(0,)]


async def test_in_app_goes_to_the_owner_with_the_events_text(world: World) -> None:
    world.settings(in_app=True)
    await world.events.handle(world.signal())
    assert world.in_app() == [
        (world.ids["owner"], "Boiler: Overheat", "Too hot: 91 °C", "warning", "event", world.device)
    ]


async def test_every_nth_event(world: World) -> None:
    world.settings(in_app=True, every_nth=3)
    for i in range(7):
        await world.events.handle(world.signal(T0 + timedelta(seconds=i)))
    assert len(world.in_app()) == 2  # the 3rd and the 6th
    assert world.sql("SELECT seen, last_sent_at FROM event_notify_state") == [(7, T0 + timedelta(seconds=5))]


async def test_limit_period_allows_one_notification_per_period(world: World) -> None:
    world.settings(in_app=True, limit_period_s=60)
    for seconds in (0, 10, 59, 60, 90, 125):
        await world.events.handle(world.signal(T0 + timedelta(seconds=seconds)))
    sent = world.sql("SELECT created_at FROM notification")
    assert len(sent) == 3  # at 0, 60 and 125 s
    assert world.sql("SELECT last_sent_at FROM event_notify_state") == [(T0 + timedelta(seconds=125),)]


async def test_recipients_owner_admins_contact_and_fixed_addresses(world: World) -> None:
    world.settings(
        in_app=True,
        email=True,
        recipients=["owner", "admins"],
        meta_fields=["Contact"],
        addresses=["ops@site.test", "staff@example.test", "stranger@example.test"],
    )
    await world.events.handle(world.signal())
    users = sorted(row[0] for row in world.in_app())
    # in-app: active users of the device's organization among the recipients (a suspended admin
    # and a user of another organization are not; an address of a user of the organization is)
    assert users == sorted([world.ids["owner"], world.ids["boss"], world.ids["root"], world.ids["staff"]])
    assert world.mails(7) == sorted(
        [
            "admin@test.local",
            "ann@site.test",
            "boss@example.test",
            "ops@site.test",
            "owner@example.test",
            "staff@example.test",
            "stranger@example.test",
        ]
    )
    mail = world.outbox.to("owner@example.test")[0]
    assert mail["Subject"] == "Overheat on Boiler"
    assert "Too hot: 91 °C" in mail.get_content()


async def test_preferences_of_each_user_are_honoured(world: World) -> None:
    world.settings(in_app=True, email=True, recipients=["owner", "admins"])
    world.sql("INSERT INTO notification_pref (user_id, email) VALUES (%s, false)", world.ids["owner"])
    world.sql("INSERT INTO notification_pref (user_id, in_app) VALUES (%s, false)", world.ids["boss"])
    world.sql("INSERT INTO notification_pref (user_id, muted) VALUES (%s, true)", world.ids["root"])
    await world.events.handle(world.signal())
    assert [row[0] for row in world.in_app()] == [world.ids["owner"]]
    assert world.mails(1) == ["boss@example.test"]


async def test_the_hourly_email_limit_stops_mail_not_in_app(world: World) -> None:
    world.settings(in_app=True, email=True, addresses=["a@site.test", "b@site.test"])  # 3 e-mails an event
    for i in range(4):
        await world.events.handle(world.signal(T0 + timedelta(seconds=i)))
    assert len(world.in_app()) == 4
    assert len(world.mails(9)) == 9  # the limit is 10: the fourth event's three did not fit
    assert world.sql("SELECT sent FROM notification_email_hour") == [(9,)]


async def test_the_listener_queues_and_the_worker_sends(world: World) -> None:
    world.settings(in_app=True)
    signals = DeviceSignals()
    world.events.listen(signals)
    world.events.start()
    try:
        signals.event(world.signal())
        await world.events.idle()
    finally:
        await world.events.stop()
    assert [row[0] for row in world.in_app()] == [world.ids["owner"]]
