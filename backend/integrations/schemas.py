"""Wire types of the MQTT sessions list (``/api/integrations/sessions``)."""

from __future__ import annotations

import msgspec

from backend.integrations.bridges import BridgeSessionInfo


class BridgeSessionOut(msgspec.Struct):
    """One connected gateway or integration session."""

    id: str
    kind: str
    org_id: int
    login: str
    credentials: str
    client_id: str
    address: str | None
    port: int | None
    connected_at: str
    devices: int
    subscriptions: int
    msgs_in: int
    msgs_out: int
    bytes_in: int
    bytes_out: int

    @classmethod
    def of(cls, info: BridgeSessionInfo) -> BridgeSessionOut:
        """The wire form of ``info`` (``connected_at`` in ISO 8601, UTC)."""
        fields = {f: getattr(info, f) for f in cls.__struct_fields__ if f != "connected_at"}
        return cls(connected_at=info.connected_at.isoformat(), **fields)
