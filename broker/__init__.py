"""openblynk's embedded MQTT broker: amqtt 0.12.1, hardened for Blynk devices.

Public surface (nothing else here is API, and nothing outside this package imports amqtt)::

    from broker import MqttBroker, BrokerSettings, Authenticator, ConnectInfo, DeviceIdentity, ServiceIdentity, BrokerError

    async with MqttBroker(BrokerSettings(port=0), authenticator) as broker:
        print(broker.port, broker.connected_devices())

Exceptions (all in :mod:`broker.errors`)::

    BrokerError                    root: catch this to catch anything the broker raises
    ├── ConfigurationError         BrokerSettings values that cannot work (also a ValueError)
    ├── ListenerError              a listener could not be opened (port in use, unreadable certificate)
    ├── BrokerStateError           a call that does not fit the broker's state (start() twice, ...)
    └── InvalidTopicError          a topic name or filter that breaks MQTT or Blynk rules (also a ValueError)

Topics, presence and diag formats: see :mod:`broker.topics` and :mod:`broker.presence`.
"""

from broker.errors import BrokerError
from broker.identity import Authenticator, ConnectInfo, DeviceIdentity, ServiceIdentity
from broker.server import MqttBroker, SessionQueues
from broker.settings import BrokerSettings

__all__ = [
    "Authenticator",
    "BrokerError",
    "BrokerSettings",
    "ConnectInfo",
    "DeviceIdentity",
    "MqttBroker",
    "ServiceIdentity",
    "SessionQueues",
]
