"""Who may read /metrics (issue #15 item 3): loopback clients that came through no proxy, or,
once OPENBLYNK_METRICS_TOKEN is set, whoever sends that token (and no one else)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from backend.errors import AuthenticationError, PermissionDeniedError
from backend.server.metrics import check_reader
from backend.server.pump import _count_kinds, message_kind
from backend.settings import Settings
from backend.transport.mqtt import Message


def _request(host: str, **headers: str) -> Any:
    return SimpleNamespace(client=SimpleNamespace(host=host), headers={k.lower(): v for k, v in headers.items()})


OPEN = Settings()
TOKEN = Settings(metrics_token="scrape-token-0123456789")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1"])
def test_loopback_may_read_without_a_token_unless_one_is_set(host: str) -> None:
    check_reader(_request(host), OPEN)  # raises if refused
    with pytest.raises(AuthenticationError, match="OPENBLYNK_METRICS_TOKEN"):
        check_reader(_request(host), TOKEN)  # once a token is set, loopback needs it too


@pytest.mark.parametrize(
    ("host", "headers"),
    [
        ("192.0.2.7", {}),
        ("127.0.0.1", {"X-Forwarded-For": "198.51.100.1"}),
        ("127.0.0.1", {"Forwarded": "for=198.51.100.1"}),
        ("127.0.0.1", {"X-Real-IP": "198.51.100.1"}),
    ],
)
def test_others_and_proxied_requests_are_refused_without_a_token(host: str, headers: dict[str, str]) -> None:
    with pytest.raises(PermissionDeniedError, match="OPENBLYNK_METRICS_TOKEN"):
        check_reader(_request(host, **headers), OPEN)


def test_with_a_token_only_the_token_opens_it_from_anywhere() -> None:
    check_reader(_request("192.0.2.7", Authorization="Bearer scrape-token-0123456789"), TOKEN)
    for host, given in [("192.0.2.7", "Bearer wrong"), ("127.0.0.1", ""), ("127.0.0.1", "scrape-token-0123456789")]:
        with pytest.raises(AuthenticationError):
            check_reader(_request(host, Authorization=given), TOKEN)


@pytest.mark.parametrize(
    ("topic", "kind"),
    [
        ("d/7/ds/Temperature", "value"),
        ("d/7/ds/Temperature", "value"),  # remembered the second time, the same answer
        ("d/7/ds/Temperature/timestamped_batch", "timestamped_batch"),
        ("d/7/batch_ds", "batch_ds"),
        ("d/7/event/overheat", "event"),
        ("sys/presence/7", "sys_presence"),
        ("sys/vitals/7", "sys_vitals"),
        ("sys/unknown/7", "other"),
        ("d/7/not/a/blynk/topic", "other"),
    ],
)
def test_messages_are_counted_under_a_bounded_set_of_kinds(topic: str, kind: str) -> None:
    assert message_kind(topic) == kind


def test_a_batch_is_counted_by_kind_once_per_kind() -> None:
    def total(kind: str) -> float:
        return REGISTRY.get_sample_value("openblynk_ingest_messages_total", {"kind": kind}) or 0.0

    kinds = ("value", "event", "sys_presence", "other")
    before = {kind: total(kind) for kind in kinds}
    topics = ["d/1/ds/Temperature"] * 3 + ["d/2/ds/Temperature", "d/2/ds/Humidity", "d/1/event/overheat"]
    topics += ["sys/presence/1", "somewhere/else", "d/2/ds/Humidity"]
    for _ in range(2):  # the second time from the remembered kinds
        _count_kinds([Message(topic, b"1", 1, False) for topic in topics])
    counted = {kind: total(kind) - before[kind] for kind in kinds}
    assert counted == {"value": 12.0, "event": 2.0, "sys_presence": 2.0, "other": 2.0}
