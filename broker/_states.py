"""A session's connection state without a ``transitions.Machine`` for each session.

amqtt's ``Session._init_states`` builds a ``transitions.Machine`` with five transitions for
every session: more than half of the broker's time to accept a connection, by py-spy, and a
large part of its memory per connection. :class:`SessionStates` offers what amqtt and this
broker use of it (``state``, ``connect()``, ``disconnect()``, ``is_connected()`` ...) with
the same transitions, the same enter callbacks and the same refusal (``MachineError``) of a
transition the machine does not have (``connect`` while connected).
"""

from __future__ import annotations

from typing import Protocol

from transitions import MachineError

__all__ = ["SessionStates"]

_CONNECT_FROM = ("new", "disconnected")


class _Session(Protocol):
    def _on_enter_connected(self) -> None: ...

    def _on_enter_disconnected(self) -> None: ...


class SessionStates:
    """``new`` -> ``connected`` <-> ``disconnected``, as amqtt's ``Session`` machine."""

    __slots__ = ("_session", "state")

    def __init__(self, session: _Session) -> None:
        self._session = session
        self.state = "new"

    def connect(self) -> bool:
        """new or disconnected -> connected; ``MachineError`` from connected."""
        if self.state not in _CONNECT_FROM:
            raise MachineError(f'"Can\'t trigger event connect from state {self.state}!"')
        self.state = "connected"
        self._session._on_enter_connected()
        return True

    def disconnect(self) -> bool:
        """any state -> disconnected."""
        self.state = "disconnected"
        self._session._on_enter_disconnected()
        return True

    def is_new(self) -> bool:
        return self.state == "new"

    def is_connected(self) -> bool:
        return self.state == "connected"

    def is_disconnected(self) -> bool:
        return self.state == "disconnected"
