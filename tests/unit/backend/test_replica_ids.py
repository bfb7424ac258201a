"""The app's MQTT client id and subscriptions for one process and for several replicas."""

from __future__ import annotations

from backend.ingest.service import SUBSCRIPTIONS, app_subscriptions, replica_client_id
from broker.topics import TopicFilter


def test_one_process_keeps_the_configured_client_id() -> None:
    assert replica_client_id("openblynk-app", "", "host", 42) == "openblynk-app"


def test_each_replica_gets_its_own_client_id() -> None:
    assert replica_client_id("openblynk-app", "b", "host", 42) == "openblynk-app-b"
    assert replica_client_id("openblynk-app", "auto", "web-1", 42) == "openblynk-app-web-1-42"


def test_the_app_subscribes_through_one_shared_group_to_the_ingest_filters() -> None:
    assert app_subscriptions() == [f"$share/openblynk-app/{inner}" for inner in SUBSCRIPTIONS]
    for value in app_subscriptions():
        TopicFilter(value)  # a valid filter as well (what a 3.1.1 client library checks)
