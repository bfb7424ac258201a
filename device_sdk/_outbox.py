"""The QoS 1 outbox: every value sent at QoS 1 is kept here, in order, until its PUBACK.

The outbox is the device's side of the server's promise ("a value with a PUBACK is stored"):
a value leaves it only when the server acknowledged it. Values written while offline wait
here; the network thread hands them to paho once connected (see ``Link``). The outbox is
bounded: when it holds ``limit`` values a new one waits for room up to ``full_timeout``
seconds and then raises :class:`OutboxFullError`; nothing is ever dropped to make room.

Locking: the outbox's own condition is the innermost lock; no method here calls into paho.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._exceptions import DeviceTimeoutError, OutboxFullError

MAX_LIMIT = 65_000
"""paho numbers unacknowledged messages with 16-bit packet ids; stay well below 65,535."""


@dataclass(slots=True)
class Entry:
    """One value waiting for its PUBACK."""

    seq: int
    topic: str
    payload: bytes
    mid: int | None = None  # paho's message id once handed to the current client


class Outbox:
    """Values sent at QoS 1 that have no PUBACK yet, oldest first, at most ``limit``."""

    def __init__(self, limit: int, full_timeout: float | None) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"outbox_limit must be within 1..{MAX_LIMIT}, got {limit}")
        if full_timeout is not None and full_timeout < 0:
            raise ValueError(f"outbox_timeout must be >= 0 or None, got {full_timeout}")
        self.limit = limit
        self.full_timeout = full_timeout
        self._cond = threading.Condition()
        self._entries: dict[int, Entry] = {}  # insertion order = seq order
        self._by_mid: dict[int, int] = {}
        self._next_seq = 0
        self._unsubmitted = 0
        self.acknowledged = 0  # how many values got their PUBACK since the device was made

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)

    def put(self, topic: str, payload: bytes, timeout: float | None = -1.0) -> None:
        """Add a value; wait for room up to ``timeout`` s (default: the outbox's own).

        Raises:
            OutboxFullError: The outbox stayed full for the whole wait.
        """
        wait = self.full_timeout if timeout is not None and timeout < 0 else timeout
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._entries) < self.limit, wait):
                raise OutboxFullError(
                    f"the QoS 1 outbox holds {self.limit} values without a PUBACK; {topic!r} was not "
                    f"queued (waited {wait} s). Values are never dropped to make room: connect, "
                    "wait with flush(), or raise outbox_limit"
                )
            seq = self._next_seq
            self._next_seq += 1
            self._entries[seq] = Entry(seq, topic, payload)
            self._unsubmitted += 1

    @property
    def needs_submit(self) -> bool:
        """Whether some value was not handed to the current paho client yet."""
        return self._unsubmitted > 0

    def unsubmitted(self) -> list[Entry]:
        """Values not yet handed to the current paho client, oldest first."""
        with self._cond:
            return [entry for entry in self._entries.values() if entry.mid is None]

    def submitted(self, entry: Entry, mid: int) -> None:
        """``entry`` was handed to paho as message ``mid``."""
        with self._cond:
            if entry.seq in self._entries and entry.mid is None:
                entry.mid = mid
                self._by_mid[mid] = entry.seq
                self._unsubmitted -= 1

    def acked(self, mid: int, success: bool = True) -> Entry | None:
        """paho got the PUBACK for message ``mid``: the value leaves the outbox.

        ``success`` is False for an MQTT 5 PUBACK with a failure reason: paho will not send that
        message again, so the value leaves too, without counting as acknowledged.

        Returns:
            The value's entry, or ``None`` for an id the outbox does not hold (a QoS 0
            message's, or one of a client since replaced).
        """
        with self._cond:
            seq = self._by_mid.pop(mid, None)
            entry = None if seq is None else self._entries.get(seq)
            if seq is None or entry is None or entry.mid != mid:
                return None
            del self._entries[seq]
            self.acknowledged += success
            self._cond.notify_all()
            return entry

    def drop(self, entry: Entry) -> None:
        """Take out a value that was never handed to paho (it can never be sent)."""
        with self._cond:
            if self._entries.pop(entry.seq, None) is not None and entry.mid is None:
                self._unsubmitted -= 1
            self._cond.notify_all()

    def forget_client(self) -> None:
        """The paho client was replaced: every waiting value must be handed to the new one."""
        with self._cond:
            self._by_mid.clear()
            for entry in self._entries.values():
                entry.mid = None
            self._unsubmitted = len(self._entries)

    def wait_empty(self, timeout: float | None, alive: Callable[[], BaseException | None]) -> None:
        """Block until every value has its PUBACK.

        ``alive`` is polled: it returns an error to raise when delivery can no longer happen
        (the device was stopped, or its token refused).

        Raises:
            DeviceTimeoutError: Values were still waiting when ``timeout`` ran out.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._entries:
                error = alive()
                if error is not None:
                    raise error
                remaining = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if remaining <= 0:
                    raise DeviceTimeoutError(
                        f"{len(self._entries)} values still wait for their PUBACK after {timeout} s"
                    )
                self._cond.wait(remaining)
