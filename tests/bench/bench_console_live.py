"""Console live latency: from a device's MQTT publish to the value arriving on an open
console WebSocket (`/live`), through the real broker and app processes. Prints figures;
asserts nothing. Issue #6 asks for under 100 ms.

    .venv/bin/python tests/bench/bench_console_live.py [--messages 500] [--rate 20]

A paho client publishes ``ds/Label`` (a string datastream: the value comes back exactly as
sent, so each one is matched to its send time) at ``--rate`` messages a second (QoS 0); a
WebSocket client signed in as the administrator times each value's arrival against the
moment it was handed to paho (one machine, one clock).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import ROOT, progress, scratch_database  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

from backend.db.migrate import migrate  # noqa: E402
from tests.integration.backend.conftest import connect_device  # noqa: E402
from tests.support.accounts import ROOT_ADMIN, Api  # noqa: E402
from tests.support.provision import provision, thermostat_doc  # noqa: E402
from tests.support.stack import StackConfig, running  # noqa: E402


def run(messages: int, rate: float) -> None:
    with scratch_database("bench-console") as url:
        migrate(url)
        config = StackConfig(data_dir=ROOT / ".pytest-data" / "bench-console-stack", database_url=url)
        with running(config):
            info = provision(url, thermostat_doc()).devices[0]
            with Api(config.base_url) as admin:
                admin.login(*ROOT_ADMIN)
                cookie = "; ".join(f"{k}={v}" for k, v in admin.cookies.items())
            device = connect_device(config, info)
            latencies: list[float] = []
            with ws_connect(
                f"ws://127.0.0.1:{config.http_port}/live?devices={info.id}", additional_headers={"Cookie": cookie}
            ) as ws:
                json.loads(ws.recv(10))  # hello
                sent: dict[str, float] = {}
                for i in range(messages):
                    value = f"m{i}"
                    sent[value] = time.perf_counter()
                    device.client.publish("ds/Label", value)
                    deadline = time.perf_counter() + 1 / rate
                    while (left := deadline - time.perf_counter()) > 0:
                        try:
                            msg = json.loads(ws.recv(left))
                        except TimeoutError:
                            break
                        if msg.get("type") == "value" and msg.get("value") in sent:
                            latencies.append((time.perf_counter() - sent.pop(msg["value"])) * 1000)
                    progress("values", i + 1, messages)
            device.client.disconnect()
            device.client.loop_stop()
    lat = sorted(latencies)
    print(f"publish -> console WebSocket, {len(lat)} of {messages} values at {rate:g}/s:")
    print(
        f"  median {statistics.median(lat):.1f} ms, p95 {lat[int(len(lat) * 0.95) - 1]:.1f} ms, "
        f"p99 {lat[int(len(lat) * 0.99) - 1]:.1f} ms, max {lat[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20)
    args = parser.parse_args()
    run(args.messages, args.rate)


if __name__ == "__main__":
    main()
