"""Hypothesis throws random and mutated MQTT at the broker while a good device keeps talking.

Raw sockets (one per example, in a worker thread; the broker runs on the test's event loop)
carry random bytes and valid packet sequences (CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE,
PINGREQ, acks, DISCONNECT) that are truncated, bit-flipped, cut or padded, ending with a clean
half-close, a reset, or a short linger. Meanwhile a paho device publishes a counter at QoS 1
and a service subscriber must receive every value, in order. Afterwards the broker must accept
a new client, hold only the good device, and be back to its baseline of open connections and
asyncio tasks (the memory proxy: nothing per bad client stays behind).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    DictAuthenticator,
    Paho,
    connect_packet,
    eventually,
    packet,
    publish_packet,
    subscribe_packet,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from broker import BrokerSettings, ConnectInfo, DeviceIdentity, MqttBroker, ServiceIdentity

# Tokens far apart: no bit flip or cut of the fuzzer's token can become the good device's.
FUZZ_TOKEN, GOOD_TOKEN, NEW_TOKEN = "fuzz-" + "f" * 27, "G00D" + "g" * 28, "N3W" + "n" * 29
DEVICES = {FUZZ_TOKEN: 6, GOOD_TOKEN: 1, NEW_TOKEN: 2}


class FuzzAuthenticator(DictAuthenticator):
    """The three tokens above, plus the service password."""

    async def authenticate(self, info: ConnectInfo) -> DeviceIdentity | ServiceIdentity | None:
        if info.password == SERVICE_PASSWORD:
            return ServiceIdentity(info.username or "service")
        device = DEVICES.get(info.password or "")
        return DeviceIdentity(device) if device is not None else None


EXAMPLES = 400
"""Examples run, each on its own connection (a count, not a time budget: timings belong in benchmarks)."""
CHECKPOINT = 20
"""The good device publishes once every this many examples, while the fuzzer waits."""
TOPICS = ["ds/T", "ds/Temp/prop/color", "batch_ds", "$SYS/x", "a/+/b", "#", "", "downlink/ds/x", "d/1/ds/T", "x" * 300]
FILTERS = ["downlink/#", "downlink/ds/+", "#", "+/x", "d/1/#", "downlink/#/x", "", "$SYS/#", "downlink/" + "y" * 200]

packet_ids = st.integers(0, 65535)
qos = st.integers(0, 3)
publishes = st.builds(
    lambda topic, payload, q, pid: (
        publish_packet(topic, payload, qos=min(q, 2), packet_id=pid)
        if q < 3
        else packet(0x36, struct.pack("!H", len(topic)) + topic.encode() + payload)
    ),
    st.sampled_from(TOPICS),
    st.binary(max_size=64),
    qos,
    packet_ids,
)
subscribes = st.builds(
    lambda pid, filters, q: subscribe_packet(pid, *filters, qos=q),
    packet_ids,
    st.lists(st.sampled_from(FILTERS), min_size=0, max_size=3),
    qos,
)
unsubscribes = st.builds(
    lambda pid, f: packet(0xA2, struct.pack("!H", pid) + struct.pack("!H", len(f)) + f.encode()),
    packet_ids,
    st.sampled_from(FILTERS),
)
acks = st.builds(
    lambda first, pid: packet(first, struct.pack("!H", pid)), st.sampled_from([0x40, 0x50, 0x62, 0x70]), packet_ids
)
simple = st.sampled_from([b"\xc0\x00", b"\xe0\x00", b"\xd0\x00", b"\x00\x00", b"\xf0\x00"])
connects = st.builds(
    lambda cid, password, keepalive, clean, will: connect_packet(
        cid, username="device", password=password, keepalive=keepalive, clean=clean, will=will
    ),
    st.text(max_size=30),
    st.sampled_from([FUZZ_TOKEN, FUZZ_TOKEN, "bad-token", ""]),
    st.integers(0, 65535),
    st.booleans(),
    st.none() | st.tuples(st.sampled_from(TOPICS), st.binary(max_size=16)),
)


@st.composite
def sessions(draw: st.DrawFn) -> bytes:
    """A plausible session (CONNECT and up to 8 packets), then up to 3 mutations."""
    data = bytearray(draw(connects))
    for part in draw(st.lists(st.one_of(publishes, subscribes, unsubscribes, acks, simple, connects), max_size=8)):
        data += part
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, max(0, len(data) - 1)))
        operation = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if operation == "truncate":
            del data[index:]
        elif operation == "flip" and data:
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[index : index + draw(st.integers(1, 8))]
    return bytes(data)


def talk(port: int, data: bytes, ending: str) -> None:
    """Send ``data`` on a fresh socket and end it the way ``ending`` says; never raises."""
    with socket.socket() as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(data)
            if ending == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if ending == "fin":
                sock.shutdown(socket.SHUT_WR)
            else:
                sock.settimeout(0.02)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # reset by the broker, or our own short linger timed out


def fuzz(port: int, checkpoint: Callable[[int], None]) -> int:
    """Run the hypothesis examples against ``port`` (in a worker thread), calling
    ``checkpoint(done)`` every :data:`CHECKPOINT` examples; the number of examples run."""
    done = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(st.binary(max_size=600), sessions()), st.sampled_from(["fin", "reset", "linger"]))
    def example(data: bytes, ending: str) -> None:
        nonlocal done
        talk(port, data, ending)
        done += 1
        if done % CHECKPOINT == 0:
            checkpoint(done)

    example()
    return done


def running_tasks() -> Counter[str]:
    """How many asyncio tasks run each coroutine (amqtt replaces its broadcast task after every
    message, so tasks are compared by what they run, not by identity)."""
    return Counter(getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks())


async def test_fuzzed_clients_leave_the_broker_and_a_good_device_intact(clients: list[Any]) -> None:
    settings = BrokerSettings(port=0, auth_failures_per_minute=0, connect_timeout=1.0)
    async with MqttBroker(settings, FuzzAuthenticator()) as broker:
        port = broker.port
        loop = asyncio.get_running_loop()

        def paho(**kwargs: Any) -> Paho:
            client = Paho(port, **kwargs)
            clients.append(client)
            return client

        ingest = await paho(client_id="ingest", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
        await ingest.subscribe("d/1/ds/#", qos=1)
        good = await paho(username="device", password=GOOD_TOKEN).connect()
        assert broker.open_connections() == 2
        await good.publish("ds/Counter", "0", qos=1)
        sent = [0]

        def received() -> list[bytes]:
            return [m.payload for m in list(ingest.messages) if m.topic == "d/1/ds/Counter"]

        await eventually(lambda: received() == [b"0"], message="the first counter value")
        before = running_tasks()  # every kind of task two clients and a delivery need exists by now

        def checkpoint(done: int) -> None:
            """In the fuzzer's thread: the good device publishes (on the broker's loop) and is acknowledged."""
            asyncio.run_coroutine_threadsafe(good.publish("ds/Counter", str(done), qos=1), loop).result(timeout=30)
            sent.append(done)

        examples = await asyncio.to_thread(fuzz, port, checkpoint)
        assert examples == EXAMPLES and sent == list(range(0, EXAMPLES + 1, CHECKPOINT))
        expected = [str(n).encode() for n in sent]
        await eventually(lambda: len(received()) >= len(sent), timeout=10, message="every counter value")
        assert received() == expected, "the good device lost or reordered messages"
        await eventually(lambda: broker.open_connections() == 2, timeout=10, message="fuzz connections closed")
        assert broker.connected_devices() == {1}
        newcomer = await paho(username="device", password=NEW_TOKEN).connect()
        assert broker.connected_devices() == {1, 2}
        await newcomer.close()
        await eventually(lambda: broker.connected_devices() == {1}, message="newcomer gone")
        assert set(broker.session_queues()) == {"svc:ingest", "dev:1"}
        await good.close()
        await ingest.close()
        await eventually(lambda: broker.open_connections() == 0, timeout=10, message="every connection closed")
        await eventually(
            lambda: not running_tasks() - before,
            timeout=10,
            message="no more tasks of any kind than before the fuzzing",
        )
