"""The chaos suite's world (issue #15 item 2): its own PostgreSQL, broker and app processes, a
fleet of QoS 1 devices publishing numbered values, HTTP devices writing numbered values, and a
monitor that follows what is committed, so that a test can kill or stop any part and then say
which acknowledged values reached history, how often, and how long recovery took.

Devices are plain paho clients as Blynk firmware is (token as password, ``clean_session``
True, a fixed client id). paho keeps every QoS 1 publish until its PUBACK and sends the ones
still unacknowledged again (DUP set) after it reconnects, whatever ``clean_session`` says
(paho 2.2 ``_messages_reconnect_reset_out``): that retransmission is what a device library
does, and what the broker's "PUBACK after commit" design relies on. A device holds at most
:data:`WINDOW` unacknowledged values and waits while it has that many (a device whose PUBACKs
are withheld slows down, it does not pile up values without end).

Everything here is loopback and bounded; a monitor thread reads the history's row count a few
times a second (while PostgreSQL is up) and progress lines go straight to the terminal, so a
CI log shows them while the run goes on.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from backend.db.embedded import EmbeddedPostgres
from backend.db.migrate import migrate
from backend.transfer.schemas import DeviceOut
from device_sdk import Backoff, Device
from tests.support.automation_stack import AppConfig
from tests.support.datadir import remove_data_dir
from tests.support.provision import provision
from tests.support.stack import Process, wait_http_ready, wait_port

WINDOW = 20
"""Unacknowledged QoS 1 publishes a device may hold (paho's default ``max_inflight_messages``)."""
SEQ_PIN, HTTP_PIN, BATCH_PINS = 0, 1, (2, 3)
"""The datastreams: the fleet's numbers (``ds/Seq``), ``update``'s and ``batch/update``'s."""

LEAD = 2.0
"""A failure's window starts this long before it: values in flight when it struck count for it."""

Say = Callable[[str], None]


def chaos_doc(devices: int, http_devices: int) -> dict[str, Any]:
    """A template whose datastreams keep every raw value (integers up to 10^9, never clamped
    for these numbers), ``devices`` MQTT devices and ``http_devices`` HTTP ones."""
    suffix = uuid.uuid4().hex[:8]
    streams = [("V0", "Seq"), ("V1", "HttpSeq"), ("V2", "BatchA"), ("V3", "BatchB")]
    return {
        "templates": [
            {
                "name": f"Chaos {suffix}",
                "datastreams": [
                    {"pin": pin, "name": name, "type": "integer", "min": 0, "max": 1_000_000_000, "save_raw": True}
                    for pin, name in streams
                ],
            }
        ],
        "devices": [
            {"name": f"Chaos {suffix} {i}", "template": f"Chaos {suffix}"} for i in range(devices + http_devices)
        ],
    }


# -- the processes ---------------------------------------------------------------------------
class ChaosStack:
    """PostgreSQL (embedded, in ``root``), the broker and one app, each of which a test may
    kill, stop and start again on the same ports."""

    def __init__(self, root: Path, **settings: str) -> None:
        self.root = root
        remove_data_dir(root)
        self.pg = EmbeddedPostgres(root / "pg" / "postgres")
        self.pg.start()
        migrate(self.pg.url())
        env = {f"OPENBLYNK_{k.upper()}": v for k, v in settings.items()}
        self.config = AppConfig(data_dir=root / "stack", database_url=self.pg.url(), extra_env=env)
        self.starts: Counter[str] = Counter()
        self.broker: Process | None = None
        self.app: Process | None = None

    def _process(self, role: str) -> Process:
        self.starts[role] += 1
        return Process(self.config, role, name=f"{role}-{self.starts[role]}")

    def start_broker(self) -> None:
        self.broker = self._process("broker")
        wait_port(self.config.mqtt_port, self.broker)

    def start_app(self) -> None:
        self.app = self._process("app")
        wait_http_ready(self.config, self.app, timeout=120)

    def kill(self, role: str) -> None:
        """SIGKILL the broker or the app."""
        proc = self.broker if role == "broker" else self.app
        assert proc is not None and proc.alive(), f"the {role} is not running"
        proc.stop(signal.SIGKILL)

    def kill_postgres(self) -> None:
        """SIGKILL the postmaster and every process of it at once (a power loss, as far as a
        process can tell: nothing is flushed or shut down)."""
        pid = int((self.pg.cluster / "postmaster.pid").read_text().splitlines()[0])
        children = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _parent_pid(stat) == pid]
        for victim in (pid, *children):
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while self.pg.running() and time.monotonic() < deadline:
            time.sleep(0.05)

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.config.base_url}/healthz", timeout=5).json())

    def logs(self) -> str:
        """The last lines of every process's log (for a failure's message)."""
        out = []
        for path in sorted(self.config.data_dir.glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2500:]}")
        return "\n".join(out)

    def close(self) -> None:
        for proc in (self.app, self.broker):
            if proc is not None:
                proc.stop()
        self.pg.stop()
        remove_data_dir(self.root)


def _parent_pid(stat: Path) -> int | None:
    """The parent's pid from ``/proc/<pid>/stat`` (None if the process is gone)."""
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


# -- the devices -----------------------------------------------------------------------------
@dataclass
class Sent:
    """One numbered value a device published: when, and paho's handle (published = PUBACKed)."""

    seq: int
    at: float
    info: paho.MQTTMessageInfo

    @property
    def acked(self) -> bool:
        """PUBACKed. (``info.is_published()`` raises for a publish made while disconnected,
        whose ``rc`` stays "not connected" although paho keeps it and sends it on reconnect;
        the flag paho sets on its PUBACK is the answer.)"""
        return bool(self.info._published)


class FleetDevice:
    """One MQTT device: a paho client that reconnects by itself (1-2 s apart)."""

    def __init__(self, info: DeviceOut, port: int, acks: list[float]) -> None:
        self.info = info
        self.sent: list[Sent] = []
        self.pending: list[Sent] = []
        self.connected = False
        self.connects = 0
        self.last_ack = 0.0
        self._acks = acks
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"chaos-{info.id}", clean_session=True)
        client.username_pw_set("device", info.token)
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.max_inflight_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        client.connect_async("127.0.0.1", port, keepalive=10)
        client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        if not rc.is_failure:
            self.connected = True
            self.connects += 1

    def _on_disconnect(self, *_args: object) -> None:
        self.connected = False

    def _on_publish(self, *_args: object) -> None:
        # runs in paho's thread with paho's locks held: only note the time (no lock of ours)
        self.last_ack = now = time.monotonic()
        self._acks.append(now)

    def unacked(self) -> int:
        self.pending = [s for s in self.pending if not s.acked]
        return len(self.pending)

    def publish(self, seq: int) -> None:
        sent = Sent(seq, time.monotonic(), self.client.publish("ds/Seq", str(seq), qos=1))
        self.sent.append(sent)
        self.pending.append(sent)

    def acked(self) -> list[Sent]:
        return [s for s in self.sent if s.acked]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SdkDevice:
    """A device on our own library (device_sdk) at QoS 1: its outbox keeps each value until its
    PUBACK and sends again what has none after a reconnect. The library tells how many values
    wait (``pending``), not which: a value counts as acknowledged once nothing waits (the final
    check, after the devices stopped)."""

    def __init__(self, info: DeviceOut, port: int) -> None:
        self.info = info
        self.written: list[tuple[int, float]] = []  # (number, when)
        self.device = Device(
            info.token,
            "127.0.0.1",
            port,
            qos=1,
            client_id=f"chaos-sdk-{info.id}",
            backoff=Backoff(initial=0.2, maximum=1.0),
            outbox_limit=WINDOW,
            outbox_timeout=0.0,
        )
        self.device.connect(timeout=30)

    def write_next(self) -> None:
        """The next number, unless :data:`WINDOW` values wait for their PUBACK."""
        if self.device.pending < WINDOW:
            seq = len(self.written)
            self.written.append((seq, time.monotonic()))
            self.device.write("Seq", seq)

    def close(self) -> None:
        self.device.disconnect()


class Fleet:
    """``devices`` publishing numbers 0, 1, 2, ... at ``rate`` a second each (one thread, the
    devices in turn), each waiting while it holds :data:`WINDOW` unacknowledged values."""

    def __init__(self, infos: list[DeviceOut], port: int, rate: float, sdk_infos: list[DeviceOut]) -> None:
        self.rate = rate
        self.acks: list[float] = []  # times of PUBACKs (list.append is atomic)
        self.devices = [FleetDevice(info, port, self.acks) for info in infos]
        self.sdk = [SdkDevice(info, port) for info in sdk_infos]
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-fleet", daemon=True)

    @property
    def nominal(self) -> float:
        """Values a second the whole fleet publishes when nothing holds it back."""
        return self.rate * len(self.devices)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # seen by the next progress line
            self.error = exc
            raise

    def _publish(self) -> None:
        step = 1 / (self.rate * (len(self.devices) + len(self.sdk)))
        due = time.monotonic()
        while not self._stop.is_set():
            for device in [*self.devices, *self.sdk]:
                due += step
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                if isinstance(device, SdkDevice):
                    device.write_next()
                elif device.unacked() < WINDOW:
                    device.publish(len(device.sent))

    def stop_publishing(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def published(self) -> int:
        return sum(len(d.sent) for d in self.devices) + sum(len(d.written) for d in self.sdk)

    def unacked(self) -> int:
        return sum(d.unacked() for d in self.devices) + sum(d.device.pending for d in self.sdk)

    def connected(self) -> int:
        return sum(d.connected for d in self.devices)

    def acked_since(self, since: float) -> int:
        return sum(1 for t in reversed(self.acks) if t >= since) if self.acks else 0

    def close(self) -> None:
        self.stop_publishing()
        for device in self.devices:
            device.close()
        for sdk in self.sdk:
            sdk.close()


@dataclass
class HttpWrite:
    seq: int
    at: float
    ok: bool


class HttpDevice:
    """A device on the HTTP device API writing numbers 0, 1, 2, ... (``update`` of ``V1``, or
    ``batch/update`` of ``V2`` and ``V3`` together), ``rate`` requests a second; a number whose
    answer was 200 is acknowledged. A refused or unanswered number is not sent again."""

    def __init__(self, info: DeviceOut, base_url: str, batch: bool, rate: float) -> None:
        self.info = info
        self.batch = batch
        self.pins = BATCH_PINS if batch else (HTTP_PIN,)
        self.writes: list[HttpWrite] = []
        self.errors: Counter[str] = Counter()
        self._base_url = base_url
        self._interval = 1 / rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"chaos-http-{info.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path = "/external/api/batch/update" if self.batch else "/external/api/update"
        with httpx.Client(base_url=self._base_url, timeout=5) as http:
            while not self._stop.is_set():
                seq = len(self.writes)
                params = {"token": self.info.token, **{f"V{pin}": str(seq) for pin in self.pins}}
                at = time.monotonic()
                try:
                    status = http.get(path, params=params).status_code
                except httpx.HTTPError as exc:
                    status = 0
                    self.errors[type(exc).__name__] += 1
                if status not in (0, 200):
                    self.errors[f"HTTP {status}"] += 1
                self.writes.append(HttpWrite(seq, at, status == 200))
                self._stop.wait(max(0.0, self._interval - (time.monotonic() - at)))

    def ok(self) -> int:
        return sum(w.ok for w in self.writes)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# -- what is committed -----------------------------------------------------------------------
class Monitor:
    """Reads the fleet's committed row count (``history``, pin :data:`SEQ_PIN`) every 0.25 s
    while PostgreSQL answers; ``samples`` are ``(monotonic time, count)``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int]] = []
        self.db_up = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=2)
                row = conn.execute("SELECT count(*) FROM history WHERE pin = %s", (SEQ_PIN,)).fetchone()
                self.samples.append((time.monotonic(), int(row[0]) if row else 0))
                self.db_up = True
            except psycopg.Error:
                self.db_up = False
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(0.25)
        if conn is not None:
            conn.close()

    def committed(self) -> int:
        """The last count read (rows of the fleet's values in history)."""
        return self.samples[-1][1] if self.samples else 0

    def count_at(self, t: float) -> int | None:
        """The last count read at or before ``t``."""
        before = [c for at, c in self.samples if at <= t]
        return before[-1] if before else None

    def first_growth_after(self, t: float, baseline: int) -> float | None:
        """When the count was first seen above ``baseline`` after ``t``."""
        return next((at for at, c in self.samples if at >= t and c > baseline), None)

    def rate(self, span: float = 2.0) -> float:
        """Rows committed a second over the last ``span`` seconds of samples."""
        if len(self.samples) < 2:
            return 0.0
        end_t, end_c = self.samples[-1]
        older = [(at, c) for at, c in self.samples if at <= end_t - span]
        if not older:
            return 0.0
        start_t, start_c = older[-1]
        return (end_c - start_c) / (end_t - start_t)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def stored_counts(url: str, device_ids: list[int], pin: int) -> dict[int, Counter[int]]:
    """For each device, how many history rows each stored number has (pin ``pin``)."""
    out: dict[int, Counter[int]] = {device_id: Counter() for device_id in device_ids}
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT device_id, value, count(*) FROM history WHERE pin = %s AND device_id = ANY(%s) GROUP BY 1, 2",
            (pin, device_ids),
        ).fetchall()
    for device_id, value, count in rows:
        out[device_id][int(value)] = count
    return out


# -- one failure and what came of it -----------------------------------------------------------
@dataclass
class Window:
    """A stretch of the run: a failure (or the steady start) from ``start`` to ``end``; values
    first published in it are counted for it."""

    kind: str
    start: float
    end: float = 0.0
    restarted: float | None = None
    baseline: int = 0
    first_commit: float | None = None
    full_rate: float | None = None
    lost: int = 0
    lost_http: int = 0
    duplicates: int = 0
    acked: int = 0
    http_acked: int = 0
    notes: list[str] = field(default_factory=list)

    def recovery(self) -> str:
        if self.restarted is None:
            return "no failure"

        def since(t: float | None) -> str:
            return "never" if t is None else f"{t - self.restarted:.1f} s"

        return f"first new commit after {since(self.first_commit)}, fleet at full rate after {since(self.full_rate)}"


@dataclass
class Verdict:
    """What a check of acknowledged values found."""

    acked: int = 0
    lost: list[tuple[int, int]] = field(default_factory=list)  # (device id, number)
    duplicates: int = 0
    http_acked: int = 0
    http_lost: list[tuple[int, int, int]] = field(default_factory=list)  # (device id, pin, number)
    http_duplicates: int = 0


def iter_windows(windows: list[Window], t: float) -> Iterator[Window]:
    """The window a publish time ``t`` falls into (none before the first)."""
    for window in windows:
        if window.start <= t and (window.end == 0.0 or t < window.end):
            yield window


# -- a whole run ---------------------------------------------------------------------------------
class ChaosRun:
    """The stack, the fleet, the HTTP devices and the monitor of one chaos run, with the
    windows of the failures done so far; ``say`` prints a line to the terminal at once."""

    def __init__(
        self,
        root: Path,
        say: Say,
        devices: int,
        rate: float,
        http_rate: float,
        settings: dict[str, str],
        sdk_devices: int = 0,
    ) -> None:
        self.say = say
        self.t0 = time.monotonic()
        self.stack = ChaosStack(root, **settings)
        self.windows: list[Window] = []
        self.fleet: Fleet | None = None
        self.http: list[HttpDevice] = []
        self.monitor: Monitor | None = None
        self._last_progress = 0.0
        self._given_up: set[tuple[object, ...]] = set()
        try:
            infos = provision(self.stack.pg.url(), chaos_doc(devices + sdk_devices, 2)).devices
            http_infos = infos[devices + sdk_devices :]
            self.stack.start_broker()
            self.stack.start_app()
            self.monitor = Monitor(self.stack.pg.url())
            self.fleet = Fleet(
                infos[:devices], self.stack.config.mqtt_port, rate, infos[devices : devices + sdk_devices]
            )
            self.wait_until(lambda: self.fleet is not None and self.fleet.connected() == devices, 60, "the fleet")
            self.fleet.start()
            self.windows.append(Window("steady (no failure)", time.monotonic()))
            base = self.stack.config.base_url
            self.http = [
                HttpDevice(http_infos[0], base, False, http_rate),
                HttpDevice(http_infos[1], base, True, http_rate),
            ]
        except BaseException:
            self.close()
            raise
        self.say(
            f"chaos: {devices} MQTT devices (paho) and {sdk_devices} on device_sdk at {rate:g} values/s each "
            f"(QoS 1, window {WINDOW}), "
            f"2 HTTP devices at {http_rate:g} requests/s (update, batch/update); up after {self.clock():.1f} s"
        )

    # -- time and progress
    def clock(self) -> float:
        return time.monotonic() - self.t0

    def progress(self, force: bool = False) -> None:
        """A status line every 5 s (or now)."""
        now = time.monotonic()
        if not force and now - self._last_progress < 5:
            return
        self._last_progress = now
        fleet, monitor = self.fleet, self.monitor
        assert fleet is not None and monitor is not None
        assert fleet.error is None, f"the fleet's thread failed: {fleet.error!r}"
        acked = len(fleet.acks)
        self.say(
            f"  t={self.clock():6.1f} s  published {fleet.published():6d}  PUBACKed {acked:6d}  "
            f"unacked {fleet.unacked():4d}  committed {monitor.committed():6d}"
            f"  {f'rate {monitor.rate():5.0f}/s' if monitor.db_up else '(database down)'}  "
            f"connected {fleet.connected():2d}/{len(fleet.devices)}  HTTP 200s {sum(h.ok() for h in self.http):5d}"
        )

    def wait_until(self, done: Callable[[], object], timeout: float, what: str) -> bool:
        """Poll ``done`` 4 times a second, printing progress; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                self.say(f"  ... {what}: not within {timeout:.0f} s")
                return False
            self.progress()
            time.sleep(0.25)
        return True

    def hold(self, seconds: float) -> None:
        """Let the fleet run for ``seconds``, printing progress."""
        end = time.monotonic() + seconds
        self.wait_until(lambda: time.monotonic() >= end, seconds + 5, "a pause")

    # -- failures
    def begin(self, kind: str) -> Window:
        """A new window, from :data:`LEAD` s ago (the previous one ends there)."""
        now = time.monotonic()
        start = now - LEAD
        self.windows[-1].end = start
        window = Window(kind, start)
        self.windows.append(window)
        self.say(f"chaos: {kind} at t={self.clock():.1f} s")
        self.progress(force=True)
        return window

    def restarted(self, window: Window) -> None:
        """The failed part was started again now: recovery is timed from here."""
        assert self.monitor is not None
        window.restarted = time.monotonic()
        window.baseline = self.monitor.count_at(window.restarted) or 0
        self.say(f"chaos: restarted at t={self.clock():.1f} s ({window.kind})")

    def recover(self, window: Window, timeout: float = 90) -> bool:
        """Wait until a value is committed after the restart and the fleet is back at its full
        rate (every device connected and PUBACKed since the restart, and commits at 90% of
        the fleet's rate over 2 s); record and print both times. True if the fleet works again
        (a value committed and every device PUBACKed since the restart), at full rate or not:
        the rate a loaded machine reaches is printed, not asserted."""
        fleet, monitor = self.fleet, self.monitor
        assert fleet is not None and monitor is not None and window.restarted is not None
        since = window.restarted

        def full() -> bool:
            if window.first_commit is None:
                window.first_commit = monitor.first_growth_after(since, window.baseline)
            return (
                window.first_commit is not None
                and all(d.connected and d.last_ack >= since for d in fleet.devices)
                and monitor.rate() >= 0.9 * fleet.nominal
            )

        if self.wait_until(full, timeout, f"{window.kind}: the fleet back at full rate"):
            window.full_rate = time.monotonic()
        self.say(f"chaos: {window.kind}: {window.recovery()}")
        return window.first_commit is not None and all(d.last_ack >= since for d in fleet.devices)

    # -- checks
    def verify(self, upto: float, wait: float) -> Verdict:
        """Every value acknowledged so far and published before ``upto`` (MQTT PUBACK, HTTP 200)
        that is in history, waiting up to ``wait`` s for the missing ones; lost values and
        duplicates are counted into the windows they were published in."""
        fleet = self.fleet
        assert fleet is not None
        mqtt = {d.info.id: [s.seq for s in d.acked() if s.at < upto] for d in fleet.devices}
        for sdk in fleet.sdk:  # all its values so far, once none waits (the library tells no more)
            written = list(sdk.written)
            mqtt[sdk.info.id] = [seq for seq, at in written if at < upto] if sdk.device.pending == 0 else []
        http = {h.info.id: [w.seq for w in h.writes if w.ok and w.at < upto] for h in self.http}
        url = self.stack.pg.url()

        def missing() -> Verdict:
            verdict = Verdict()
            counts = stored_counts(url, list(mqtt), SEQ_PIN)
            for device_id, seqs in mqtt.items():
                verdict.acked += len(seqs)
                for seq in seqs:
                    n = counts[device_id][seq]
                    if n == 0:
                        verdict.lost.append((device_id, seq))
                    verdict.duplicates += max(0, n - 1)
            for h in self.http:
                for pin in h.pins:
                    got = stored_counts(url, [h.info.id], pin)[h.info.id]
                    for seq in http[h.info.id]:
                        verdict.http_acked += 1
                        if got[seq] == 0:
                            verdict.http_lost.append((h.info.id, pin, seq))
                        verdict.http_duplicates += max(0, got[seq] - 1)
            return verdict

        result: list[Verdict] = []

        def complete() -> bool:
            try:
                result[:] = [missing()]
            except psycopg.Error:
                return False
            lost = {("mqtt", *v) for v in result[0].lost} | {("http", *v) for v in result[0].http_lost}
            return lost <= self._given_up  # what an earlier check waited for in vain is not awaited again

        self.wait_until(complete, wait, "every acknowledged value in history")
        verdict = result[0] if result else missing()
        self._given_up |= {("mqtt", *v) for v in verdict.lost} | {("http", *v) for v in verdict.http_lost}
        self._attribute(verdict, mqtt, http)
        return verdict

    def _attribute(self, verdict: Verdict, mqtt: dict[int, list[int]], http: dict[int, list[int]]) -> None:
        """Recount the windows' losses and duplicates from a verdict over everything."""
        fleet = self.fleet
        assert fleet is not None
        at = {(d.info.id, s.seq): s.at for d in fleet.devices for s in d.sent}
        at.update({(d.info.id, seq): when for d in fleet.sdk for seq, when in d.written})
        http_at = {(h.info.id, w.seq): w.at for h in self.http for w in h.writes}
        counts = stored_counts(self.stack.pg.url(), list(mqtt), SEQ_PIN)
        for window in self.windows:
            window.lost = window.lost_http = window.duplicates = window.acked = window.http_acked = 0
        for device_id, seqs in mqtt.items():
            for seq in seqs:
                for window in iter_windows(self.windows, at[(device_id, seq)]):
                    window.acked += 1
                    window.duplicates += max(0, counts[device_id][seq] - 1)
        for device_id, seq in verdict.lost:
            for window in iter_windows(self.windows, at[(device_id, seq)]):
                window.lost += 1
        for h in self.http:
            for seq in http[h.info.id]:
                for window in iter_windows(self.windows, http_at[(h.info.id, seq)]):
                    window.http_acked += len(h.pins)
        for device_id, _pin, seq in verdict.http_lost:
            for window in iter_windows(self.windows, http_at[(device_id, seq)]):
                window.lost_http += 1

    def report(self, verdict: Verdict) -> None:
        """One line a window, then the totals."""
        self.say("chaos: results (values counted in the window they were first published in)")
        for w in self.windows:
            self.say(
                f"  {w.kind:<28} MQTT PUBACKed {w.acked:6d}  lost {w.lost:5d}  duplicated {w.duplicates:4d}  "
                f"HTTP 200 {w.http_acked:4d}  lost {w.lost_http:3d}  | {w.recovery()}"
            )
        self.say(
            f"  {'total':<28} MQTT PUBACKed {verdict.acked:6d}  lost {len(verdict.lost):5d}  "
            f"duplicated {verdict.duplicates:4d}  HTTP 200 {verdict.http_acked:4d}  lost {len(verdict.http_lost):3d}  "
            f"duplicated {verdict.http_duplicates}  | run {self.clock():.0f} s"
        )
        if verdict.lost:
            self.say(f"  lost MQTT values (device, number), first 20: {verdict.lost[:20]}")
        if verdict.http_lost:
            self.say(f"  lost HTTP values (device, pin, number), first 20: {verdict.http_lost[:20]}")
        errors = Counter[str]()
        for h in self.http:
            errors.update(h.errors)
        self.say(f"  HTTP errors seen by the devices: {dict(errors) or 'none'}")

    def close(self) -> None:
        for h in self.http:
            h.stop()
        if self.fleet is not None:
            self.fleet.close()
        if self.monitor is not None:
            self.monitor.stop()
        self.stack.close()
