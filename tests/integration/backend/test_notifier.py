"""The Notifier against a real PostgreSQL and a real local SMTP server (aiosmtpd): who gets an
in-app notification, who an e-mail, the per-user preferences and the hourly e-mail limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from backend.accounts.mail import Mailer
from backend.db.engine import Database
from backend.errors import ConfigError, NotificationLimitError, RateLimitedError
from backend.notifications.cleanup import clean_notifications
from backend.notifications.service import Notifier
from backend.settings import Settings
from tests.support.accounts import Outbox
from tests.support.net import free_port, wait_for


@pytest.fixture
def smtp() -> Iterator[tuple[Outbox, int]]:
    outbox = Outbox()
    controller = Controller(outbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield outbox, controller.port
    controller.stop()


def _people(url: str) -> dict[str, int]:
    """Two organizations: A with an admin, a user, a suspended user; B with one user."""
    ids: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for org in ("A", "B"):
            row = conn.execute("INSERT INTO organization (name) VALUES (%s) RETURNING id", (f"org {org}",)).fetchone()
            assert row
            ids[org] = row[0]
        for name, org, role, status in (
            ("admin", "A", 1, "active"),
            ("user", "A", 3, "active"),
            ("gone", "A", 3, "suspended"),
            ("other", "B", 3, "active"),
        ):
            row = conn.execute(
                "INSERT INTO app_user (org_id, email, password_hash, role_id, status) VALUES (%s, %s, 'x', %s, %s)"
                " RETURNING id",
                (ids[org], f"{name}@example.test", role, status),
            ).fetchone()
            assert row
            ids[name] = row[0]
    return ids


@pytest.fixture
async def notifier(fresh_db: str, smtp: tuple[Outbox, int], tmp_path: Path) -> AsyncIterator[Notifier]:
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_security="none",
        data_dir=tmp_path,
        notification_emails_per_hour=3,
    )
    async with Database(fresh_db, pool_size=2) as db:
        yield Notifier(db.pool, Mailer(settings), settings.notification_emails_per_hour)


def _rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


async def test_in_app_reaches_the_active_users_of_the_organization_only(fresh_db: str, notifier: Notifier) -> None:
    ids = _people(fresh_db)
    assert await notifier.in_app(ids["A"], None, "Pump", "on", source="automation", source_id=7) == 2
    assert await notifier.in_app(ids["A"], [ids["user"], ids["other"]], "Only you", "") == 1
    rows = _rows(fresh_db, "SELECT user_id, title, source, source_id FROM notification ORDER BY id")
    assert rows == [
        (ids["admin"], "Pump", "automation", 7),
        (ids["user"], "Pump", "automation", 7),
        (ids["user"], "Only you", "automation", None),
    ]


async def test_in_app_sends_a_change_notice_per_user(fresh_db: str, notifier: Notifier) -> None:
    ids = _people(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("LISTEN openblynk_changes")
        await notifier.in_app(ids["A"], [ids["user"]], "Hello", "")
        payloads = [n.payload for n in conn.notifies(timeout=5, stop_after=1)]
    assert payloads == [f"notice:{ids['user']}"]


async def test_preferences_leave_out_who_turned_a_kind_off(
    fresh_db: str, notifier: Notifier, smtp: tuple[Outbox, int]
) -> None:
    ids = _people(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("INSERT INTO notification_pref (user_id, in_app, email) VALUES (%s, false, true)", (ids["admin"],))
        conn.execute("INSERT INTO notification_pref (user_id, muted) VALUES (%s, true)", (ids["user"],))
    assert await notifier.in_app(ids["A"], None, "Nobody", "") == 0
    await notifier.email(ids["A"], ["admin@example.test", "USER@example.test", "x@example.test"], "Subject", "Body")
    wait_for(lambda: len(smtp[0].messages) == 2, 10, message="two e-mails")
    assert sorted(m["To"] for m in smtp[0].messages) == ["admin@example.test", "x@example.test"]
    assert smtp[0].messages[0]["Subject"] == "Subject"


async def test_the_hourly_email_limit_is_per_organization(
    fresh_db: str, notifier: Notifier, smtp: tuple[Outbox, int]
) -> None:
    ids = _people(fresh_db)
    await notifier.email(ids["A"], ["a@example.test", "b@example.test"], "1", "")
    with pytest.raises(NotificationLimitError) as refused:  # two more do not fit in the 3 of the hour
        await notifier.email(ids["A"], ["c@example.test", "d@example.test"], "2", "")
    assert isinstance(refused.value, RateLimitedError)
    assert "OPENBLYNK_NOTIFICATION_EMAILS_PER_HOUR" in refused.value.message
    assert 1 <= refused.value.retry_after <= 3601
    await notifier.email(ids["A"], ["c@example.test"], "3", "")
    with pytest.raises(NotificationLimitError):
        await notifier.email(ids["A"], ["e@example.test"], "4", "")
    await notifier.email(ids["B"], ["f@example.test"], "5", "")  # another organization's hour
    wait_for(lambda: len(smtp[0].messages) == 4, 10, message="four e-mails")
    assert sorted(m["Subject"] for m in smtp[0].messages) == ["1", "1", "3", "5"]
    assert _rows(fresh_db, "SELECT org_id, sent FROM notification_email_hour ORDER BY org_id") == [
        (ids["A"], 3),
        (ids["B"], 1),
    ]


async def test_old_notifications_and_past_hours_are_forgotten(fresh_db: str, notifier: Notifier) -> None:
    ids = _people(fresh_db)
    await notifier.in_app(ids["A"], [ids["user"]], "Old", "")
    await notifier.in_app(ids["A"], [ids["user"]], "New", "")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("UPDATE notification SET created_at = now() - interval '91 days' WHERE title = 'Old'")
        conn.execute(
            "INSERT INTO notification_email_hour (org_id, hour, sent) VALUES"
            " (%s, date_trunc('hour', now()) - interval '1 hour', 5), (%s, date_trunc('hour', now()), 2)",
            (ids["A"], ids["B"]),
        )
    assert await clean_notifications(notifier.pool, 90) == 1
    assert _rows(fresh_db, "SELECT title FROM notification") == [("New",)]
    assert _rows(fresh_db, "SELECT org_id, sent FROM notification_email_hour") == [(ids["B"], 2)]


def test_the_settings_refuse_a_retention_below_a_day() -> None:
    with pytest.raises(ConfigError, match="OPENBLYNK_NOTIFICATION_RETENTION_DAYS"):
        Settings.from_env({"OPENBLYNK_NOTIFICATION_RETENTION_DAYS": "0"}, dotenv=Path("/nonexistent/.env"))
