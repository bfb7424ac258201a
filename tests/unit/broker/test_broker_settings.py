"""BrokerSettings validation and the public surface of the package."""

from __future__ import annotations

import dataclasses

import pytest

import broker
from broker import BrokerError, BrokerSettings
from broker.errors import ConfigurationError


def test_public_names_are_pinned() -> None:
    assert sorted(broker.__all__) == sorted(
        [
            "MqttBroker",
            "BrokerSettings",
            "Authenticator",
            "ConnectInfo",
            "DeviceIdentity",
            "ServiceIdentity",
            "BrokerError",
            "SessionQueues",
        ]
    )


def test_defaults_match_blynk() -> None:
    settings = BrokerSettings()
    assert (settings.max_packet_size, settings.keepalive_grace, settings.presence_retain) == (1024, 1.5, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [{"port": 70000}, {"tls_port": 8883}, {"max_packet_size": 1}, {"keepalive_grace": 0.5}, {"connect_timeout": 0}],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        BrokerSettings(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, BrokerError)
