"""Fixtures for device_sdk integration tests: real brokers on 127.0.0.1 (see sdk_harness)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sdk_harness import Authenticator, BrokerThread, Service, TlsFiles, make_tls_files

from tests.support.net import wait_for


@pytest.fixture
def authenticator() -> Authenticator:
    return Authenticator()


@pytest.fixture
def broker(authenticator: Authenticator) -> Iterator[BrokerThread]:
    server = BrokerThread(authenticator)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def service(broker: BrokerThread) -> Iterator[Service]:
    client = Service(broker.port)
    yield client
    client.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def no_sdk_thread_survives() -> Iterator[None]:
    """Every test must leave no device_sdk network thread behind."""
    yield
    wait_for(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("device_sdk")],
        message="device_sdk threads to end",
    )
