"""The PUBACKs a :class:`~backend.transport.mqtt.ServiceClient` writes, noted instead of sent."""

from __future__ import annotations

import paho.mqtt.client as paho

from backend.transport.mqtt import ServiceClient


def note_pubacks(service: ServiceClient) -> list[int]:
    """Have ``service`` note the packet ids of the PUBACKs it writes (in the order written) in
    the returned list instead of queueing them in paho. A batch of PUBACKs goes to paho as one
    piece of whole PUBACK packets (``ServiceClient.done_all``); anything else fails here."""
    sent: list[int] = []

    def queued(command: int, packet: bytes, _mid: int, _qos: int, _info: object = None) -> paho.MQTTErrorCode:
        assert command == paho.PUBACK and packet and len(packet) % 4 == 0, (command, packet)
        for at in range(0, len(packet), 4):
            assert packet[at : at + 2] == b"\x40\x02", packet
            sent.append(int.from_bytes(packet[at + 2 : at + 4], "big"))
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    service._client._packet_queue = queued  # type: ignore[method-assign]
    return sent
