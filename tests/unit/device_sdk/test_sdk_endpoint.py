"""downlink/redirect URIs and reconnect backoff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_sdk import Backoff, Endpoint


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mqtt://ny3.blynk.cloud", Endpoint("ny3.blynk.cloud", 1883)),
        ("mqtt://ny3.blynk.cloud:1884", Endpoint("ny3.blynk.cloud", 1884)),
        ("mqtts://fra1.blynk.cloud:8883", Endpoint("fra1.blynk.cloud", 8883, tls=True)),
        ("mqtts://fra1.blynk.cloud", Endpoint("fra1.blynk.cloud", 8883, tls=True)),
        ("ws://10.0.0.5:8080/mqtt", Endpoint("10.0.0.5", 8080, websocket_path="/mqtt")),
        ("ws://10.0.0.5", Endpoint("10.0.0.5", 80, websocket_path="/mqtt")),
        ("wss://fra1.blynk.cloud:443/mqtt", Endpoint("fra1.blynk.cloud", 443, tls=True, websocket_path="/mqtt")),
        ("wss://fra1.blynk.cloud:9443", Endpoint("fra1.blynk.cloud", 9443, tls=True, websocket_path="/mqtt")),
        ("wss://h/custom/path?x=1", Endpoint("h", 443, tls=True, websocket_path="/custom/path?x=1")),
        ("MQTTS://FRA1.Blynk.Cloud:8883", Endpoint("fra1.blynk.cloud", 8883, tls=True)),
        ("  mqtt://h:1  \n", Endpoint("h", 1)),
        ("mqtt://[::1]:1883", Endpoint("::1", 1883)),
    ],
)
def test_redirect_uris_parse(uri: str, expected: Endpoint) -> None:
    assert Endpoint.parse(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "fra1.blynk.cloud:8883",
        "http://fra1.blynk.cloud",
        "tcp://fra1.blynk.cloud:1883",
        "mqtt://",
        "mqtt://:1883",
        "mqtt://host:0",
        "mqtt://host:65536",
        "mqtt://host:port",
    ],
)
def test_bad_redirect_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(uri)


def test_transport_follows_the_scheme() -> None:
    assert Endpoint.parse("mqtts://h").transport == "tcp"
    assert Endpoint.parse("wss://h").transport == "websockets"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host": "", "port": 1},
        {"host": "a b", "port": 1},
        {"host": "h/x", "port": 1},
        {"host": "h", "port": 0},
        {"host": "h", "port": True},
        {"host": "h", "port": 1, "websocket_path": "mqtt"},
    ],
)
def test_endpoint_checks_its_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Endpoint(**kwargs)  # type: ignore[arg-type]


@given(
    host=st.sampled_from(["blynk.cloud", "127.0.0.1", "::1", "fra1.blynk.cloud"]),
    port=st.integers(1, 65535),
    tls=st.booleans(),
    path=st.one_of(st.none(), st.sampled_from(["/mqtt", "/", "/a/b"])),
)
def test_uri_round_trips(host: str, port: int, tls: bool, path: str | None) -> None:
    endpoint = Endpoint(host, port, tls=tls, websocket_path=path)
    assert Endpoint.parse(endpoint.uri) == endpoint


# -- Backoff --------------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, multiplier=2.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.delay(10_000) == 10.0


@given(attempt=st.integers(0, 200), rand=st.floats(0.0, 1.0, exclude_max=True))
def test_jittered_delay_stays_within_its_band(attempt: int, rand: float) -> None:
    backoff = Backoff(initial=0.5, maximum=60.0, jitter=0.5)
    base = min(60.0, 0.5 * 2.0**attempt)
    delay = backoff.delay(attempt, rand=lambda: rand)
    assert base * 0.5 <= delay <= base <= 60.0


def test_jitter_spreads_the_delays() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=1.0)
    assert len({backoff.delay(0) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"initial": 5, "maximum": 1},
        {"multiplier": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.1},
        {"reset_after": -1},
    ],
)
def test_backoff_refuses_inconsistent_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
