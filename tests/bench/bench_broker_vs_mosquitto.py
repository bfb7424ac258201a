"""openblynk against Debian's Mosquitto, side by side, driven by one load client (issue #16).

    .venv/bin/python tests/bench/bench_broker_vs_mosquitto.py [--devices 200] [--messages 500]
        [--window 10] [--idle 10000] [--profile DIR] [--skip-idle]

Starts Mosquitto (``/usr/sbin/mosquitto``, Debian's package; ``.ci/run`` installs it) and
openblynk (its broker and app processes and an embedded PostgreSQL) on free loopback ports, and
drives both with the same load client: ``tests/bench/loadgen.c``, built here with gcc (one
thread, epoll, raw MQTT 3.1.1; it drives Mosquitto far above openblynk's rate, which shows it
is not the limit). Figures, each for both brokers where it applies, and their ratio:

- broker alone: ``--devices`` token devices publish ``--messages`` values each to one QoS 1
  subscriber (openblynk: the service identity on ``d/+/ds/#``, as the app subscribes; Mosquitto:
  the same topics), QoS 1 with ``--window`` values in flight a device, then QoS 0;
- end to end (openblynk): the same devices through the broker and the app to committed history
  rows, QoS 1 and QoS 0; the time of a row is PostgreSQL's commit timestamp
  (``track_commit_timestamp``), so the rate is rows / (last commit - first publish);
- latency at half the end-to-end QoS 1 rate: each value's publish time (the load client's
  clock) to its row's commit timestamp, p50 and p99, and to its PUBACK;
- ``--idle`` devices connected and subscribed to ``downlink/#``: connects a second, broker
  memory a connection (VmRSS growth / connections), then the broker-alone QoS 1 rate with all of
  them connected against the rate with ``--devices`` only.

Blynk's limit of 50 messages a second a device is lifted (OPENBLYNK_DEVICE_RATE_LIMIT), and the
app's session backlog bound too, so that a burst is measured rather than dropped. ``--profile
DIR`` records py-spy profiles of the broker and the app during the QoS 1 phases (and of our broker
during the idle phase's connects) into DIR
(speedscope and raw folded stacks). Loopback only; prints progress and figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psycopg  # noqa: E402
from _support import ROOT  # noqa: E402

from backend.db.embedded import EmbeddedPostgres  # noqa: E402
from backend.db.migrate import migrate  # noqa: E402
from backend.devices.auth import SERVICE_USERNAME  # noqa: E402
from backend.security import Secrets  # noqa: E402
from tests.support.net import free_port, port_open  # noqa: E402
from tests.support.provision import provision  # noqa: E402
from tests.support.stack import TEST_SECRET, Process, StackConfig, wait_http_ready, wait_port  # noqa: E402

MOSQUITTO = Path("/usr/sbin/mosquitto")
LOADGEN = Path(__file__).resolve().parent / "loadgen.c"
WORK = ROOT / ".pytest-data" / "bench-vs-mosquitto"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- the load client -------------------------------------------------------------------------


def build_loadgen() -> Path:
    binary = WORK / "loadgen"
    if not binary.exists() or binary.stat().st_mtime < LOADGEN.stat().st_mtime:
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc is None:
            raise SystemExit("this benchmark builds its load client with gcc (Debian: apt install gcc)")
        subprocess.run([gcc, "-O2", "-o", str(binary), str(LOADGEN)], check=True)
    return binary


@dataclass(frozen=True)
class Client:
    client_id: str
    username: str
    password: str
    clean: bool = True
    subscribe: str | None = None
    topic: str | None = None

    def line(self) -> str:
        return (
            f"{self.client_id} {self.username} {self.password} {int(self.clean)} "
            f"{self.subscribe or '-'} {self.topic or '-'}\n"
        )


@dataclass
class Run:
    sent: int
    acked: int
    received: int
    started: float
    last_ack: float
    last_received: float


class Load:
    """One load client process aimed at one broker's port."""

    def __init__(self, binary: Path, port: int) -> None:
        self.proc = subprocess.Popen([str(binary), str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._groups = 0

    def _cmd(self, line: str) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if not answer or answer[0] not in ("ok", "done"):
            raise RuntimeError(f"load client: {line!r} -> {answer}")
        return answer[1:]

    def connect(self, name: str, clients: Sequence[Client], subscriber: bool = False) -> tuple[int, float]:
        """Connect ``clients`` as group ``name``; (connected, seconds)."""
        path = WORK / f"group-{os.getpid()}-{self.proc.pid}-{name}.txt"
        path.write_text("".join(c.line() for c in clients))
        connected, seconds, failed = self._cmd(f"group {name} {path}")
        path.unlink()
        if int(failed):
            say(f"  {failed} of {len(clients)} clients of {name} could not connect")
        if subscriber:
            self._cmd(f"sub {name}")
        return int(connected), float(seconds)

    def run(
        self,
        name: str,
        messages: int,
        window: int,
        qos: int,
        rate: float = 0,
        expect: int = 0,
        times: Path | None = None,
    ) -> Run:
        out = self._cmd(f"run {name} {messages} {window} {qos} {rate} {expect} {times or '-'}")
        return Run(int(out[0]), int(out[1]), int(out[2]), float(out[3]), float(out[4]), float(out[5]))

    def close(self, name: str) -> None:
        self._cmd(f"close {name}")

    def quit(self) -> None:
        assert self.proc.stdin is not None
        with _quiet():
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        self.proc.wait(30)


@contextmanager
def _quiet() -> Iterator[None]:
    try:
        yield
    except (BrokenPipeError, OSError):
        pass


def read_times(path: Path) -> list[tuple[float, float]]:
    data = path.read_bytes()
    return list(struct.iter_unpack("dd", data))


# ---- the brokers -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) ``pid`` has used so far: unlike a rate, a cost a
    message that other work on the machine moves little."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, who: str, limit: float = 60.0) -> None:
    """Wait until the broker ``pid`` is idle (under a tenth of a core for half a second)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        used = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - used < 0.05:
            return
    say(f"  {who}: the broker was still busy after {limit:.0f} s; going on")


def memory(pid: int) -> int:
    """VmRSS of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@contextmanager
def mosquitto() -> Iterator[tuple[int, int]]:
    """(pid, port) of a fresh Mosquitto; unlimited queues, so that nothing is dropped."""
    if not MOSQUITTO.exists():
        raise SystemExit("Debian's mosquitto is needed (apt install mosquitto; .ci/run installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-mosquitto-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
            "max_connections -1\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        )
        proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)])
        deadline = time.monotonic() + 30
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)
        try:
            yield proc.pid, port
        finally:
            proc.terminate()
            proc.wait(30)


class BenchStack(StackConfig):
    """The test stack without the per-device rate limit and with room for a whole burst."""

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "OPENBLYNK_DEVICE_RATE_LIMIT": "1000000",
            "OPENBLYNK_SESSION_BACKLOG_LIMIT": "10000000",
            "OPENBLYNK_LOG_LEVEL": "WARNING",
        }


@dataclass
class Profiler:
    """py-spy recording one process while a phase runs (``--profile``)."""

    directory: Path | None
    running: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, label: str, pids: dict[str, int]) -> None:
        if self.directory is None:
            return
        spy = Path(sys.executable).parent / "py-spy"
        if not spy.exists():
            raise SystemExit("--profile needs py-spy (pip install py-spy; it is in the [bench] extra)")
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            out = self.directory / f"{label}-{name}.txt"
            cmd = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--output", str(out)]
            self.running.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))

    def stop(self) -> None:
        for proc, out in self.running:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
            say(f"  profile: {out}")
        self.running.clear()


# ---- the database ------------------------------------------------------------------------------


@contextmanager
def database() -> Iterator[str]:
    """A fresh embedded PostgreSQL that keeps each transaction's commit time."""
    pgdir = WORK / "postgres"
    shutil.rmtree(pgdir, ignore_errors=True)
    server = EmbeddedPostgres(pgdir)
    server.start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
        server.stop()
        server.start()
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(pgdir, ignore_errors=True)


def rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM history").fetchone()
    return int(row[0]) if row else 0


def wait_rows(url: str, total: int, stall: float = 15.0) -> int:
    """Wait until ``total`` rows are stored or none came for ``stall`` seconds; the count."""
    count, last_change, last_print = rows(url), time.monotonic(), 0.0
    while count < total and time.monotonic() - last_change < stall:
        time.sleep(0.1)
        now = rows(url)
        if now != count:
            count, last_change = now, time.monotonic()
        if time.monotonic() - last_print >= 1:
            last_print = time.monotonic()
            say(f"  [app] {count:,} of {total:,} rows committed")
    return count


def commits(url: str) -> list[tuple[int, float, float]]:
    """(device_id, value, commit time) of every history row."""
    with psycopg.connect(url) as conn:
        return [
            (int(d), float(v), float(t))
            for d, v, t in conn.execute(
                "SELECT device_id, value, extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM history"
            ).fetchall()
        ]


def truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE history, history_minute, history_hour")


# ---- phases --------------------------------------------------------------------------------------


@dataclass
class Figures:
    values: dict[str, dict[str, float | str]] = field(default_factory=dict)

    def put(self, row: str, who: str, value: float | str) -> None:
        self.values.setdefault(row, {})[who] = value
        say(f"  = {who}, {row.strip()}: {value:,.1f}" if isinstance(value, float) else f"  = {who}, {row}: {value}")


def broker_alone(load: Load, group: str, devices: int, args: argparse.Namespace, qos: int) -> tuple[float, Run]:
    total = devices * args.messages
    run = load.run(group, args.messages, args.window, qos, expect=total)
    end = run.last_received or time.time()
    return run.received / (end - run.started), run


def quantile(values: list[float], q: int) -> float:
    """The ``q``-th percentile."""
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--messages", type=int, default=500, help="values each device sends per run")
    parser.add_argument("--window", type=int, default=10, help="QoS 1 values in flight per device")
    parser.add_argument("--idle", type=int, default=10000, help="connected devices of the idle phase")
    parser.add_argument("--skip-idle", action="store_true", help="leave out the idle-devices phase")
    parser.add_argument("--only", choices=("alone", "e2e", "idle"), action="append", help="run only these phases")
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of the QoS 1 phases here")
    args = parser.parse_args()
    phases = set(args.only or ("alone", "e2e", "idle"))
    if args.skip_idle:
        phases.discard("idle")
    WORK.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.idle + args.devices + 1000  # a descriptor a connection, in each process
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"{needed} open files needed, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    binary = build_loadgen()
    profiler = Profiler(args.profile)
    figures = Figures()
    total = args.devices * args.messages
    n_devices = max(args.devices, args.idle if "idle" in phases else 0)

    # Mosquitto: the same clients, topics as openblynk's broker makes them inside
    mq_devices = [
        Client(f"dev{i}", "device", "x", True, f"d/{i}/downlink/#", f"d/{i}/ds/Temperature") for i in range(n_devices)
    ]
    mq_sub = Client("bench-reference", "service", "x", False, "d/+/ds/#")
    with mosquitto() as (pid, port):
        say(f"Mosquitto on {port}")
        load = Load(binary, port)
        load.connect("sub", [mq_sub], subscriber=True)
        load.connect("dev", mq_devices[: args.devices])
        broker_phases(load, figures, "mosquitto", pid, mq_devices[args.devices : args.idle], args, phases)
        load.quit()

    with database() as url:
        migrate(url)
        say(f"provisioning {n_devices:,} devices")
        doc = {
            "templates": [
                {
                    "name": "Bench",
                    "datastreams": [{"pin": "V0", "name": "Temperature", "type": "double", "save_raw": True}],
                }
            ],
            "devices": [{"name": f"bench-{i}", "template": "Bench"} for i in range(n_devices)],
        }
        provisioned = provision(url, doc).devices
        ours = [Client(f"bench-{d.id}", "device", d.token, True, "downlink/#", "ds/Temperature") for d in provisioned]
        index = {d.id: i for i, d in enumerate(provisioned[: args.devices])}
        ours_sub = Client(
            "bench-reference", SERVICE_USERNAME, Secrets(TEST_SECRET).service_password(), False, "d/+/ds/#"
        )

        if phases & {"alone", "idle"}:
            config = BenchStack(data_dir=WORK / "stack-alone", database_url=url)
            broker = Process(config, "broker")
            try:
                wait_port(config.mqtt_port, broker)
                load = Load(binary, config.mqtt_port)
                load.connect("sub", [ours_sub], subscriber=True)
                load.connect("dev", ours[: args.devices])
                broker_phases(
                    load, figures, "openblynk", broker.proc.pid, ours[args.devices : args.idle], args, phases, profiler
                )
                load.quit()
            finally:
                broker.stop()

        if "e2e" in phases:
            config = BenchStack(data_dir=WORK / "stack-e2e", database_url=url)
            broker = Process(config, "broker")
            app = None
            try:
                wait_port(config.mqtt_port, broker)
                app = Process(config, "app")
                wait_http_ready(config, app)
                load = Load(binary, config.mqtt_port)
                load.connect("dev", ours[: args.devices])
                for qos in (1, 0):
                    truncate(url)
                    say(f"openblynk: end to end, QoS {qos}")
                    if qos == 1:
                        profiler.start("e2e-qos1", {"broker": broker.proc.pid, "app": app.proc.pid})
                    cpu = {who: cpu_seconds(p.proc.pid) for who, p in (("broker", broker), ("app", app))}
                    run = load.run("dev", args.messages, args.window, qos)
                    stored = wait_rows(url, total)
                    profiler.stop()
                    for who, p in (("broker", broker), ("app", app)):
                        used = cpu_seconds(p.proc.pid) - cpu[who]
                        figures.put(
                            f"  CPU a row, end to end QoS {qos}: {who} (us)", "openblynk", used / max(stored, 1) * 1e6
                        )
                    last_commit = max(t for _d, _v, t in commits(url))
                    figures.put(f"end to end, QoS {qos} (rows/s)", "openblynk", stored / (last_commit - run.started))
                    if qos == 1 and run.acked:
                        figures.put("  device PUBACKs (msg/s)", "openblynk", run.acked / (run.last_ack - run.started))
                    if stored < total:
                        figures.put(f"end to end, QoS {qos}: stored", "openblynk", f"{stored:,} of {total:,}")
                e2e = figures.values["end to end, QoS 1 (rows/s)"]["openblynk"]
                assert isinstance(e2e, float)
                latency_phase(load, url, figures, e2e / 2, index, args)
                load.quit()
            finally:
                if app is not None:
                    app.stop()
                broker.stop()
    report(figures, args)


def broker_phases(
    load: Load,
    figures: Figures,
    who: str,
    pid: int,
    idle: Sequence[Client],
    args: argparse.Namespace,
    phases: set[str],
    profiler: Profiler | None = None,
) -> None:
    """The broker-alone phases on a fresh broker whose load client has connected the subscriber
    and ``--devices`` devices: memory and connects with ``idle`` more devices (first, before any
    message has grown the broker's heap), the QoS 1 rate with them, then QoS 1 and QoS 0 without."""
    total = args.devices * args.messages
    if "idle" in phases:
        say(f"{who}: {len(idle):,} more devices connect")
        time.sleep(1)
        before = memory(pid)
        if profiler is not None and who == "openblynk":
            profiler.start("idle-connects", {"broker": pid})
        cpu = cpu_seconds(pid)
        connected, seconds = load.connect("idle", idle)
        cpu = cpu_seconds(pid) - cpu
        if profiler is not None and who == "openblynk":
            profiler.stop()
        time.sleep(1)
        after = memory(pid)
        say(f"  {who}: resident {before / 2**20:.1f} MB, {after / 2**20:.1f} MB with {connected:,} more connections")
        figures.put(f"connects/s ({len(idle):,} devices at once)", who, connected / seconds)
        figures.put("  CPU a connect: broker (us)", who, cpu / max(connected, 1) * 1e6)
        figures.put("broker memory a connection (KB)", who, (after - before) / max(connected, 1) / 1024)
        say(f"{who}: broker alone, QoS 1, {args.devices + connected:,} devices connected")
        rate, _run = broker_alone(load, "dev", args.devices, args, 1)
        figures.put(f"broker alone, QoS 1, {args.devices + len(idle):,} devices connected (msg/s)", who, rate)
        load.close("idle")
        settle(pid, who)  # the next phase must not share the broker with 9,800 disconnects
    if "alone" in phases:
        for qos in (1, 0):
            say(f"{who}: broker alone, QoS {qos}")
            if profiler is not None and qos == 1:
                profiler.start("alone-qos1", {"broker": pid})
            cpu = cpu_seconds(pid)
            rate, run = broker_alone(load, "dev", args.devices, args, qos)
            if profiler is not None:
                profiler.stop()
            figures.put(f"broker alone, QoS {qos} (msg/s)", who, rate)
            figures.put(
                f"  broker CPU a message, alone QoS {qos} (us)",
                who,
                (cpu_seconds(pid) - cpu) / max(run.received, 1) * 1e6,
            )
            if run.received < total:
                figures.put(f"broker alone, QoS {qos}: delivered", who, f"{run.received:,} of {total:,}")


def latency_phase(
    load: Load, url: str, figures: Figures, rate: float, index: dict[int, int], args: argparse.Namespace
) -> None:
    messages = max(10, int(rate * 10 / args.devices))  # about ten seconds
    total = messages * args.devices
    say(f"openblynk: latency at {rate:,.0f} msg/s (half the end-to-end QoS 1 rate), {total:,} values")
    truncate(url)
    times_path = WORK / "times.bin"
    run = load.run("dev", messages, args.window, 1, rate=rate, times=times_path)
    wait_rows(url, total)
    times = read_times(times_path)
    times_path.unlink()
    to_commit = [t - times[index[d] * messages + int(v)][0] for d, v, t in commits(url) if d in index]
    to_ack = [ack - sent for sent, ack in times if ack > 0]
    achieved = run.sent / (max(sent for sent, _ack in times) - run.started)
    figures.put("latency phase: offered rate (msg/s)", "openblynk", achieved)
    if to_commit:
        figures.put("publish -> committed row p50 (ms)", "openblynk", quantile(to_commit, 50) * 1000)
        figures.put("publish -> committed row p99 (ms)", "openblynk", quantile(to_commit, 99) * 1000)
    if to_ack:
        figures.put("publish -> PUBACK p50 (ms)", "openblynk", quantile(to_ack, 50) * 1000)
        figures.put("publish -> PUBACK p99 (ms)", "openblynk", quantile(to_ack, 99) * 1000)


def report(figures: Figures, args: argparse.Namespace) -> None:
    def fmt(value: float | str | None) -> str:
        if value is None:
            return "-"
        if isinstance(value, str):
            return value
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"

    mq_alone = figures.values.get("broker alone, QoS 1 (msg/s)", {}).get("mosquitto")
    print(
        f"\nopenblynk vs Mosquitto, {args.devices} token devices x {args.messages:,} values, "
        f"QoS 1 window {args.window}, one load client (tests/bench/loadgen.c)"
    )
    print(f"{'':62} {'openblynk':>12} {'Mosquitto':>12} {'ratio':>7}")
    order = (
        "broker alone, QoS 1 (",
        "broker alone, QoS 1:",
        "broker alone, QoS 0",
        "  broker CPU",
        "end to end",
        "  device",
        "  CPU a row",
        "latency",
        "publish",
    )

    def rank(row: str) -> int:
        return next((i for i, prefix in enumerate(order) if row.startswith(prefix)), len(order))

    for row, values in sorted(figures.values.items(), key=lambda item: rank(item[0])):
        ours, theirs = values.get("openblynk"), values.get("mosquitto")
        ratio = ""
        if isinstance(ours, float) and isinstance(theirs, float) and theirs:
            ratio = f"{ours / theirs:.2f}x"
        elif row.startswith("end to end, QoS 1 (") and isinstance(ours, float) and isinstance(mq_alone, float):
            ratio = f"{ours / mq_alone:.2f}x"
            theirs = f"({fmt(mq_alone)})"
        print(f"{row:62} {fmt(ours):>12} {fmt(theirs):>12} {ratio:>7}")
    print("(end to end: ratio to Mosquitto's broker-alone QoS 1 rate, in brackets)")


if __name__ == "__main__":
    main()
