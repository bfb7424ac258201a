"""The broker's list of connected gateway and integration sessions and "disconnect now"
(issue #14 item 7): ``MqttBroker.bridge_sessions()`` and ``disconnect_bridge()``.

Gateways are ``_broker_harness.GATEWAYS`` (``gw-a`` speaks for devices 1-3), integration
clients ``_broker_harness.INTEGRATIONS`` (``int-a`` of organization 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from _broker_harness import (
    GATEWAY_PASSWORD,
    INTEGRATION_PASSWORD,
    Harness,
    Paho,
    eventually,
    offline_reason,
    presence_watcher,
    token,
)


async def test_lists_gateways_and_integrations_and_disconnects_one(harness: Harness, paho: Callable[..., Paho]) -> None:
    before = time.time()
    watcher = await presence_watcher(paho)
    gateway = await paho(client_id="site-bridge", username="gw-a", password=GATEWAY_PASSWORD).connect()
    integration = await paho(client_id="node-red", username="int-a", password=INTEGRATION_PASSWORD).connect()
    device = await paho(client_id="plain-device", username="device", password=token(5)).connect()
    assert await gateway.subscribe(f"dev/{token(1)}/downlink/#", f"dev/{token(2)}/downlink/#", qos=1) == [1, 1]
    await gateway.publish(f"dev/{token(1)}/ds/Temperature", "21.5", qos=1)
    assert await integration.subscribe("flows/#", qos=1) == [1]
    await integration.publish("flows/a", "x", qos=1)
    await eventually(lambda: len(harness.broker.bridge_sessions()) == 2, message="both listed")
    listed = {s.client_id: s for s in harness.broker.bridge_sessions()}
    assert set(listed) == {"site-bridge", "node-red"}  # a plain device is not a bridge
    gw, node = listed["site-bridge"], listed["node-red"]
    assert (gw.kind, gw.key, gw.org_id, gw.devices, gw.subscriptions) == ("gateway", "client:gw-a", None, 1, 2)
    assert (node.kind, node.key, node.org_id, node.devices) == ("integration", "client:int-a", 1, 0)
    assert node.subscriptions == 1
    assert gw.address == "127.0.0.1" and gw.port and gw.msgs_in == 1 and gw.bytes_in > 0
    assert node.msgs_in == 1 and node.msgs_out == 1  # its own publish came back to its subscription
    assert before - 1 <= gw.connected_at <= time.time() and gw.id != node.id
    assert await harness.broker.disconnect_bridge("no-such-session") is False
    assert await harness.broker.disconnect_bridge(gw.id) is True
    await eventually(lambda: gateway.disconnected, message="gateway disconnected")
    assert await offline_reason(watcher, 1) == "kicked"  # its device goes offline with the reason
    assert [s.client_id for s in harness.broker.bridge_sessions()] == ["node-red"]
    assert await harness.broker.disconnect_bridge(gw.id) is False  # that connection is gone
    again = await paho(client_id="site-bridge", username="gw-a", password=GATEWAY_PASSWORD).connect()
    await eventually(lambda: len(harness.broker.bridge_sessions()) == 2, message="reconnected")
    fresh = next(s for s in harness.broker.bridge_sessions() if s.client_id == "site-bridge")
    assert fresh.id != gw.id  # another connection, another id: an old "disconnect" cannot end it
    assert not integration.disconnected and not device.disconnected and not again.disconnected
