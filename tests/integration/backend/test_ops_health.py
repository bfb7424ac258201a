"""Health and metrics (issue #15 item 3) on the real broker, app and PostgreSQL: what paho
devices publish moves the ingest's and history's counters, HTTP requests are counted by route
template, login failures are counted, the broker's own numbers come along, and ``/readyz``
answers 503 with the reason while PostgreSQL is stopped and 200 again once it is back."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.db.embedded import EmbeddedPostgres
from backend.db.migrate import migrate
from tests.support.accounts import ROOT_ADMIN, Api
from tests.support.datadir import remove_data_dir
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig, running

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str, **headers: str) -> Samples:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    r = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_published_values_move_the_counters(stack: StackConfig, paho_device: ConnectDevice) -> None:
    info = provision(stack.database_url, thermostat_doc(save_raw=True)).devices[0]
    before = scrape(stack.base_url)
    device = paho_device(stack, info)
    wait_for(
        lambda: (
            value(scrape(stack.base_url), "openblynk_broker_connected_devices")
            == value(before, "openblynk_broker_connected_devices") + 1
        ),
        message="the broker to count the device",
    )
    for n in range(5):
        device.publish("ds/Temperature", str(20 + n), qos=1)
    wanted = value(before, "openblynk_ingest_messages_total", kind="value") + 5
    wait_for(
        lambda: value(scrape(stack.base_url), "openblynk_ingest_messages_total", kind="value") == wanted,
        message="five values counted by the ingest",
    )
    wait_for(
        lambda: (
            value(scrape(stack.base_url), "openblynk_history_rows_written_total")
            >= value(before, "openblynk_history_rows_written_total") + 5
        ),
        message="five history rows written",
    )
    after = scrape(stack.base_url)
    assert value(after, "openblynk_broker_metrics_up") == 1
    assert value(after, "openblynk_broker_connection_up") == 1
    assert value(after, "openblynk_ingest_messages_total", kind="sys_presence") > value(
        before, "openblynk_ingest_messages_total", kind="sys_presence"
    )
    assert value(after, "openblynk_db_pool_max") == 6
    assert value(after, "openblynk_scheduler_interval_jobs") == 4
    assert value(after, "openblynk_broker_sessions") >= 2  # the device and the app
    assert value(after, "openblynk_broker_process_resident_memory_bytes") > 0


def test_requests_are_counted_by_route_template_and_login_failures_by_reason(stack: StackConfig) -> None:
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    before = scrape(stack.base_url)
    with Api(stack.base_url) as api:
        wrong = api.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": "not the password"})
        assert wrong.status_code == 401
        api.login(*ROOT_ADMIN)
        assert api.get(f"/api/devices/{info.id}").status_code == 200
    after = scrape(stack.base_url)
    assert value(after, "openblynk_login_failures_total", reason="wrong") == (
        value(before, "openblynk_login_failures_total", reason="wrong") + 1
    )
    paths = {dict(labels).get("path") for (name, labels) in after if name == "openblynk_http_requests_total"}
    assert "/api/devices/{device_id}" in paths
    assert f"/api/devices/{info.id}" not in paths
    assert "/metrics" not in paths
    key = {"method": "GET", "path": "/api/devices/{device_id}", "status_code": "200", "app_name": "openblynk"}
    assert (
        value(after, "openblynk_http_requests_total", **key)
        == value(before, "openblynk_http_requests_total", **key) + 1
    )


def test_metrics_are_refused_through_a_proxy_without_the_token(stack: StackConfig) -> None:
    r = httpx.get(f"{stack.base_url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 403
    assert "OPENBLYNK_METRICS_TOKEN" in r.text


@pytest.fixture
def own_pg() -> Iterator[tuple[EmbeddedPostgres, StackConfig]]:
    data_dir = ROOT / ".pytest-data" / f"readyz-{os.getpid()}"
    remove_data_dir(data_dir)
    pg = EmbeddedPostgres(data_dir / "pg" / "postgres")
    pg.start()
    try:
        migrate(pg.url())
        yield pg, StackConfig(data_dir=data_dir / "stack", database_url=pg.url())
    finally:
        pg.stop()
        remove_data_dir(data_dir)


def test_readyz_says_why_while_the_database_is_stopped(own_pg: tuple[EmbeddedPostgres, StackConfig]) -> None:
    pg, config = own_pg
    with running(config):
        ready = httpx.get(f"{config.base_url}/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (200, {"status": "ready", "reasons": []})
        pg.stop()
        down = httpx.get(f"{config.base_url}/readyz", timeout=10)
        assert down.status_code == 503
        assert down.json()["status"] == "not ready"
        assert [r.split(":")[0] for r in down.json()["reasons"]] == ["database unreachable"]
        assert httpx.get(f"{config.base_url}/healthz", timeout=10).status_code == 200  # alive all the same
        pg.start()
        wait_for(
            lambda: httpx.get(f"{config.base_url}/readyz", timeout=10).status_code == 200,
            timeout=30,
            message="/readyz to be 200 once PostgreSQL is back",
        )
