"""Debian's Mosquitto as a site's broker bridged into openblynk (Blynk's MQTT Gateway API), for
the bridge test and the gateway benchmark.

The configuration is ``docs/mosquitto-bridge.conf`` itself, with the listener, the address,
the credentials and the per-device ``topic`` lines replaced: what is documented is what runs.
Mosquitto runs in the foreground on loopback and is stopped (killed if it must be) on exit.
"""

from __future__ import annotations

import queue
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.net import free_port, port_open, wait_for

MOSQUITTO = Path("/usr/sbin/mosquitto")
"""Debian's ``mosquitto`` package (``.ci/run`` installs it)."""
DOCUMENTED = Path(__file__).resolve().parents[2] / "docs" / "mosquitto-bridge.conf"


def bridge_config(
    local_port: int, remote_port: int, username: str, password: str, prefixes: Mapping[str, str], client_id: str
) -> str:
    """The documented configuration for this test: ``prefixes`` maps each local device prefix
    (``site/dev1/``) to its device token."""
    replaced = {
        "listener": f"listener {local_port} 127.0.0.1",
        "address": f"address 127.0.0.1:{remote_port}",
        "remote_clientid": f"remote_clientid {client_id}",
        "remote_username": f"remote_username {username}",
        "remote_password": f"remote_password {password}",
    }
    lines = []
    for line in DOCUMENTED.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key == "topic":
            continue
        lines.append(replaced.get(key, line))
    lines += [f"topic # both 1 {prefix} dev/{token}/" for prefix, token in prefixes.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Mosquitto:
    """A running Mosquitto: its port and log."""

    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def bridge_connected(self, client_id: str, timeout: float = 30.0) -> None:
        """Wait until the bridge reports itself connected (its local notification topic)."""
        states: queue.Queue[bytes] = queue.Queue()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:6]}")
        client.on_message = lambda _c, _u, m: states.put(bytes(m.payload))
        client.on_connect = lambda c, _u, _f, _rc, _p=None: c.subscribe(f"$SYS/broker/connection/{client_id}/state")
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        try:
            wait_for(lambda: _drain_until(states, b"1"), timeout, 0.05, "the bridge to connect")
        finally:
            client.disconnect()
            client.loop_stop()


def _drain_until(states: queue.Queue[bytes], wanted: bytes) -> bool:
    while not states.empty():
        if states.get_nowait() == wanted:
            return True
    return False


@contextmanager
def running_mosquitto(config: str, workdir: Path) -> Iterator[Mosquitto]:
    """Start Mosquitto with ``config`` (its listener port must be free); stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"mosquitto-{uuid.uuid4().hex[:6]}.conf"
    conf.write_text(config)
    port = int(next(line.split()[1] for line in config.splitlines() if line.startswith("listener ")))
    log = workdir / "mosquitto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, 10, 0.05, "mosquitto to listen")
        assert process.poll() is None, log.read_text()
        yield Mosquitto(port, log, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class LocalDevice:
    """A device on the site's Mosquitto: plain paho, its topics under its local prefix."""

    prefix: str
    port: int
    received: list[tuple[str, bytes]] = field(default_factory=list)
    """Every message received, in order (paho's thread appends)."""

    def __post_init__(self) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"local-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, bytes(m.payload)))

    def connect(self) -> LocalDevice:
        """Connect and subscribe to the device's downlinks."""
        subscribed: queue.Queue[object] = queue.Queue()
        self.client.on_subscribe = lambda *_args: subscribed.put(True)
        self.client.connect("127.0.0.1", self.port, keepalive=60)
        self.client.loop_start()
        self.client.subscribe(f"{self.prefix}downlink/#", qos=1)
        subscribed.get(timeout=10)
        return self

    def publish(self, topic: str, payload: str | bytes, qos: int = 1) -> None:
        self.client.publish(self.prefix + topic, payload, qos=qos).wait_for_publish(10)

    def got(self, relative: str) -> list[bytes]:
        """The payloads received on ``<prefix><relative>`` so far."""
        return [payload for topic, payload in list(self.received) if topic == self.prefix + relative]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


__all__ = ["LocalDevice", "Mosquitto", "bridge_config", "free_port", "running_mosquitto"]
