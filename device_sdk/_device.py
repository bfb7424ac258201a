"""The :class:`Device`: a Blynk device speaking the MQTT device API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import TypeVar, overload

from ._backoff import Backoff
from ._claim import claim_open_payload, new_pin
from ._codec import Value, check_name, encode_batch, encode_mcu_info, encode_scalar, encode_value
from ._connection import Link, LinkConfig
from ._dispatch import Dispatcher
from ._downlinks import DownlinkQueue
from ._endpoint import Endpoint
from ._exceptions import DeviceError
from ._outbox import Outbox
from ._token import AuthToken

F = TypeVar("F", bound=Callable[..., object])


class Device:
    """A Blynk device connected over MQTT to blynk.cloud or an openblynk server.

    The network runs on a background thread that reconnects by itself (exponential backoff
    with jitter) and, on every connection, subscribes ``downlink/#`` and publishes
    ``info/mcu``. Handlers run on that thread: keep them short, and never call
    :meth:`connect` from one. :meth:`write` and friends may be called from any thread.

    Args:
        token: The device auth token (32 characters) or an :class:`AuthToken`.
        host: The server host name.
        port: The server port; defaults to 1883, or 8883 with ``tls``.
        tls: Connect with TLS (verified against the system CAs or ``ca_certs``).
        ca_certs: A PEM file of CA certificates to trust instead of the system ones.
        template_id: The Blynk template ID (``TMPL...``), sent in ``info/mcu``.
        firmware_version: The firmware version, sent in ``info/mcu`` (OTA compares it).
        build: The firmware build date, e.g. ``"Jan 19 2024 12:25:30"``.
        firmware_type: The firmware type the device accepts for OTA; defaults to
            ``template_id``.
        rx_buffer: The largest message in bytes the device accepts, sent in ``info/mcu``.
        keepalive: The MQTT keep-alive in seconds (Blynk recommends 45).
        client_id: The MQTT client ID; empty lets the server choose.
        backoff: The reconnect policy; defaults to :class:`Backoff` ``()``.
        qos: How :meth:`write` and :meth:`write_many` send values unless a call says
            otherwise. ``0`` (the default, as Blynk's own libraries): best effort, at most
            once; sending while offline raises :class:`NotConnectedError`. ``1``: at least
            once; each value is kept in the outbox until the server's PUBACK, values written
            while offline are sent after the next connection, and values without a PUBACK
            are sent again (in order) after a reconnect.
        outbox_limit: The most QoS 1 values kept without a PUBACK (1..65000).
        outbox_timeout: Seconds a QoS 1 write waits for room in a full outbox before it
            raises :class:`OutboxFullError` (``0``: at once; ``None``: wait as long as it
            takes). A value is never dropped to make room.
        mqtt5: Speak MQTT 5 instead of MQTT 3.1.1 (the default). The server's reason codes
            then reach the application: a refused token's CONNACK code in
            :class:`InvalidTokenError`, the reason of a server DISCONNECT in the
            :class:`ConnectionLostError` given to :meth:`on_disconnect` handlers (0x87, token
            revoked, stops the device; 0x89, 0x8E, 0x96, 0x97 and 0x9F make it reconnect
            slowly), and a QoS 1 value the server refused in a PUBACK, or larger than its
            maximum packet size, in a :class:`PublishRefusedError` given to
            :meth:`on_refused` handlers (the value leaves the outbox).

    Raises:
        InvalidTokenError: If ``token`` is malformed.
        ValueError: If another argument is out of range.

    Example:
        >>> device = Device("AbCdEfGhIjKlMnOpQrStUvWxYz012345", template_id="TMPL4xyzABCD")
        >>> device.endpoint.uri
        'mqtt://blynk.cloud:1883'
    """

    def __init__(
        self,
        token: str | AuthToken,
        host: str = "blynk.cloud",
        port: int | None = None,
        *,
        tls: bool = False,
        ca_certs: str | None = None,
        template_id: str | None = None,
        firmware_version: str = "0.0.0",
        build: str | None = None,
        firmware_type: str | None = None,
        rx_buffer: int = 1024,
        keepalive: int = 45,
        client_id: str = "",
        backoff: Backoff | None = None,
        qos: int = 0,
        outbox_limit: int = 1000,
        outbox_timeout: float | None = 0.0,
        mqtt5: bool = False,
    ) -> None:
        self._token = token if isinstance(token, AuthToken) else AuthToken(token)
        self._qos = _check_qos(qos)
        self._outbox = Outbox(outbox_limit, outbox_timeout)
        if not 0 < rx_buffer:
            raise ValueError(f"rx_buffer must be positive, got {rx_buffer}")
        if not 0 <= keepalive <= 65535:
            raise ValueError(f"keepalive must be within 0..65535, got {keepalive}")
        endpoint = Endpoint(host, port if port is not None else (8883 if tls else 1883), tls=tls)
        self._mcu = {
            "template_id": template_id,
            "firmware_version": firmware_version,
            "build": build,
            "firmware_type": firmware_type,
            "rx_buffer": rx_buffer,
        }
        mcu_info = encode_mcu_info(**self._mcu)  # type: ignore[arg-type]
        config = LinkConfig(
            token=self._token,
            endpoint=endpoint,
            ca_certs=ca_certs,
            keepalive=keepalive,
            client_id=client_id,
            backoff=backoff or Backoff(),
            mcu_info=mcu_info,
            mqtt5=mqtt5,
        )
        self._dispatch = Dispatcher()
        self._link = Link(config, self._dispatch, self._outbox)

    @property
    def firmware_version(self) -> str:
        """The firmware version this device reports in ``info/mcu``."""
        return str(self._mcu["firmware_version"])

    @property
    def firmware_type(self) -> str | None:
        """The firmware type this device accepts for OTA (defaults to the template ID)."""
        value = self._mcu["firmware_type"] or self._mcu["template_id"]
        return None if value is None else str(value)

    def set_firmware(self, version: str, build: str | None = None) -> None:
        """Report another firmware version (and build) in ``info/mcu`` from the next
        connection on; call :meth:`reconnect` to report it at once.

        Args:
            version: The new firmware version (``ver``).
            build: The new build date (``build``), e.g. ``"Jan 19 2024 12:25:30"``.

        Raises:
            ValueError: If ``version`` is empty.
        """
        if not version:
            raise ValueError("version must not be empty")
        mcu = {**self._mcu, "firmware_version": version, "build": build}
        self._link.set_mcu_info(encode_mcu_info(**mcu))  # type: ignore[arg-type]
        self._mcu = mcu

    def reconnect(self) -> None:
        """Drop the connection and connect again at once (as a device does after it
        installed new firmware); ``info/mcu`` is published again. No-op when not started."""
        self._link.restart()

    def __repr__(self) -> str:
        return f"<Device {self._link.endpoint.uri} connected={self.connected}>"

    # -- lifecycle ------------------------------------------------------------------------------

    def connect(self, timeout: float | None = 30.0) -> None:
        """Connect and wait until the device can send and receive.

        Starts the network thread, which retries failed attempts with backoff until the
        connection is up and ``downlink/#`` is subscribed. Does nothing if already connected.

        Args:
            timeout: Seconds to wait; ``None`` waits until a connection succeeds.

        Raises:
            InvalidTokenError: The server refused the token (CONNACK 4 or 5). The device does
                not retry.
            ConnectTimeoutError: No connection within ``timeout``; the device stops trying.
        """
        self._link.start()
        try:
            self._link.wait_ready(timeout)
        except DeviceError:
            self._link.stop()
            raise

    def disconnect(self) -> None:
        """Disconnect gracefully and stop the network thread.

        Open :meth:`downlinks` queues are closed. The device can :meth:`connect` again later.
        """
        self._link.stop()
        self._dispatch.close_queues()

    def __enter__(self) -> Device:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    @property
    def connected(self) -> bool:
        """Whether the device is connected and subscribed right now."""
        return self._link.ready

    @property
    def endpoint(self) -> Endpoint:
        """The server in use; it changes when the server sends ``downlink/redirect``."""
        return self._link.endpoint

    @property
    def token(self) -> AuthToken:
        """The device auth token."""
        return self._token

    @property
    def last_ping(self) -> datetime | None:
        """When the server last pinged the device (``downlink/ping``), in UTC, or ``None``."""
        return self._dispatch.last_ping

    @property
    def pending(self) -> int:
        """How many QoS 1 values wait for their PUBACK (written offline, or on their way)."""
        return len(self._outbox)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until every QoS 1 value written so far has its PUBACK (e.g. before deep sleep).

        Returns at once when nothing waits. The device must be connected, or reconnecting.

        Args:
            timeout: Seconds to wait; ``None`` waits as long as it takes.

        Raises:
            DeviceTimeoutError: Values still wait after ``timeout``; they stay in the outbox.
            NotConnectedError: Values wait but the device is not started (call
                :meth:`connect`), or was stopped meanwhile.
            InvalidTokenError: The server refused the token; they can never be delivered.
        """
        self._outbox.wait_empty(timeout, self._link.delivery_error)

    # -- uplink ---------------------------------------------------------------------------------

    def write(self, name: str, value: Value, *, qos: int | None = None) -> None:
        """Send a datastream value (``ds/<name>``).

        Args:
            name: The datastream name, e.g. ``"Temperature"``.
            value: A ``str``, number or ``bool`` (sent as ``1``/``0``); a list or tuple for a
                multi-value datastream (items NUL-separated); or raw ``bytes``.
            qos: ``0`` or ``1`` for this value; ``None`` uses the device's ``qos``. At QoS 1
                the value goes into the outbox (kept until its PUBACK, sent when connected)
                and this returns without waiting for the PUBACK; see :meth:`flush`.

        Raises:
            NotConnectedError: QoS 0 and the device is offline; the value is not queued.
            PublishRefusedError: MQTT 5, QoS 0, and the message is larger than the server's
                maximum packet size; it is not sent.
            OutboxFullError: QoS 1 and the outbox stayed full for ``outbox_timeout``; the
                value is not queued.
            InvalidTokenError: The device stopped because its token was refused.
            ValueError: ``name`` is empty or contains ``/``, ``#``, ``+`` or NUL, or ``value``
                is a non-finite float, or ``qos`` is not 0 or 1.
            TypeError: ``value`` has an unsupported type.
        """
        level = self._qos if qos is None else _check_qos(qos)
        self._link.publish(f"ds/{check_name(name)}", encode_value(value), level)

    def write_many(self, values: Mapping[str, Value], *, qos: int | None = None) -> None:
        """Send several datastream values in one message (``batch_ds``).

        Args:
            values: Datastream name to value. JSON types must match the datastream types:
                ``str``, numbers, ``bool`` and ``[lon, lat]`` for Location. An empty mapping
                sends nothing.
            qos: ``0`` or ``1`` for this message; ``None`` uses the device's ``qos`` (see
                :meth:`write`).

        Raises:
            NotConnectedError: QoS 0 and the device is offline.
            PublishRefusedError: MQTT 5, QoS 0, and the message is larger than the server's
                maximum packet size.
            OutboxFullError: QoS 1 and the outbox stayed full for ``outbox_timeout``.
            ValueError: A name is invalid or a number is not finite, or ``qos`` is not 0 or 1.
            TypeError: A value has an unsupported type.
        """
        level = self._qos if qos is None else _check_qos(qos)
        if values:
            self._link.publish("batch_ds", encode_batch(values), level)

    def log_event(self, code: str, description: str = "") -> None:
        """Log an event defined in the template (``event/<code>``).

        Args:
            code: The event code, e.g. ``"overheat"``.
            description: Text shown with the event; empty uses the template's default.

        Raises:
            NotConnectedError: The device is offline.
            ValueError: ``code`` is not a valid topic level.
        """
        self._link.publish(f"event/{check_name(code, 'event code')}", description.encode())

    def set_meta(self, name: str, value: str | int | float | bool) -> None:
        """Set a device metadata field (``meta/<name>``).

        Args:
            name: The metadata field, e.g. ``"Serial Number"``.
            value: The new value, sent as plain text.

        Raises:
            NotConnectedError: The device is offline.
            ValueError: ``name`` is not a valid topic level.
        """
        self._link.publish(f"meta/{check_name(name, 'metadata name')}", encode_scalar(value).encode())

    def open_claim_window(self, claim_code: str, ttl: int = 300) -> str:
        """Let a user claim this device without a screen (``claim/open``, headless claiming).

        The device must run with a static token that nobody has claimed yet. It sends a fresh
        PIN with a proof that it holds its claim code (the code itself is never sent); for
        ``ttl`` seconds a user who types the device's serial and the PIN in the console claims
        it. Show the PIN to the user (a display, a blink code, a serial console).

        Args:
            claim_code: The static token's claim code (``sqr_...``), flashed with the token.
            ttl: How long the window stays open, 1 to 600 seconds.

        Returns:
            The PIN to show.

        Raises:
            NotConnectedError: The device is offline.
            ValueError: ``ttl`` is out of range.
        """
        pin = new_pin()
        self._link.publish("claim/open", claim_open_payload(claim_code, pin, ttl))
        return pin

    def set_property(self, name: str, prop: str, value: Value) -> None:
        """Change a widget property of a datastream (``ds/<name>/prop/<prop>``).

        Args:
            name: The datastream name.
            prop: The property, e.g. ``"label"``, ``"color"``, ``"isDisabled"``.
            value: The new value, encoded as in :meth:`write`.

        Raises:
            NotConnectedError: The device is offline.
            ValueError: ``name`` or ``prop`` is not a valid topic level.
        """
        topic = f"ds/{check_name(name)}/prop/{check_name(prop, 'property name')}"
        self._link.publish(topic, encode_value(value))

    def sync(self, *names: str) -> None:
        """Ask the server for the latest values of some datastreams (``get/ds``).

        The answers arrive as ordinary writes on ``downlink/ds/<name>`` and reach the same
        handlers.

        Args:
            *names: Datastream names (no commas).

        Raises:
            NotConnectedError: The device is offline.
            ValueError: No name was given, or a name contains a comma.
        """
        if not names:
            raise ValueError("sync() needs at least one datastream name; see sync_all()")
        for name in names:
            if "," in check_name(name):
                raise ValueError(f"datastream name {name!r} contains ',' and cannot be synced")
        self._link.publish("get/ds", ",".join(names).encode())

    def sync_all(self) -> None:
        """Ask for every datastream with "Sync with latest server value" (``get/ds/all``).

        Raises:
            NotConnectedError: The device is offline.
        """
        self._link.publish("get/ds/all", b"")

    # -- downlink -------------------------------------------------------------------------------

    @overload
    def on_write(self, name: str) -> Callable[[F], F]: ...

    @overload
    def on_write(self, name: str, handler: F) -> F: ...

    def on_write(self, name: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Call ``handler(value)`` when the server writes datastream ``name``.

        Works as a decorator (``@device.on_write("Power")``) or a plain call. The value is the
        payload as ``str``; multi-value items are NUL-separated. Several handlers per name run
        in registration order, before :meth:`on_any_write` handlers.

        Args:
            name: The datastream name.
            handler: A callable taking the value; omit it to use the method as a decorator.

        Returns:
            ``handler``, or a decorator that registers and returns its argument.

        Raises:
            ValueError: ``name`` is not a valid datastream name.
        """
        check_name(name)

        def register(fn: F) -> F:
            self._dispatch.add_write(name, fn)
            return fn

        return register if handler is None else register(handler)

    def on_any_write(self, handler: F) -> F:
        """Call ``handler(name, value)`` for every datastream write from the server.

        Args:
            handler: A callable taking the datastream name and the value (both ``str``).

        Returns:
            ``handler``, so this works as a decorator.
        """
        self._dispatch.add(self._dispatch.any_writes, handler)
        return handler

    def on_reboot(self, handler: F) -> F:
        """Call ``handler()`` when the server asks the device to reboot (``downlink/reboot``).

        The library cannot reboot the machine; the handler decides what to do.

        Args:
            handler: A callable taking no arguments.

        Returns:
            ``handler``, so this works as a decorator.
        """
        self._dispatch.add(self._dispatch.reboots, handler)
        return handler

    def on_reconfigure(self, handler: F) -> F:
        """Call ``handler()`` when the server asks the device to re-enter configuration mode.

        Args:
            handler: A callable taking no arguments.

        Returns:
            ``handler``, so this works as a decorator.
        """
        self._dispatch.add(self._dispatch.reconfigures, handler)
        return handler

    def on_diag(self, handler: F) -> F:
        """Call ``handler(text)`` when the server reports a problem (``downlink/diag``).

        Args:
            handler: A callable taking the diagnostic text.

        Returns:
            ``handler``, so this works as a decorator.
        """
        self._dispatch.add(self._dispatch.diags, handler)
        return handler

    def on_connect(self, handler: F) -> F:
        """Call ``handler()`` after every (re)connection, once ``downlink/#`` is subscribed.

        A good place for :meth:`sync` calls.

        Args:
            handler: A callable taking no arguments.

        Returns:
            ``handler``, so this works as a decorator.
        """
        self._dispatch.add(self._dispatch.connects, handler)
        return handler

    def on_disconnect(self, handler: F) -> F:
        """Call ``handler(error)`` when a live connection ends.

        ``error`` is ``None`` after :meth:`disconnect`, else a :class:`ConnectionLostError`
        (the device reconnects by itself). Over MQTT 5 its ``reason_code`` and ``reason`` are
        the server's DISCONNECT reason when it sent one (``0x8E``, ``"Session taken over"``);
        after ``0x87`` (the token was revoked) the device does not reconnect.

        Args:
            handler: A callable taking ``None`` or a :class:`DeviceError`.

        Returns:
            ``handler``, so this works as a decorator.
        """
        self._dispatch.add(self._dispatch.disconnects, handler)
        return handler

    def on_refused(self, handler: F) -> F:
        """Call ``handler(error)`` when the server refused a QoS 1 value (MQTT 5 only).

        ``error`` is a :class:`PublishRefusedError` with the value's topic and payload and the
        PUBACK's reason (``0x87`` a topic the device may not publish, ``0x97`` over the rate
        limit), or ``0x95`` for a value larger than the server's maximum packet size, which is
        not sent. The value has left the outbox and is not sent again; it does not count in
        :attr:`pending`, and :meth:`flush` does not wait for it.

        Args:
            handler: A callable taking a :class:`PublishRefusedError`.

        Returns:
            ``handler``, so this works as a decorator.
        """
        self._dispatch.add(self._dispatch.refusals, handler)
        return handler

    def on_downlink(self, handler: F) -> F:
        """Call ``handler(downlink)`` with every :class:`Downlink`, whatever its topic.

        Useful for topics without a dedicated handler, such as ``downlink/meta/...``,
        ``downlink/utc/all/json`` or ``downlink/ota/json``.

        Args:
            handler: A callable taking a :class:`Downlink`.

        Returns:
            ``handler``, so this works as a decorator.
        """
        self._dispatch.add(self._dispatch.downlinks, handler)
        return handler

    def downlinks(self, maxsize: int = 1000) -> DownlinkQueue:
        """Open a queue that receives every downlink from now on.

        Args:
            maxsize: How many unread messages to keep; newer ones are dropped beyond that.

        Returns:
            A :class:`DownlinkQueue`; iterate it, or use it as a context manager.
        """
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        return self._dispatch.open_queue(maxsize)

    def wait_for_write(self, name: str, timeout: float | None = 10.0) -> str:
        """Wait for the next server write to datastream ``name`` and return its value.

        Only writes that arrive after the call count; to wait for the answer to something you
        send (such as :meth:`sync`), open :meth:`downlinks` before sending instead.

        Args:
            name: The datastream name.
            timeout: Seconds to wait; ``None`` waits indefinitely.

        Returns:
            The value as ``str``.

        Raises:
            DeviceTimeoutError: Nothing arrived in time.
            NotConnectedError: The device was disconnected meanwhile.
        """
        check_name(name)
        with self.downlinks() as inbox:
            return inbox.wait_for_write(name, timeout)


def _check_qos(qos: int) -> int:
    if qos not in (0, 1):
        raise ValueError(f"qos must be 0 or 1, got {qos!r}")
    return qos
