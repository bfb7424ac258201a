"""End-to-end ingest: devices publishing values over MQTT to their rows committed in
PostgreSQL, through the real broker and app processes, side by side with the same devices
publishing to the broker alone, read by one plain QoS 1 subscriber in its own process (the
broker's ceiling for the app's role). Prints figures; asserts nothing.

    .venv/bin/python tests/bench/bench_ingest_e2e.py [--devices 20] [--messages 2000] [--runs 2]

Every device is a paho client of this process sending ``ds/Temperature`` at QoS 1 as fast as
its acknowledgements come back (paho's in-flight window); a run ends when every value is a
committed history row (with the app) or has reached the subscriber (broker alone). Blynk's
limit of 50 messages a second a device is lifted for the benchmark, so that a few clients can
load the server. The publishers, the broker, the app (or the subscriber) and PostgreSQL share
this machine's cores, as they would on a one-box installation.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paho.mqtt.client as paho  # noqa: E402
import psycopg  # noqa: E402
from _support import ROOT, progress, scratch_database  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from backend.db.migrate import migrate  # noqa: E402
from backend.devices.auth import SERVICE_USERNAME  # noqa: E402
from backend.ingest.service import SUBSCRIPTIONS  # noqa: E402
from backend.security import Secrets  # noqa: E402
from backend.transfer.schemas import DeviceOut  # noqa: E402
from tests.support.net import wait_for  # noqa: E402
from tests.support.provision import provision  # noqa: E402
from tests.support.stack import TEST_SECRET, Process, StackConfig, wait_http_ready, wait_port  # noqa: E402

SUBSCRIBER = textwrap.dedent("""
    import sys, threading, time
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    port, username, password, total = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    seen, done, ready = [0], threading.Event(), threading.Event()
    def on_message(c, u, m):
        seen[0] += 1
        if seen[0] == total:
            print(time.time(), flush=True)
            done.set()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-reference", clean_session=False)
    client.username_pw_set(username, password)
    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe("d/+/ds/#", qos=1)
    ready.wait(10)
    print("ready", flush=True)
    done.wait(600)
    client.disconnect()
""")


class BenchStack(StackConfig):
    """A test stack without the per-device message rate limit."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "OPENBLYNK_DEVICE_RATE_LIMIT": "1000000"}


def connect(port: int, device: DeviceOut) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{device.id}")
    client.username_pw_set("device", device.token)
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"device {device.id} could not connect to the broker on {port}")
    return client


def publish_all(clients: list[paho.Client], messages: int) -> float:
    """Every client sends ``messages`` QoS 1 values; when the first was handed to paho."""
    start = time.time()

    def send(client: paho.Client) -> None:
        last = None
        for i in range(messages):
            last = client.publish("ds/Temperature", f"{20 + i % 50 / 10}", qos=1)
        if last is not None:
            last.wait_for_publish(120)

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return start


def history_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM history").fetchone()
    return int(row[0]) if row else 0


def through_app(config: StackConfig, url: str, devices: list[DeviceOut], messages: int) -> float:
    total = len(devices) * messages
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE history, history_minute, history_hour")
    app = Process(config, "app")
    try:
        wait_http_ready(config, app)
        clients = [connect(config.mqtt_port, d) for d in devices]
        start = publish_all(clients, messages)
        wait_for(lambda: history_rows(url) >= total, 300, interval=0.05, message="every value stored")
        elapsed = time.time() - start
        for client in clients:
            client.disconnect()
            client.loop_stop()
    finally:
        app.stop()
    progress("through the app", total, total)
    return total / elapsed


def broker_alone(config: StackConfig, devices: list[DeviceOut], messages: int) -> float:
    total = len(devices) * messages
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SUBSCRIBER,
            str(config.mqtt_port),
            SERVICE_USERNAME,
            Secrets(TEST_SECRET).service_password(),
            str(total),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        if reader.stdout.readline().strip() != "ready":
            raise RuntimeError("the reference subscriber did not subscribe")
        clients = [connect(config.mqtt_port, d) for d in devices]
        start = publish_all(clients, messages)
        last = float(reader.stdout.readline())
        for client in clients:
            client.disconnect()
            client.loop_stop()
    finally:
        reader.wait(30)
    progress("broker alone", total, total)
    return total / (last - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--messages", type=int, default=2000, help="values each device sends per run")
    parser.add_argument("--runs", type=int, default=2, help="runs of each, alternating")
    args = parser.parse_args()
    with scratch_database("bench-ingest-e2e") as url:
        migrate(url)
        doc = {
            "templates": [
                {
                    "name": "Bench",
                    "datastreams": [
                        {"pin": "V0", "name": "Temperature", "type": "double", "min": -40, "max": 85, "save_raw": True}
                    ],
                }
            ],
            "devices": [{"name": f"bench-{i}", "template": "Bench"} for i in range(args.devices)],
        }
        devices = provision(url, doc).devices
        config = BenchStack(data_dir=ROOT / ".pytest-data" / "bench-ingest-e2e-stack", database_url=url)
        broker = Process(config, "broker")
        app_rates: list[float] = []
        alone_rates: list[float] = []
        try:
            wait_port(config.mqtt_port, broker)
            for run in range(args.runs):
                for with_app in (True, False) if run % 2 == 0 else (False, True):
                    if with_app:
                        app_rates.append(through_app(config, url, devices, args.messages))
                    else:
                        alone_rates.append(broker_alone(config, devices, args.messages))
        finally:
            broker.stop()
    total = args.devices * args.messages
    app, alone = statistics.median(app_rates), statistics.median(alone_rates)
    print(
        f"\nend-to-end ingest, {args.devices} devices x {args.messages:,} QoS 1 values ({total:,} a run), "
        f"{args.runs} run(s) of each, median (lowest-highest)"
    )
    print(
        f"  devices -> broker -> app -> committed row  {app:>9,.0f} msg/s   ({min(app_rates):,.0f}-{max(app_rates):,.0f})"
    )
    print(
        f"  devices -> broker -> one subscriber        {alone:>9,.0f} msg/s   "
        f"({min(alone_rates):,.0f}-{max(alone_rates):,.0f})"
    )
    print(f"  with the app / broker alone                {app / alone:>9.0%}")
    print(f"  (the app subscribes to {len(SUBSCRIPTIONS)} topic filters; the reference to d/+/ds/# only)")


if __name__ == "__main__":
    main()
