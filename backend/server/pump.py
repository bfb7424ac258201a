"""The ingest loop: the broker's messages in batches through the ingest, each acknowledged to
the broker once the history rows it made are committed."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from operator import attrgetter

from backend.history.writer import AcksAfterCommit, HistoryWriter
from backend.ingest.service import IngestService
from backend.metrics import INGEST_MESSAGES
from backend.tasks import finish
from backend.transport.mqtt import Message, ServiceClient
from broker.topics import match_uplink

log = logging.getLogger(__name__)
INGEST_DRAIN_SECONDS = 30.0
INGEST_BATCH = 500
"""Messages the ingest takes from the broker connection at a time, at most."""


async def ingest_loop(
    mqtt: ServiceClient, ingest: IngestService, history: HistoryWriter, batch: int = INGEST_BATCH
) -> None:
    """Handle the messages in batches of what has arrived (at most ``batch``), then
    acknowledge them to the broker once the history rows they made are committed (see
    backend.transport.mqtt): a crash before that gets them sent again."""
    acks = AcksAfterCommit(history, mqtt.done_all)
    while (messages := await mqtt.take(batch)) is not None:
        _count_kinds(messages)
        await ingest.handle(messages)
        acks.add_all([m.receipt for m in messages if m.receipt is not None])
        # Taking waiting messages does not wait, nor does storing values in the common case:
        # under load this loop would keep the event loop to itself. Let the history writer,
        # the broker thread and HTTP requests have their turn after each batch, and let the
        # writer catch up when it is behind.
        await history.keep_pace()


KIND_CACHE = 4096
"""Device-relative topics whose kind is remembered (the same few, ``ds/<name>``, come from
every device: matching each against the topic table again would cost the ingest more than
counting)."""
_KINDS: dict[str, str] = {}


def message_kind(topic: str) -> str:
    """The kind a message is counted under: its uplink (``value``, ``batch_ds``, ``event``...:
    the lower-case names of ``broker.topics.Uplink``), ``sys_<kind>`` for the broker's own
    (presence, vitals, ping), ``other`` for anything else; a bounded set of labels."""
    parts = topic.split("/", 2)
    if len(parts) == 3 and parts[0] == "d":
        kind = _KINDS.get(parts[2])
        if kind is None:
            found = match_uplink(parts[2])
            kind = found.uplink.name.lower() if found is not None else "other"
            if len(_KINDS) < KIND_CACHE:
                _KINDS[parts[2]] = kind
        return kind
    if len(parts) == 3 and parts[0] == "sys" and parts[1] in ("presence", "vitals", "ping"):
        return f"sys_{parts[1]}"
    return "other"


_KIND_OF_TOPIC: dict[str, str] = {}
TOPIC_CACHE = 65_536
"""Whole topics whose kind is remembered (a busy device's topic comes in every batch)."""
_topic = attrgetter("topic")


def _count_kinds(messages: Sequence[Message]) -> None:
    """Count a batch's messages by kind: the batch's topics are counted in C (a batch holds the
    same few topics many times over), each distinct topic is given its kind once, and each kind
    is one counter update. Classifying every message cost the ingest about 0.2 us a message."""
    kinds: Counter[str] = Counter()
    known = _KIND_OF_TOPIC.get
    for topic, count in Counter(map(_topic, messages)).items():
        kind = known(topic)
        if kind is None:
            kind = message_kind(topic)
            if len(_KIND_OF_TOPIC) < TOPIC_CACHE:
                _KIND_OF_TOPIC[topic] = kind
        kinds[kind] += count
    for kind, count in kinds.items():
        INGEST_MESSAGES.labels(kind).inc(count)


class IngestPump:
    """The ingest loop as a part of the runtime: a task while the app runs."""

    def __init__(self, mqtt: ServiceClient, ingest: IngestService, history: HistoryWriter) -> None:
        self.mqtt, self.ingest, self.history = mqtt, ingest, history
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while the ingest loop runs (started, and neither stopped nor crashed)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._task = asyncio.create_task(ingest_loop(self.mqtt, self.ingest, self.history), name="ingest")

    async def stop(self) -> None:
        """Take no new messages (the broker keeps them) and ingest everything already taken."""
        self.mqtt.pause()
        await self.mqtt.end_of_messages()
        if self._task is not None and not await finish(self._task, INGEST_DRAIN_SECONDS):
            log.error("ingest did not drain within %.0f s; stopped it", INGEST_DRAIN_SECONDS)
