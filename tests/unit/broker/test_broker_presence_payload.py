"""The online report, written out by hand for speed, is byte for byte what ``json`` makes of
the same document (the app and third parties parse it; its key order is part of the format)."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from broker import presence

CLIENT_IDS = ["dev-1", "", 'quo"te', "back\\slash", "tab\tnew\nline\x00\x1f", "ü-é-日本-🙂", "</script>"]


@pytest.mark.parametrize("client_id", CLIENT_IDS)
@pytest.mark.parametrize(
    ("ip", "port", "gateway"),
    [("127.0.0.1", 50123, None), (None, None, None), ("::1", 1, 'gw"key\\'), ("10.0.0.2", 65535, "gw-ü")],
)
def test_online_payload_is_what_json_makes(
    client_id: str, ip: str | None, port: int | None, gateway: str | None
) -> None:
    with mock.patch.object(presence, "_now_ms", return_value=1_765_000_000_123):
        ours = presence.online_payload(
            ip=ip, port=port, client_id=client_id, keep_alive=45, transport="tcp", gateway=gateway
        )
    document: dict[str, object] = {
        "online": True,
        "ts": 1_765_000_000_123,
        "ip": ip,
        "port": port,
        "client_id": client_id,
        "keep_alive": 45,
        "transport": "tcp",
    }
    if gateway is not None:
        document["gateway"] = gateway
    assert ours == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert json.loads(ours) == document
