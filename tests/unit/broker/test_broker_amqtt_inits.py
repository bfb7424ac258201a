"""The broker's handler and session set, in their own ``__init__``, every attribute amqtt's
(pinned) ``__init__`` would, with the same values except the containers the broker replaces.

``MountedHandler`` and ``BrokerSession`` do not call amqtt's ``__init__``: it made two asyncio
Queues each (and an Event) only to have them replaced, at every connect. An amqtt upgrade that
adds an attribute fails here instead of in some rarely used amqtt code path."""

from __future__ import annotations

import asyncio
from typing import Any

from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from broker._handler import MountedHandler
from broker._mailbox import LazyEvent, Mailbox
from broker._session import BrokerSession


def compare(stock: dict[str, Any], ours: object, replaced: dict[str, type]) -> None:
    missing = [name for name in stock if not hasattr(ours, name)]
    assert missing == [], f"amqtt sets {missing}, the broker's __init__ does not"
    for name, value in stock.items():
        mine = getattr(ours, name)
        if name in replaced:
            assert isinstance(mine, replaced[name]), (name, mine)
        elif isinstance(value, (str, int, float, bool, type(None), dict)):
            assert mine == value, (name, mine, value)


async def test_the_session_sets_what_amqtt_sets() -> None:
    stock = vars(Session())
    ours = BrokerSession("dev:7", None, "firmware-id")
    replaced = {
        "retained_messages": Mailbox,
        "delivered_message_queue": Mailbox,
        "inflight_out": dict,
        "inflight_in": dict,
        "client_id": str,
        "transitions": object,
    }
    compare(stock, ours, replaced)
    assert ours.client_id == "dev:7" and ours.client_sent_id == "firmware-id"


async def test_the_handler_sets_what_amqtt_sets() -> None:
    loop = asyncio.get_running_loop()
    plugins: Any = object()
    stock = vars(BrokerProtocolHandler(plugins, loop=loop))
    ours = MountedHandler(plugins, loop=loop)
    replaced = {
        "_reader_stopped": LazyEvent,
        "_pending_subscriptions": Mailbox,
        "_pending_unsubscriptions": Mailbox,
        "_write_lock": asyncio.Lock,
        "logger": object,
        "plugins_manager": object,
    }
    compare(stock, ours, replaced)
    assert ours.plugins_manager is plugins and ours._loop is loop
