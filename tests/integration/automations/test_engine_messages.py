"""An automation's e-mail, in-app notification and webhook actions through the real app: the
e-mail reaches a local SMTP server (aiosmtpd), the notification is stored for the
organization's users, the webhook reaches a local HTTP server with a valid signature, all with
Blynk's placeholders filled in from the trigger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.support.accounts import Api, Outbox
from tests.support.automation_stack import EngineStack, engine_stack
from tests.support.net import free_port, wait_for
from tests.support.paho import ConnectDevice
from tests.support.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.slow
ADMIN = ("admin@test.local", "admin-password-123")  # the root administrator tests/support/provision.py makes


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Outbox, int]]:
    outbox = Outbox()
    controller = Controller(outbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield outbox, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str, smtp: tuple[Outbox, int]) -> Iterator[EngineStack]:
    settings = {
        "smtp_host": "127.0.0.1",
        "smtp_port": str(smtp[1]),
        "smtp_security": "none",
        "webhook_allowed_hosts": "127.0.0.1",
    }
    with engine_stack(pg_server, template_db, devices=2, **settings) as stack:
        yield stack


def test_email_notification_and_webhook_actions_with_placeholders(
    world: EngineStack, smtp: tuple[Outbox, int], receiver: Receiver, paho_device: ConnectDevice
) -> None:
    outbox = smtp[0]
    sensor_info, pump_info = world.devices
    with Api(world.config.base_url) as admin:
        admin.login(*ADMIN)
        made = admin.post(
            "/api/console/webhooks",
            json={
                "name": "hot",
                "trigger": "manual",
                "url": receiver.url("/ok"),
                "method": "POST",
                "body_kind": "json",
                "body": '{"device": "{DEVICE_NAME}", "value": "{TRIGGER_VALUE}"}',
            },
        )
        assert made.status_code == 201, made.text
        hook = made.json()
    auto = world.add(
        {"type": "device_state", "device_id": sensor_info.id, "pin": 0, "op": "gt", "value": 80},
        [
            {"type": "email", "to": ["ops@farm.example"], "subject": "{DEVICE_NAME} hot", "body": "at {TRIGGER_VALUE}"},
            {"type": "notify", "title": "{DEVICE_NAME} is hot", "body": "{TRIGGER_VALUE} in {ORG_NAME}"},
            {"type": "webhook", "webhook_id": hook["id"]},
            {"type": "control", "target": {"device_id": pump_info.id}, "pin": 2, "value": "told"},
        ],
    )
    pump = paho_device(world.config, pump_info)
    sensor = paho_device(world.config, sensor_info, subscribe=False)
    sensor.publish("ds/Temperature", "84.5", qos=1)
    assert pump.next(timeout=20, topic_prefix="downlink/ds/Label") == ("downlink/ds/Label", b"told")
    wait_for(lambda: [s for _, s, _ in world.runs(auto)] == ["ok"], 20, message="the run to finish")
    (run,) = world.runs(auto)
    assert [(kind, ok) for _, kind, ok, _ in world.steps(run[0])] == [
        ("email", True),
        ("notify", True),
        ("webhook", True),
        ("control", True),
    ]
    (mail,) = wait_for(lambda: outbox.to("ops@farm.example"), 20, message="the e-mail")
    assert mail["Subject"] == f"{sensor_info.name} hot"
    assert mail.get_content().strip() == "at 84.5"
    with world.db() as conn:
        notes = conn.execute(
            "SELECT title, body, source, source_id, device_id FROM notification ORDER BY id"
        ).fetchall()
        org = conn.execute("SELECT name FROM organization WHERE id = %s", (world.org_id,)).fetchone()
    assert org is not None
    assert notes == [(f"{sensor_info.name} is hot", f"84.5 in {org[0]}", "automation", auto, sensor_info.id)]
    (request,) = [r for r in receiver.requests if r.path == "/ok"]
    assert receiver.verified(request, hook["secret"])
    assert request.body == f'{{"device": "{sensor_info.name}", "value": "84.5"}}'.encode()
