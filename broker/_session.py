"""Per-session and per-connection records the broker keeps beside amqtt's ``Session``."""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from amqtt.session import Session

from broker._acks import Inflight, Receipt
from broker._framing import FramedReader
from broker._gateway_state import GatewayState
from broker._handler import MountedHandler
from broker._limits import PublishRate
from broker._mailbox import LazyDict, LazyEvent, Mailbox
from broker._outbox import Outbox
from broker._states import SessionStates
from broker._transport import MeteredWriter
from broker.identity import Identity
from broker.namespace import Namespace
from broker.presence import OfflineReason
from broker.topics import DeviceMount

__all__ = ["BrokerSession", "Connection", "KeyedLocks", "Pending"]


@dataclass(frozen=True, slots=True)
class Pending:
    """A message waiting in a session's backlog (not yet given a packet id)."""

    topic: str
    data: bytes | bytearray
    qos: int
    origin: object | None = None
    """The shared group (``broker._shared``) that chose this session, or None."""
    receipt: Receipt | None = None
    """The publisher's withheld PUBACK this copy holds (``broker._acks``), or None."""


class BrokerSession(Session):
    """amqtt ``Session`` that knows its device mount and hashes by identity.

    ``client_id`` holds the broker's *internal* session key (``dev:<id>`` or ``svc:<id>``), so
    amqtt's own bookkeeping (``Broker._sessions``, logs) is keyed by identity, never by the id
    a firmware happened to send; that one is kept in :attr:`client_sent_id`.

    amqtt's ``Session.__eq__`` compares client ids and so makes sessions unhashable; this
    subclass restores identity semantics so sessions can key the subscription index.
    """

    __hash__ = object.__hash__
    __slots__ = (
        "_backlog",
        "attributes_",
        "backlog_dropped",
        "backlog_limit",
        "client_sent_id",
        "connection",
        "gateway",
        "inflight_in_",
        "mount",
        "namespace",
        "receipts",
        "shared_ids_",
        "subscription_limit",
    )  # beside amqtt's __dict__, which they made grow past 1.5 KB (README "Performance")

    # made when first used: a device's session almost never uses them (broker._mailbox)
    attributes = LazyDict[str, Any]()  # amqtt's plugin attributes
    inflight_in = LazyDict[int, Any]()  # type: ignore[assignment]  # QoS 2 received, until PUBREL
    shared_ids = LazyDict[int, tuple[object, str]]()
    """Packet id -> (shared group, broker-side topic) of the messages in ``inflight_out`` a
    shared group gave it (``broker._shared``)."""

    def __init__(self, key: str, mount: DeviceMount | None, client_sent_id: str) -> None:
        self._backlog: deque[Pending] | None = None
        # Session.__init__ (amqtt 0.12.1, pinned; test_broker_amqtt_inits checks that every
        # attribute it sets is here), with mailboxes instead of its two asyncio Queues, which
        # hold memory while empty (broker._mailbox), and dicts instead of its OrderedDicts,
        # which take twice a dict's room (only dict's ordered methods are used): a connect made
        # and dropped the Queues (README "Performance")
        self._init_states()
        self.remote_address = self.remote_port = None
        self.client_id = key
        self.clean_session = None
        self.will_flag = False
        self.will_message = self.will_qos = self.will_retain = self.will_topic = None
        self.keep_alive = self.publish_retry_delay = 0
        self.broker_uri = self.username = self.password = None
        self.cafile = self.capath = self.cadata = None
        self._packet_id = self.parent = 0
        self.last_connect_time = self.ssl_object = self.last_disconnect_time = None
        self.attributes_ = self.inflight_in_ = self.shared_ids_ = None  # LazyDict: made when used
        self.inflight_out = {}  # type: ignore[assignment]
        self.retained_messages = Mailbox()
        self.delivered_message_queue = Mailbox()
        self.is_anonymous = False
        self.mount = mount
        self.gateway: GatewayState | None = None
        """A gateway's tokens and devices (Blynk's MQTT Gateway API); ``None`` for others."""
        self.namespace: Namespace | None = None
        """An integration client's organization namespace (``broker.namespace``); ``None`` for others."""
        self.client_sent_id = client_sent_id
        self.connection: Connection | None = None
        self.backlog_limit = 100_000
        self.backlog_dropped = 0
        """Messages refused because the backlog was full (since the last resume)."""
        self.subscription_limit = 64
        """Topic filters this session may hold (``max_subscriptions`` or its service twin)."""
        self.receipts: dict[int, Receipt] = {}
        """Packet id -> the publisher's withheld PUBACK that the message in ``inflight_out``
        holds (``broker._acks``): this session is a durable sink for it."""

    def __eq__(self, other: object) -> bool:
        return self is other

    @property
    def backlog(self) -> deque[Pending]:
        """QoS 1/2 messages for a persistent session that wait for room: the session is offline,
        or its connection already has ``outbox.limit`` messages on the way. Oldest first. Made
        when first asked for (a device's session never is while it is connected)."""
        if self._backlog is None:
            self._backlog = deque()
        return self._backlog

    @backlog.setter
    def backlog(self, pending: deque[Pending]) -> None:
        self._backlog = pending

    @property
    def durable(self) -> bool:
        """Whether this session is a durable sink (``broker._acks``): a trusted service's
        persistent session (not a device's, a gateway's or an integration client's)."""
        return not self.clean_session and self.mount is None and self.gateway is None and self.namespace is None

    def _init_states(self) -> None:
        """Override: amqtt's session states without a ``transitions.Machine`` each (``broker._states``)."""
        self.transitions = SessionStates(self)  # type: ignore[assignment]


@dataclass(eq=False, slots=True)
class Connection:
    """One network connection of an authenticated client, from CONNACK to close."""

    key: str
    identity: Identity
    session: BrokerSession
    handler: MountedHandler
    reader: FramedReader
    writer: MeteredWriter
    address: str | None
    """The client's address (from the signed PROXY header on the proxy listener)."""
    port: int | None
    keep_alive: int
    transport: str
    """``tcp``, ``tls`` or ``ws``."""
    outbox: Outbox
    rate: PublishRate | None = None
    """The publish rate limit (devices only)."""
    vitals_slot: int | None = None
    """Its place in the broker's ``sys/vitals`` deadlines (``DeliveryBroker.start_vitals``)."""
    drop_ids: set[int] | None = None
    """Packet ids of QoS 2 publishes the rate limit dropped (discarded after the handshake)."""
    inflight: Inflight | None = None
    """Its QoS 1 publishes whose PUBACK waits for a durable sink (``broker._acks``), or None
    when the broker acknowledges on receipt (``BrokerSettings.sink_acks`` off, services)."""
    end_reason: OfflineReason | None = None
    """Set by the broker when *it* ends the connection (replaced, shutdown, protocol error)."""
    offline_sent: bool = False
    closed: bool = False
    finished: asyncio.Event = field(default_factory=LazyEvent)
    listener: str = "default"
    """The amqtt listener it came in on (its connection slot is given back there)."""

    @property
    def mount(self) -> DeviceMount | None:
        """The device mount, or ``None`` for a service connection."""
        return self.session.mount

    @property
    def label(self) -> str:
        """Short text naming this connection in logs (never the token)."""
        return f"{self.key} ({self.address}:{self.port}, client id {self.session.client_sent_id!r})"


class KeyedLocks:
    """Mutual exclusion per key, first come first served; a key is held only while someone
    holds it, and nothing but a dictionary entry is made for a key nobody else waits for.

    The broker holds a client's key from CONNECT to CONNACK. An ``asyncio.Lock`` and an
    ``asynccontextmanager`` a connect were 2-3 % of the broker's time in a storm of connects
    (README "Performance"); almost no connect ever waits here.
    """

    def __init__(self) -> None:
        self._held: dict[str, deque[asyncio.Future[None]] | None] = {}
        """Key -> the futures of those waiting for it, oldest first (None: nobody waits)."""

    def hold(self, key: str) -> _KeyHold:
        """Hold ``key`` for the duration of an ``async with`` block."""
        return _KeyHold(self, key)

    def _release(self, key: str) -> None:
        """Hand ``key`` to the oldest waiter still waiting, or let it go."""
        waiters = self._held[key]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # it holds the key now
                return
        del self._held[key]


class _KeyHold:
    """``async with`` of :meth:`KeyedLocks.hold`."""

    __slots__ = ("_key", "_locks")

    def __init__(self, locks: KeyedLocks, key: str) -> None:
        self._locks, self._key = locks, key

    async def __aenter__(self) -> None:
        held, key = self._locks._held, self._key
        if key not in held:
            held[key] = None
            return
        waiters = held[key]
        if waiters is None:
            waiters = held[key] = deque()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._locks._release(key)  # handed the key as it was cancelled: pass it on
            else:
                with suppress(ValueError):  # a release may have dropped it already
                    waiters.remove(waiter)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._locks._release(self._key)
