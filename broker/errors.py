"""The exceptions ``broker/`` raises. Everything derives from :class:`BrokerError`.

::

    BrokerError                    root: catch this to catch anything the broker raises
    ├── ConfigurationError         BrokerSettings values that cannot work (also a ValueError)
    ├── ListenerError              a listener could not be opened (port in use, unreadable certificate)
    ├── BrokerStateError           a call that does not fit the broker's state (start() twice, ...)
    └── InvalidTopicError          a topic name or filter that breaks MQTT or Blynk rules (also a ValueError)

amqtt's own exceptions never leave the package: where one can enter (start-up, listener
binding), it is re-raised as one of the above with ``raise ... from exc``. Problems caused by a
single client (bad packets, refused credentials, oversized packets, silence) are not exceptions
for the caller at all: they close that one connection and are logged.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "BrokerStateError",
    "ConfigurationError",
    "InvalidTopicError",
    "ListenerError",
]


class BrokerError(Exception):
    """Root of every exception raised by the ``broker`` package."""


class ConfigurationError(BrokerError, ValueError):
    """A :class:`~broker.settings.BrokerSettings` value that cannot work."""


class ListenerError(BrokerError):
    """A listener could not be opened (address in use, certificate unreadable, ...)."""


class BrokerStateError(BrokerError):
    """The call does not fit the broker's current state (e.g. ``start()`` twice)."""


class InvalidTopicError(BrokerError, ValueError):
    """A topic name or topic filter that breaks MQTT's or Blynk's rules."""
