"""Reading and checking the first packet of a connection, before anything else happens.

amqtt's ``BrokerProtocolHandler.init_from_connect`` hides the client id the firmware sent
(an empty id is replaced by a random one) and its callers touch session state before
authentication. This module decodes the CONNECT (a plainly well-formed 3.1.1 one itself,
:func:`plain_connect`; anything else with amqtt's codec) and returns a plain
:class:`ConnectRequest`; nothing in the broker changes until the request is authenticated.

Protocol versions: MQTT 3.1.1 (level 4) and MQTT 5 (level 5). The protocol name and level are
read from the raw first packet before decoding: an MQTT 5 CONNECT is decoded with
:mod:`broker.mqtt5` and its request carries a :class:`~broker._v5.V5Link` that translates the
rest of the connection (a malformed one gets CONNACK 0x81/0x82, enhanced authentication 0x8C);
anything else (MQTT 3.1 ``MQIsdp`` level 3, unknown levels) gets CONNACK ``20 02 00 01`` and
the connection is closed.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass

from amqtt.adapters import WriterAdapter
from amqtt.mqtt.connack import (
    BAD_USERNAME_PASSWORD,
    IDENTIFIER_REJECTED,
    UNACCEPTABLE_PROTOCOL_VERSION,
    ConnackPacket,
)
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.packet import CONNECT

from broker import mqtt5
from broker._framing import FramedReader, FrameFailure
from broker._v5 import V5Link

__all__ = ["ConnectRequest", "plain_connect", "protocol_of", "read_connect", "refuse"]

logger = logging.getLogger(__name__)

_MQTT_311_LEVEL = 4
_MQTT_311 = (b"MQTT", _MQTT_311_LEVEL)
_MQTT_5 = (b"MQTT", 5)
_V311_UNACCEPTABLE_VERSION = b"\x20\x02\x00\x01"


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """What a client asked for in its CONNECT packet (MQTT 3.1.1)."""

    client_id: str
    """The client id as sent; ``""`` when the client sent none."""
    clean_session: bool
    keep_alive: int
    username: str | None
    password: str | None
    will_topic: str | None
    """``None`` when the client set no Last Will."""
    will_message: bytes
    will_qos: int
    will_retain: bool
    v5: V5Link | None = None
    """An MQTT 5 client's translation state; ``None`` for MQTT 3.1.1."""


async def refuse(writer: WriterAdapter, return_code: int) -> None:
    """Answer CONNACK with ``return_code`` and close the connection."""
    with suppress(OSError, RuntimeError):
        await ConnackPacket.build(0, return_code).to_stream(writer)
    await close_quietly(writer)


async def close_quietly(writer: WriterAdapter) -> None:
    """Close ``writer``, ignoring a peer that is already gone."""
    with suppress(OSError, RuntimeError):
        await writer.close()


def protocol_of(frame: bytes) -> tuple[bytes, int] | None:
    """Protocol name and level of a raw CONNECT packet, or ``None`` if it is too short to say."""
    index = 1
    while index < len(frame) and frame[index] & 0x80:
        index += 1
    index += 1  # past the last remaining-length byte
    if len(frame) < index + 2:
        return None
    level_at = index + 2 + int.from_bytes(frame[index : index + 2], "big")
    if len(frame) <= level_at:
        return None
    return bytes(frame[index + 2 : level_at]), frame[level_at]


def plain_connect(frame: bytes) -> ConnectRequest | None:
    """The request of a plainly well-formed MQTT 3.1.1 CONNECT, as amqtt's codec and
    :func:`_check` would make it; ``None`` for anything less plain, which they then read (and
    refuse) as before: another protocol or level, a reserved flag, Last Will bits without the
    will flag or a will QoS above 2, a password without a user name, an empty client id with
    clean_session=0, a string that is not valid UTF-8, bytes left over or missing at the end.

    amqtt decodes a CONNECT through a dozen awaited reads and three packet objects: a tenth of
    the broker's time during a storm of connects (README "Performance").
    """
    if not frame or frame[0] != 0x10:
        return None
    index, size = 1, len(frame)
    while index < size and frame[index] & 0x80:
        index += 1
    index += 1  # the variable header: protocol name, level, flags, keep-alive
    if frame[index : index + 7] != b"\x00\x04MQTT\x04" or size < index + 10:
        return None
    flags, keep_alive = frame[index + 7], int.from_bytes(frame[index + 8 : index + 10], "big")
    will, will_qos = bool(flags & 0x04), (flags >> 3) & 3
    if flags & 0x01 or (not will and flags & 0x38) or will_qos > 2 or (flags & 0x40 and not flags & 0x80):
        return None
    fields: list[bytes] = []
    index += 10
    for present in (True, will, will, bool(flags & 0x80), bool(flags & 0x40)):
        if not present:
            continue
        end = index + 2 + int.from_bytes(frame[index : index + 2], "big")
        if end > size:
            return None
        fields.append(frame[index + 2 : end])
        index = end
    if index != size:
        return None
    try:
        client_id = fields.pop(0).decode("utf-8")
        will_topic = fields.pop(0).decode("utf-8") if will else None
        will_message = fields.pop(0) if will else b""
        username = fields.pop(0).decode("utf-8") if flags & 0x80 else None
        password = fields.pop(0).decode("utf-8") if flags & 0x40 else None
    except UnicodeDecodeError:
        return None
    clean = bool(flags & 0x02)
    if not client_id and not clean:
        return None
    return ConnectRequest(
        client_id=client_id,
        clean_session=clean,
        keep_alive=keep_alive,
        username=username,
        password=password,
        will_topic=will_topic,
        will_message=bytes(will_message),
        will_qos=will_qos if will else 0,
        will_retain=bool(flags & 0x20) if will else False,
    )


async def read_connect(reader: FramedReader, writer: WriterAdapter, peer: str) -> ConnectRequest | None:
    """Decode and check the first packet; on failure answer or close, log, and return ``None``.

    Another protocol version is answered CONNACK 1 ([MQTT-3.1.2-2]) and closed.
    """
    frame = await reader.peek()
    protocol = protocol_of(frame)
    if protocol is not None and protocol not in (_MQTT_311, _MQTT_5):
        logger.info("refusing CONNECT from %s: protocol %r level %s (MQTT 3.1.1 and 5 are served)", peer, *protocol)
        with suppress(OSError, RuntimeError):
            writer.write(_V311_UNACCEPTABLE_VERSION)
            await writer.drain()
        await close_quietly(writer)
        return None
    if protocol == _MQTT_5:
        return await _read_connect_v5(reader, writer, peer)
    request = plain_connect(frame)
    if request is not None:
        await reader.read()  # the CONNECT, which was only peeked at
        return request
    try:
        packet = await ConnectPacket.from_stream(reader)
    except Exception as exc:  # amqtt's codec raises many types on garbage; all mean "bad client"
        _log_unreadable(reader, peer, exc)
        await close_quietly(writer)
        return None
    problem, code = _check(packet)
    if problem is not None:
        logger.warning("refusing CONNECT from %s: %s", peer, problem)
        if code is None:
            await close_quietly(writer)
        else:
            await refuse(writer, code)
        return None
    return _to_request(packet)


def _log_unreadable(reader: FramedReader, peer: str, exc: Exception) -> None:
    if reader.failure is FrameFailure.PACKET_TOO_LARGE:
        logger.warning(
            "closing %s: first packet declares %s bytes, above max_packet_size %s",
            peer,
            reader.declared_length,
            reader.max_packet_size,
        )
    elif reader.failure is FrameFailure.CONNECT_TIMEOUT:
        logger.info("closing %s: no CONNECT within the connect timeout", peer)
    else:
        logger.warning("closing %s: first packet is not a readable CONNECT (%r)", peer, exc)


def _check(packet: ConnectPacket) -> tuple[str | None, int | None]:
    """Why the CONNECT is unacceptable and which CONNACK code to answer (None = just close)."""
    header, payload = packet.variable_header, packet.payload
    if packet.fixed_header.packet_type != CONNECT or header is None or payload is None:
        return "first packet is not CONNECT", None
    if header.proto_name != "MQTT" or header.proto_level != _MQTT_311_LEVEL:
        return f"protocol {header.proto_name!r} level {header.proto_level}", UNACCEPTABLE_PROTOCOL_VERSION
    if header.reserved_flag:
        return "reserved flag set [MQTT-3.1.2-3]", None
    if header.will_flag and (payload.will_topic is None or payload.will_message is None or header.will_qos > 2):
        return "malformed Last Will", None
    if header.password_flag and not header.username_flag:
        return "password without user name [MQTT-3.1.2-22]", BAD_USERNAME_PASSWORD
    if (header.username_flag and payload.username is None) or (header.password_flag and payload.password is None):
        return "unreadable user name or password", BAD_USERNAME_PASSWORD
    if not header.clean_session_flag and payload.client_id_is_random:
        return "empty client id with clean_session=0 [MQTT-3.1.3-8]", IDENTIFIER_REJECTED
    return None, None


def _to_request(packet: ConnectPacket) -> ConnectRequest:
    header, payload = packet.variable_header, packet.payload
    assert header is not None and payload is not None  # checked by _check
    will = header.will_flag
    return ConnectRequest(
        client_id="" if payload.client_id_is_random else (payload.client_id or ""),
        clean_session=header.clean_session_flag,
        keep_alive=max(header.keep_alive, 0),
        username=payload.username if header.username_flag else None,
        password=payload.password if header.password_flag else None,
        will_topic=payload.will_topic if will else None,
        will_message=bytes(payload.will_message or b"") if will else b"",
        will_qos=header.will_qos if will else 0,
        will_retain=header.will_retain_flag if will else False,
    )


async def _read_connect_v5(reader: FramedReader, writer: WriterAdapter, peer: str) -> ConnectRequest | None:
    """Decode an MQTT 5 CONNECT; answer a refusal with its v5 reason and return ``None``."""
    frame = await reader.read()
    try:
        packet = mqtt5.decode(frame)
    except mqtt5.MalformedPacket as exc:
        logger.warning("refusing MQTT 5 CONNECT from %s: %s", peer, exc)
        await _refuse_v5(writer, exc.reason)
        return None
    if not isinstance(packet, mqtt5.Connect):
        logger.warning("closing %s: first packet is not CONNECT", peer)
        await close_quietly(writer)
        return None
    if "authentication_method" in packet.properties:  # no enhanced authentication (AUTH) offered
        logger.info(
            "refusing MQTT 5 CONNECT from %s: authentication method %r",
            peer,
            packet.properties["authentication_method"],
        )
        await _refuse_v5(writer, mqtt5.Reason.BAD_AUTHENTICATION_METHOD)
        return None
    try:
        password = packet.password.decode("utf-8") if packet.password is not None else None
    except UnicodeDecodeError:  # tokens and secrets are text; a binary password cannot be one
        await _refuse_v5(writer, mqtt5.Reason.BAD_USER_NAME_OR_PASSWORD)
        return None
    link = V5Link.start(packet)
    return ConnectRequest(
        client_id=link.client_id,
        clean_session=packet.clean_start,  # the session's end: V5Link.adopt (its expiry)
        keep_alive=packet.keep_alive,
        username=packet.username,
        password=password,
        will_topic=packet.will_topic,
        will_message=packet.will_payload,
        will_qos=packet.will_qos,
        will_retain=packet.will_retain,
        v5=link,
    )


async def _refuse_v5(writer: WriterAdapter, reason: int) -> None:
    with suppress(OSError, RuntimeError):
        writer.write(mqtt5.encode(mqtt5.Connack(reason)))
        await writer.drain()
    await close_quietly(writer)
