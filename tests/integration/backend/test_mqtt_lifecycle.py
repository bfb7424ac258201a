"""Connection lifecycle through the real broker and app: timeline entries, the offline ignore
period, vitals and ping reports, last seen, and the Device Menu commands from the CLI."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from backend.security import Secrets
from backend.transfer.schemas import DeviceOut
from tests.integration.backend.conftest import PahoDevice, connect_device, is_connected
from tests.integration.backend.devices_doc import provision_rich, query, timeline
from tests.support.net import free_port, wait_for
from tests.support.paho import ConnectDevice
from tests.support.stack import TEST_SECRET, StackConfig


def connections(stack: StackConfig, device_id: int) -> list[str]:
    return [e[0] for e in timeline(stack, device_id) if e[0] != "event"]


def close(dev: PahoDevice) -> None:
    dev.client.disconnect()
    dev.client.loop_stop()


def cycle(stack: StackConfig, info: DeviceOut) -> PahoDevice:
    """Connect, disconnect (waiting for offline), connect again; return the new connection."""
    first = connect_device(stack, info, subscribe=False)
    wait_for(lambda: is_connected(stack, info.token))
    close(first)
    wait_for(lambda: not is_connected(stack, info.token), message="offline")
    second = connect_device(stack, info, subscribe=False)
    wait_for(lambda: is_connected(stack, info.token), message="online again")
    return second


def test_online_and_offline_go_on_the_timeline(stack: StackConfig) -> None:
    info = provision_rich(stack)[0]
    dev = cycle(stack, info)
    close(dev)
    wait_for(
        lambda: connections(stack, info.id) == ["online", "offline", "online", "offline"],
        message="four timeline entries",
    )
    row = query(
        stack,
        "SELECT online, connected_at < disconnected_at, disconnects_today, disconnects_day "
        "= (now() AT TIME ZONE 'UTC')::date FROM device WHERE id = %s",
        info.id,
    )
    assert row == [(False, True, 2, True)]


def test_a_short_offline_within_the_ignore_period_leaves_no_entry(stack: StackConfig) -> None:
    info = provision_rich(stack, offline_ignore_seconds=600)[0]
    dev = cycle(stack, info)
    try:
        wait_for(lambda: connections(stack, info.id) == ["online"], message="the blip hidden")
    finally:
        close(dev)
    wait_for(lambda: connections(stack, info.id) == ["online", "offline"], message="the real offline")


class Service:
    """A service client that publishes what the broker would (sys/presence, vitals, ping)."""

    def __init__(self, stack: StackConfig) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-svc-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set("openblynk-service", Secrets(TEST_SECRET).service_password())
        done: queue.Queue[object] = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p=None: done.put(rc)
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.loop_start()
        assert not done.get(timeout=10).is_failure  # type: ignore[attr-defined]

    def send(self, topic: str, doc: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(doc), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_vitals_ping_and_offline_vitals_are_stored(stack: StackConfig) -> None:
    info = provision_rich(stack)[0]
    svc = Service(stack)
    now = int(time.time() * 1000)
    try:
        svc.send(
            f"sys/presence/{info.id}",
            {
                "online": True,
                "ts": now,
                "ip": "192.0.2.1",
                "port": 1234,
                "client_id": "fw",
                "keep_alive": 45,
                "transport": "tcp",
            },
        )
        svc.send(
            f"sys/vitals/{info.id}",
            {"ts": now + 1000, "msgs_in": 5, "msgs_out": 3, "bytes_in": 500, "bytes_out": 300, "connected_for_s": 1},
        )
        svc.send(f"sys/ping/{info.id}", {"ts": now + 1500, "rtt_ms": 12.5})
        wait_for(
            lambda: (
                query(
                    stack,
                    "SELECT msgs_in, msgs_out, bytes_in, bytes_out, last_ping_ms FROM device WHERE id = %s",
                    info.id,
                )
                == [(5, 3, 500, 300, 12.5)]
            ),
            message="vitals and ping",
        )
        svc.send(
            f"sys/presence/{info.id}",
            {
                "online": False,
                "ts": now + 2000,
                "reason": "connection_lost",
                "vitals": {"msgs_in": 9, "msgs_out": 4, "bytes_in": 900, "bytes_out": 400},
            },
        )
        svc.send(f"sys/presence/{info.id}", {"online": False, "ts": now + 2000, "reason": "connection_lost"})
        svc.send(f"sys/ping/{info.id}", {"ts": now + 3000, "rtt_ms": None, "timeout": True})
        svc.send(f"sys/vitals/{info.id}", {"ts": "garbage"})  # malformed: logged, ignored
        wait_for(
            lambda: (
                query(
                    stack,
                    "SELECT online, msgs_in, bytes_out, disconnects_today, last_ping_ms, "
                    "last_ping_at IS NOT NULL, ip FROM device WHERE id = %s",
                    info.id,
                )
                == [(False, 9, 400, 1, None, True, "192.0.2.1")]
            ),
            message="offline with its vitals",
        )
        assert connections(stack, info.id) == ["online", "offline"]  # the repeated offline adds nothing
    finally:
        svc.close()


def test_last_seen_moves_with_uplinks(stack: StackConfig, paho_device: ConnectDevice) -> None:
    info = provision_rich(stack)[0]
    dev = paho_device(stack, info, subscribe=False)
    wait_for(lambda: is_connected(stack, info.token))
    (connected,) = query(stack, "SELECT connected_at FROM device WHERE id = %s", info.id)[0]
    time.sleep(0.05)  # so that the uplink's time differs from the connection's
    dev.publish("ds/Temperature", "20", qos=1)
    wait_for(
        lambda: query(stack, "SELECT last_seen > %s FROM device WHERE id = %s", connected, info.id) == [(True,)],
        timeout=20,
        message="last_seen after the flush period",
    )


def cli(stack: StackConfig, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "device", *args],
        env={**stack.env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_device_menu_commands_from_the_cli(stack: StackConfig, paho_device: ConnectDevice) -> None:
    info = provision_rich(stack)[0]
    dev = paho_device(stack, info)
    wait_for(lambda: is_connected(stack, info.token))
    assert cli(stack, "reboot", info.name).returncode == 0
    assert dev.next(topic_prefix="downlink/") == ("downlink/reboot", b"")
    assert cli(stack, "reconfigure", info.name).returncode == 0
    assert dev.next(topic_prefix="downlink/") == ("downlink/reconfigure", b"")
    done = cli(stack, "redirect", info.name, "wss://fra1.example.com:443/mqtt")
    assert (done.returncode, done.stdout) == (0, f"sent redirect to {info.name}\n")
    assert dev.next(topic_prefix="downlink/") == ("downlink/redirect", b"wss://fra1.example.com:443/mqtt")
    bad = cli(stack, "redirect", info.name, "http://example.com")
    assert bad.returncode == 2 and "redirect URI must be mqtt[s]://host:port or ws[s]://host:port/mqtt" in bad.stderr
    port = str(free_port())
    down = cli(stack, "reboot", info.name, OPENBLYNK_MQTT_PORT=port)
    assert down.returncode == 2
    assert f"openblynk: cannot reach the MQTT broker at 127.0.0.1:{port}" in down.stderr
    dev.close()
    wait_for(lambda: not is_connected(stack, info.token))
    offline = cli(stack, "reboot", info.name)
    assert (offline.returncode, offline.stderr) == (
        2,
        f"openblynk: device {info.name!r} is offline: the reboot command would be lost\n",
    )


def test_ping_from_the_cli_stores_the_round_trip(stack: StackConfig, paho_device: ConnectDevice) -> None:
    info = provision_rich(stack)[0]
    dev = paho_device(stack, info)
    wait_for(lambda: is_connected(stack, info.token))
    done = cli(stack, "ping", info.name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{info.name}: ") and done.stdout.endswith(" ms\n")
    assert dev.next(topic_prefix="downlink/") == ("downlink/ping", b"")
    wait_for(
        lambda: query(stack, "SELECT last_ping_ms IS NOT NULL FROM device WHERE id = %s", info.id) == [(True,)],
        message="the stored round trip",
    )
