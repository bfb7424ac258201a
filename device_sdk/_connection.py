"""The network thread: one paho client per endpoint, reconnects, redirects, the QoS 1 outbox.

paho's own ``loop_forever`` retries with a fixed doubling delay and cannot change host or
transport between attempts, so this module runs the loop itself: it connects a client for the
current :class:`Endpoint`, pumps :meth:`paho.mqtt.client.Client.loop` until the connection
ends, then decides whether to stop, follow a ``downlink/redirect`` or back off and retry.

While the network thread runs, the same paho client is connected again after a loss, as long
as the endpoint stays the same:
paho keeps every QoS 1 publish until its PUBACK and, on reconnecting, sends the unacknowledged
ones again with DUP set and their packet ids, in order (paho 2.x
``_messages_reconnect_reset_out``; it does so with ``clean_session=True`` too). A new client
(another endpoint after a redirect, or a new network thread after ``stop()`` and ``start()``)
would not know them, so the values waiting in the :class:`Outbox` are handed to it again, in
order.

With ``mqtt5`` the client speaks MQTT 5 and the server's reason codes steer the link
(:mod:`device_sdk._mqtt5`): a server DISCONNECT's reason reaches ``on_disconnect`` and the
reconnect policy, a PUBACK with a failure reason takes the value out of the outbox and reaches
``on_refused``. MQTT 3.1.1 (the default) is unchanged.

Who hands values to paho: the thread that calls :meth:`Link.publish` while the link is ready,
else the network thread once it is ready again; always under ``_submit_lock``, oldest first, so
the order of writes is the order on the wire. PUBACKs are noted by paho's callback and applied
to the outbox under the same lock, after the message id is recorded.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from . import _mqtt5
from ._backoff import Backoff
from ._endpoint import Endpoint
from ._exceptions import (
    ConnectionLostError,
    ConnectTimeoutError,
    DeviceError,
    InvalidTokenError,
    NotConnectedError,
    PublishRefusedError,
)
from ._outbox import Entry, Outbox
from ._token import AuthToken

logger = logging.getLogger("device_sdk")

DOWNLINK_FILTER = "downlink/#"
REDIRECT_TOPIC = "downlink/redirect"
INFO_REQUEST_TOPIC = "downlink/get/info/mcu"
"""openblynk's console asks for ``info/mcu`` again ("Request info"); not a Blynk topic."""
USERNAME = "device"
_LOOP_TIMEOUT = 1.0  # seconds per select(); publish() and disconnect() wake it early
_DISCONNECT_GRACE = 2.0  # seconds to flush DISCONNECT before dropping the socket
_MAX_QUICK_REDIRECTS = 3  # follow this many redirects in a row at once, then back off


class Session(Protocol):
    """What the link reports to its owner; called on the network thread."""

    def connected(self) -> None:
        """The connection is up and ``downlink/#`` is subscribed."""

    def disconnected(self, error: DeviceError | None) -> None:
        """A connection that was up has ended (``None``: because it was asked to)."""

    def message(self, topic: str, payload: bytes, qos: int) -> None:
        """A message arrived."""

    def refused(self, error: PublishRefusedError) -> None:
        """MQTT 5: the server refused a QoS 1 value, or it was too large to send."""


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Everything needed to open a connection."""

    token: AuthToken
    endpoint: Endpoint
    ca_certs: str | None
    keepalive: int
    client_id: str
    backoff: Backoff
    mcu_info: bytes
    mqtt5: bool = False


class _Outcome(enum.Enum):
    FAILED = "failed"  # no connection was established
    LOST = "lost"  # it was up, then it dropped
    REDIRECTED = "redirected"
    REFUSED = "refused"  # the token was refused; never retry
    SLOWED = "slowed"  # MQTT 5: the server ended the connection asking the device to slow down
    RESTARTED = "restarted"  # asked to reconnect at once (e.g. after a firmware update)
    STOPPED = "stopped"


class Link:
    """Owns the network thread and the current paho client."""

    def __init__(self, config: LinkConfig, session: Session, outbox: Outbox) -> None:
        self._config = config
        self._session = session
        self._outbox = outbox
        self._paho: mqtt.Client | None = None  # kept across reconnects to the same endpoint
        self._paho_endpoint: Endpoint | None = None
        self._submit_lock = threading.Lock()
        # message ids paho reported acknowledged, with the reason of an MQTT 5 failure
        self._acks: deque[tuple[int, ReasonCode | None]] = deque()
        self._refusals: deque[PublishRefusedError] = deque()  # for Session.refused, network thread
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._running = False
        self._ready = False
        self._endpoint = config.endpoint
        self._fatal: InvalidTokenError | None = None
        self._last_error: BaseException | None = None
        self._redirect_to: Endpoint | None = None
        self._lost_reason = ""
        self._server_reason: ReasonCode | None = None  # MQTT 5: the server's DISCONNECT reason
        self._max_packet: int | None = None  # MQTT 5: CONNACK maximum_packet_size
        self._subscribe_mid: int | None = None
        self._restart = threading.Event()

    # -- called from user threads -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the connection is up and subscribed."""
        return self._ready

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint in use (changes on ``downlink/redirect``)."""
        return self._endpoint

    def start(self) -> None:
        """Start the network thread unless it runs already."""
        with self._cond:
            if self._running and not self._stop.is_set():
                return
            previous = self._thread
        if previous is not None and previous is not threading.current_thread():
            previous.join()
        with self._cond:
            self._stop.clear()
            self._running = True
            self._fatal = None
            self._last_error = None
            self._endpoint = self._config.endpoint
            self._thread = threading.Thread(target=self._run, name=f"device_sdk {self._endpoint.host}", daemon=True)
            self._thread.start()

    def wait_ready(self, timeout: float | None) -> None:
        """Block until the connection is usable.

        Raises:
            InvalidTokenError: The server refused the token.
            NotConnectedError: The link was stopped meanwhile.
            ConnectTimeoutError: ``timeout`` passed first.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._ready or not self._running, timeout)
            ready, running, fatal = self._ready, self._running, self._fatal
            last_error = self._last_error
        if ready:
            return
        if fatal is not None:
            raise _mqtt5.copy(fatal)
        if not running:
            raise NotConnectedError("the device was stopped before it connected")
        cause = f" (last error: {last_error})" if last_error else ""
        raise ConnectTimeoutError(f"no connection to {self._endpoint.uri} within {timeout} s{cause}") from last_error

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect gracefully and end the network thread (no-op if not running)."""
        self._stop.set()
        with self._cond:
            client, thread = self._client, self._thread
        if client is not None:
            client.disconnect()  # thread-safe; wakes the network thread's select()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def set_mcu_info(self, mcu_info: bytes) -> None:
        """Use ``mcu_info`` on every later connection."""
        with self._cond:
            self._config = dataclasses.replace(self._config, mcu_info=mcu_info)

    def restart(self) -> None:
        """Close the live connection and open a new one at once (no-op when not running)."""
        with self._cond:
            client = self._client if self._running else None
        if client is not None:
            self._restart.set()
            client.disconnect()  # thread-safe; wakes the network thread's select()

    def publish(self, topic: str, payload: bytes, qos: int = 0, timeout: float | None = -1.0) -> None:
        """Publish on the live connection (QoS 0), or through the outbox (QoS 1).

        At QoS 1 the value is kept until its PUBACK, whether or not the link is up; it goes out
        now if the link is ready, else once it is. ``timeout`` is how long to wait for room in
        a full outbox (negative: the outbox's own setting).

        Raises:
            InvalidTokenError: The link stopped because the token was refused.
            NotConnectedError: QoS 0 and there is no live connection.
            OutboxFullError: QoS 1 and the outbox stayed full.
        """
        if qos == 1:
            if self._fatal is not None:
                raise _mqtt5.copy(self._fatal)
            self._outbox.put(topic, payload, timeout)
            if self._ready:
                self._submit()
            return
        if qos != 0:
            raise ValueError(f"qos must be 0 or 1, got {qos}")
        with self._cond:
            client = self._client if self._ready else None
            fatal = self._fatal
        if client is None:
            if fatal is not None:
                raise _mqtt5.copy(fatal)
            raise NotConnectedError(f"not connected; {topic!r} was not sent")
        too_large = self._too_large(topic, payload, qos)
        if too_large is not None:
            raise too_large
        info = client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise NotConnectedError(f"{topic!r} was not sent: {mqtt.error_string(info.rc)}")

    def delivery_error(self) -> BaseException | None:
        """Why values in the outbox can no longer reach the server, if they cannot."""
        if self._fatal is not None:
            return _mqtt5.copy(self._fatal)
        if not self._running:
            return NotConnectedError(
                f"{len(self._outbox)} values wait for their PUBACK but the device is not connected"
            )
        return None

    def _submit(self) -> None:
        """Apply the PUBACKs seen so far, then hand every waiting value to paho, oldest first."""
        with self._submit_lock:
            self._apply_acks()
            client = self._paho
            if client is None or not self._ready or not self._outbox.needs_submit:
                return
            for entry in self._outbox.unsubmitted():
                too_large = self._too_large(entry.topic, entry.payload, 1)
                if too_large is not None:
                    self._outbox.drop(entry)
                    self._refusals.append(too_large)
                    continue
                info = client.publish(entry.topic, entry.payload, qos=1)
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    # NO_CONN still keeps the message in paho for the next connection; any other
                    # code leaves the value (and all after it, to keep the order) for later.
                    logger.warning("paho did not take %r: %s; retrying later", entry.topic, mqtt.error_string(info.rc))
                    return
                self._outbox.submitted(entry, info.mid)

    def _apply_acks(self) -> None:
        """Under ``_submit_lock``: every id a PUBACK came for was recorded before, so none is missed."""
        while self._acks:
            mid, failure = self._acks.popleft()
            entry = self._outbox.acked(mid, success=failure is None)
            if failure is not None and entry is not None:
                self._refusals.append(_refusal(entry, failure))

    def _too_large(self, topic: str, payload: bytes, qos: int) -> PublishRefusedError | None:
        """MQTT 5: the error for a message above the server's ``maximum_packet_size``, if it is."""
        limit = self._max_packet
        size = _mqtt5.publish_size(topic, payload, qos) if limit is not None else 0
        if limit is None or size <= limit:
            return None
        message = f"{topic!r} was not sent: {size} bytes, above the server's maximum packet size of {limit}"
        return PublishRefusedError(message, topic, payload, _mqtt5.PACKET_TOO_LARGE, "Packet too large")

    def _report_refusals(self) -> None:
        """On the network thread: hand the refused values to the application."""
        while self._refusals:
            error = self._refusals.popleft()
            logger.warning("%s", error)
            self._session.refused(error)

    # -- the network thread -------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._config.backoff
        attempt = 0
        quick_redirects = 0
        try:
            while not self._stop.is_set():
                outcome, uptime = self._connect_once()
                if outcome in (_Outcome.STOPPED, _Outcome.REFUSED):
                    return
                if outcome is _Outcome.RESTARTED:
                    attempt = quick_redirects = 0
                    continue
                if outcome is _Outcome.SLOWED:
                    attempt = max(attempt, _mqtt5.SLOW_DOWN_ATTEMPT)
                if outcome is _Outcome.REDIRECTED and quick_redirects < _MAX_QUICK_REDIRECTS:
                    quick_redirects += 1
                    attempt = 0
                    continue
                if outcome is _Outcome.LOST and uptime >= backoff.reset_after:
                    attempt = quick_redirects = 0
                delay = backoff.delay(attempt)
                attempt += 1
                logger.info("reconnecting to %s in %.1f s", self._endpoint.uri, delay)
                if self._stop.wait(delay):
                    return
        except Exception:  # a bug; say so rather than dying silently
            logger.exception("device_sdk network thread failed")
        finally:
            with self._submit_lock:
                # The client goes with its thread (dropping it closes paho's socket pair); the
                # values still waiting stay in the outbox for the next connect().
                self._apply_acks()
                self._paho = self._paho_endpoint = None
                self._acks.clear()
                self._outbox.forget_client()
            self._report_refusals()
            with self._cond:
                self._running = False
                self._ready = False
                self._client = None
                self._cond.notify_all()

    def _connect_once(self) -> tuple[_Outcome, float]:
        endpoint = self._endpoint
        self._redirect_to = None
        self._lost_reason = f"connection to {endpoint.uri} lost"
        self._server_reason = None
        self._max_packet = None
        with self._submit_lock:  # no PUBLISH may be queued between paho's reset and its CONNECT
            self._apply_acks()
            client = self._paho
            if client is None or self._paho_endpoint != endpoint:
                client = self._paho = self._new_client(endpoint)
                self._paho_endpoint = endpoint
                self._acks.clear()
                self._outbox.forget_client()
            try:
                if self._config.mqtt5:  # Blynk supports clean sessions only
                    client.connect(endpoint.host, endpoint.port, keepalive=self._config.keepalive, clean_start=True)
                else:
                    client.connect(endpoint.host, endpoint.port, keepalive=self._config.keepalive)
            except (OSError, ValueError, mqtt.WebsocketConnectionError) as exc:
                _close_sockets_in_traceback(exc)
                self._last_error = exc
                logger.warning("cannot connect to %s: %s", endpoint.uri, exc)
                return _Outcome.FAILED, 0.0
        with self._cond:
            self._client = client
        started = time.monotonic()
        try:
            self._pump(client)
        finally:
            with self._cond:
                was_ready, self._ready, self._client = self._ready, False, None
                self._cond.notify_all()
        uptime = time.monotonic() - started
        server = self._server_reason
        if server is not None and _mqtt5.after_disconnect(server.value) is _mqtt5.Next.STOP:
            self._fatal = _mqtt5.revoked_token(server)
            logger.error("%s", self._fatal)
        outcome = self._classify(was_ready)
        self._report_refusals()
        if was_ready:
            asked = outcome in (_Outcome.STOPPED, _Outcome.RESTARTED)
            code, name = (None, None) if server is None else (server.value, server.getName())
            lost = None if asked else ConnectionLostError(self._lost_reason, code, name)
            self._session.disconnected(lost)
        return outcome, uptime

    def _classify(self, was_ready: bool) -> _Outcome:
        if self._fatal is not None:
            return _Outcome.REFUSED
        if self._stop.is_set():
            return _Outcome.STOPPED
        if self._restart.is_set():
            self._restart.clear()
            return _Outcome.RESTARTED
        if self._redirect_to is not None:
            logger.info("redirected from %s to %s", self._endpoint.uri, self._redirect_to.uri)
            self._endpoint = self._redirect_to
            return _Outcome.REDIRECTED
        server = self._server_reason
        if server is not None and _mqtt5.after_disconnect(server.value) is _mqtt5.Next.SLOW_DOWN:
            return _Outcome.SLOWED
        return _Outcome.LOST if was_ready else _Outcome.FAILED

    def _pump(self, client: mqtt.Client) -> None:
        """Run paho's loop until the socket closes; disconnect when asked to stop or move."""
        closing_since: float | None = None
        while client.socket() is not None:  # paho closes it on DISCONNECT and on errors
            try:
                rc = client.loop(timeout=_LOOP_TIMEOUT)
            except Exception as exc:  # paho raises on some transport errors (e.g. WebSocket)
                self._last_error = exc
                self._lost_reason = f"network error: {exc}"
                return
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            if self._acks or (self._ready and self._outbox.needs_submit):
                self._submit()
            if self._refusals:
                self._report_refusals()
            if self._stop.is_set() or self._redirect_to is not None or self._restart.is_set():
                if closing_since is None:
                    closing_since = time.monotonic()
                    client.disconnect()
                elif time.monotonic() - closing_since > _DISCONNECT_GRACE:
                    return

    def _new_client(self, endpoint: Endpoint) -> mqtt.Client:
        config = self._config
        if config.mqtt5:  # MQTT 5 asks for a clean start in CONNECT (see _connect_once)
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=config.client_id,
                protocol=MQTTProtocolVersion.MQTTv5,
                transport=endpoint.transport,
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=config.client_id,
                clean_session=True,  # Blynk supports clean sessions only
                protocol=MQTTProtocolVersion.MQTTv311,
                transport=endpoint.transport,
            )
        client.username_pw_set(USERNAME, config.token.value)
        if endpoint.tls:
            context = ssl.create_default_context(cafile=config.ca_certs)
            context.minimum_version = ssl.TLSVersion.TLSv1_2  # Blynk refuses TLS 1.0/1.1
            client.tls_set_context(context)
        if endpoint.websocket_path is not None:
            client.ws_set_options(path=endpoint.websocket_path)
        client.enable_logger(logging.getLogger("device_sdk.paho"))
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # Without paho's own thread, publish() from another thread would write to the socket
        # directly, racing this loop. Registering a write hook (paho's external-loop API) makes
        # paho queue the packet and wake our select() instead, as under loop_start().
        client.on_socket_register_write = _ignore
        return client

    # -- paho callbacks (network thread) -------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, props: Any) -> None:
        mqtt5 = self._config.mqtt5
        if reason.is_failure:
            name = _mqtt5.describe(reason) if mqtt5 else reason.getName()
            if reason.getName() in _mqtt5.TOKEN_REFUSED:
                logger.error("the server refused the auth token (%s); not retrying", name)
                self._fatal = _mqtt5.refused_token(reason, mqtt5)
            else:
                self._last_error = ConnectionRefusedError(f"CONNACK: {name}")
                logger.warning("connection to %s refused: %s", self._endpoint.uri, name)
            return
        if mqtt5:
            self._max_packet = getattr(props, "MaximumPacketSize", None)
        logger.info("connected to %s", self._endpoint.uri)
        # QoS 1 so that downlink/ping arrives as QoS 1 and paho answers it with PUBACK.
        _rc, self._subscribe_mid = client.subscribe(DOWNLINK_FILTER, qos=1)
        client.publish("info/mcu", self._config.mcu_info)

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, codes: list[ReasonCode], _props: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        if any(code.is_failure for code in codes):
            logger.warning("the server refused the %s subscription", DOWNLINK_FILTER)
        with self._cond:
            self._ready = True
            self._cond.notify_all()
        self._session.connected()

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any) -> None:
        # paho holds its message lock here: only note the id; _submit() applies it.
        self._acks.append((mid, reason if self._config.mqtt5 and reason.is_failure else None))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        if msg.topic == REDIRECT_TOPIC:
            self._redirect(payload)
        elif msg.topic == INFO_REQUEST_TOPIC:
            _client.publish("info/mcu", self._config.mcu_info)
        self._session.message(msg.topic, payload, msg.qos)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any) -> None:
        if flags.is_disconnect_packet_from_server:  # MQTT 5: the server said why
            self._server_reason = reason
            self._lost_reason = f"the server ended the connection to {self._endpoint.uri}: {_mqtt5.describe(reason)}"
        elif reason.is_failure and reason.getName() != "Unspecified error":
            self._lost_reason = f"connection to {self._endpoint.uri} lost: {reason.getName()}"

    def _redirect(self, payload: bytes) -> None:
        uri = payload.decode("utf-8", errors="replace")
        try:
            target = Endpoint.parse(uri)
        except ValueError as exc:
            logger.warning("ignoring downlink/redirect %r: %s", uri, exc)
            return
        if target == self._endpoint:
            return
        self._lost_reason = f"redirected to {target.uri}"
        self._redirect_to = target  # _pump() disconnects; _run() connects to the new endpoint


def _refusal(entry: Entry, reason: ReasonCode) -> PublishRefusedError:
    message = f"the server refused {entry.topic!r} ({_mqtt5.describe(reason)}); it is not sent again"
    return PublishRefusedError(message, entry.topic, entry.payload, reason.value, reason.getName())


def _close_sockets_in_traceback(exc: BaseException) -> None:
    """Close sockets that paho created but never stored because a handshake failed.

    When the TLS or WebSocket handshake fails inside ``Client.connect()``, the connected socket
    lives only in paho's stack frames; it would otherwise stay open until garbage collection.
    """
    tb = exc.__traceback__
    while tb is not None:
        for value in list(tb.tb_frame.f_locals.values()):
            if isinstance(value, socket.socket):
                value.close()
        tb = tb.tb_next


def _ignore(*_args: object) -> None:
    """A paho callback that does nothing."""
