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
            "BridgeSession",
            "BrokerSettings",
            "Authenticator",
            "ConnectInfo",
            "DeviceIdentity",
            "ServiceIdentity",
            "GatewayIdentity",
            "GatewayScope",
            "GatewaySession",
            "IntegrationIdentity",
            "address_key",
            "BrokerError",
            "SessionQueues",
            "proxy_header",
        ]
    )


def test_defaults_match_blynk() -> None:
    settings = BrokerSettings()
    assert (settings.max_packet_size, settings.keepalive_grace, settings.presence_retain) == (1024, 1.5, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 70000},
        {"tls_port": 8883},
        {"max_packet_size": 1},
        {"keepalive_grace": 0.5},
        {"connect_timeout": 0},
        {"proxy_port": 0},  # a proxy listener that could not tell the bridge from any local process
        {"proxy_port": 0, "proxy_key": b"short"},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        BrokerSettings(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, BrokerError)


def test_the_proxy_key_is_never_printed() -> None:
    settings = BrokerSettings(proxy_port=0, proxy_key=b"\x01" * 32)
    assert "proxy_key" not in repr(settings) and "\\x01" not in repr(settings)
