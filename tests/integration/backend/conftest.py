"""Fixtures for tests against the running stack: provisioned devices and paho clients
(:class:`PahoDevice` and :func:`connect_device` live in tests/support/paho.py; imported here
for the tests that import them from this module)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.transfer.schemas import DeviceOut
from tests.support.net import wait_for
from tests.support.paho import TRANSPORTS, PahoDevice, connect_device
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig


@pytest.fixture
def devices(stack: StackConfig) -> Iterator[list[DeviceOut]]:
    """Two fresh devices of a fresh Thermostat template in the stack's database."""
    yield provision(stack.database_url, thermostat_doc(devices=2)).devices


@pytest.fixture
def transport() -> str:
    """The transport devices connect over; plain MQTT unless the module asks for more."""
    return "tcp"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "transports(*names): of the module's TRANSPORTS_UNDER_TEST, run only these")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets ``TRANSPORTS_UNDER_TEST = (...)`` runs each of its tests that use a
    device (through the ``transport`` fixture) once per transport; a test marked
    ``@pytest.mark.transports("tcp", "tls")`` runs over those only."""
    transports = getattr(metafunc.module, "TRANSPORTS_UNDER_TEST", None)
    if transports and "transport" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("transports")
        metafunc.parametrize("transport", [t for t in transports if only is None or t in only.args])


@pytest.fixture
def device(stack: StackConfig, devices: list[DeviceOut], transport: str) -> Iterator[PahoDevice]:
    """The first device, connected over ``transport`` and subscribed to ``downlink/#``."""
    dev = connect_device(stack, devices[0], transport=transport)
    wait_for(lambda: is_connected(stack, devices[0].token), message="presence to reach the app")
    yield dev
    dev.close()


@pytest.fixture
def http(stack: StackConfig) -> Iterator[httpx.Client]:
    """An HTTP client for the app."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        yield client


__all__ = ["TRANSPORTS", "PahoDevice", "connect_device", "is_connected"]


def is_connected(stack: StackConfig, token: str) -> bool:
    r = httpx.get(f"{stack.base_url}/external/api/isHardwareConnected", params={"token": token}, timeout=5)
    return r.text == "true"
