"""LazyDict: a connection's rarely used dictionaries are made only when first used."""

from __future__ import annotations

import asyncio
from typing import Any

from broker._handler import MountedHandler
from broker._mailbox import LazyDict
from broker._session import BrokerSession


class Holder:
    __slots__ = ("table_",)
    table = LazyDict[str, int]()

    def __init__(self) -> None:
        self.table_ = None


def test_made_at_first_use_then_kept_and_never_shared() -> None:
    one, two = Holder(), Holder()
    assert one.table_ is None
    one.table["a"] = 1  # what is read is written to, as amqtt's code does
    assert one.table == {"a": 1} and one.table is one.table_
    assert two.table_ is None and two.table == {} and two.table is not one.table
    two.table = {"b": 2}
    assert two.table_ == {"b": 2}
    assert isinstance(Holder.table, LazyDict)


async def test_a_new_session_and_handler_hold_none_of_their_rarely_used_dicts() -> None:
    session = BrokerSession("dev:1", None, "firmware")
    handler = MountedHandler(object(), loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    lazy: list[tuple[Any, str]] = [
        (session, "attributes_"),
        (session, "inflight_in_"),
        (session, "shared_ids_"),
        (handler, "_pubrec_waiters_"),
        (handler, "_pubrel_waiters_"),
        (handler, "_pubcomp_waiters_"),
    ]
    assert [name for obj, name in lazy if getattr(obj, name) is not None] == []
    session.inflight_in[3] = "message"
    handler._pubcomp_waiters[4] = asyncio.get_running_loop().create_future()
    assert session.inflight_in_ == {3: "message"} and list(handler._pubcomp_waiters_ or ()) == [4]
