"""openblynk's embedded MQTT broker: amqtt 0.12.1, hardened for Blynk devices.

Public surface (nothing else here is API, and nothing outside this package imports amqtt)::

    from broker import (MqttBroker, BrokerSettings, Authenticator, ConnectInfo, DeviceIdentity,
                        ServiceIdentity, GatewayIdentity, GatewayScope, GatewaySession, BridgeSession,
                        SessionQueues, BrokerError, proxy_header)

    settings = BrokerSettings(port=0, proxy_port=0, proxy_key=key)   # key: 32+ secret bytes
    async with MqttBroker(settings, authenticator) as broker:
        print(broker.port, broker.tls_port, broker.proxy_port, broker.connected_devices())
        await broker.disconnect_device(42)        # token revoked: presence "revoked", no will
        await broker.disconnect_gateways("client:7")  # gateway credentials revoked
        await broker.recheck_gateways()           # scopes may have changed: ask them again
        broker.bridge_sessions()                  # live gateway and integration connections
        await broker.disconnect_bridge(session_id)  # "disconnect now" one of them
        broker.session_queues()["dev:42"]         # SessionQueues(outgoing, inflight, ...)
        broker.open_connections()                 # sockets being served, authenticated or not

Listeners: plain TCP (``port``), TLS 1.2+ (``tls_port``), and the WebSocket bridge's listener on
127.0.0.1 (``proxy_port``), where each connection starts with ``proxy_header(key, client)``: a
PROXY protocol v2 header naming the real client, HMAC-signed with ``proxy_key`` so that no
other local process can choose its address (:mod:`broker._proxy`). MQTT 3.1.1 and MQTT 5 are served (MQTT 5 is
translated at the connection's edge: :mod:`broker._v5`, codec :mod:`broker.mqtt5`). Limits every client gets: ``max_packet_size``, keep-alive x grace, per-device
``device_rate_limit`` (PUBLISH, SUBSCRIBE and UNSUBSCRIBE), ``max_subscriptions`` per session,
``auth_failures_per_minute`` per address, ``max_outgoing_queue``.

Exceptions (all in :mod:`broker.errors`)::

    BrokerError                    root: catch this to catch anything the broker raises
    ├── ConfigurationError         BrokerSettings values that cannot work (also a ValueError)
    ├── ListenerError              a listener could not be opened (port in use, unreadable certificate)
    ├── BrokerStateError           a call that does not fit the broker's state (start() twice, ...)
    └── InvalidTopicError          a topic name or filter that breaks MQTT or Blynk rules (also a ValueError)

Problems caused by one client are never exceptions for the caller: they close (or throttle)
that client, are logged, and show in its offline presence ``reason``.

Blynk's device topics, one table that the broker's ACL and the backend's ingest both read
(``Uplink``, ``Downlink`` with their payload kinds), and the topic rules (mount, device filters,
always-delivered downlinks including ``downlink/ping`` at QoS 1): :mod:`broker.topics`. What the broker publishes itself
(``sys/presence``, ``sys/vitals``, ``sys/ping``): :mod:`broker.presence` and
``docs/internal-topics.md``.

``address_key``: the key one client address is counted under in every per-address limit (the
IPv4 address, or the /64 of an IPv6 one); the app's HTTP listener counts by it too.

Gateways (Blynk's MQTT Gateway API): an authenticator may answer a :class:`GatewayIdentity`;
that client then speaks for the devices its :class:`GatewayScope` names, each under
``dev/<token>/``, and inside the broker each is a device at ``d/<id>/`` (:mod:`broker._gateway`).

Integration clients: an authenticator may answer an :class:`IntegrationIdentity`; that client
gets a whole MQTT 3.1.1 broker inside its organization's namespace ``o/<org>/``, prefix hidden
(:mod:`broker.namespace`, :mod:`broker._namespace`).

Inside (amqtt 0.12.1 pinned, private methods overridden): ``amqtt.broker.Broker`` <-
``_delivery.DeliveryBroker`` (bounded per-connection outbox, ping, vitals) <-
``_routing.RoutingBroker`` (mount, ACL, index, retained) <- ``_lifecycle.LifecycleBroker``
(how connections end) <- ``_gateway.GatewayBroker`` (gateway connections) <-
``_namespace.NamespaceBroker`` (integration clients) <-
``_core.CoreBroker`` (listeners, PROXY, auth, rate limit).
"""

from broker._limits import throttle_key as address_key
from broker._proxy import proxy_header
from broker.errors import BrokerError
from broker.identity import (
    Authenticator,
    ConnectInfo,
    DeviceIdentity,
    GatewayIdentity,
    GatewayScope,
    IntegrationIdentity,
    ServiceIdentity,
)
from broker.server import BridgeSession, GatewaySession, MqttBroker, SessionQueues
from broker.settings import BrokerSettings

__all__ = [
    "Authenticator",
    "BridgeSession",
    "BrokerError",
    "BrokerSettings",
    "ConnectInfo",
    "DeviceIdentity",
    "GatewayIdentity",
    "GatewayScope",
    "GatewaySession",
    "IntegrationIdentity",
    "MqttBroker",
    "ServiceIdentity",
    "SessionQueues",
    "address_key",
    "proxy_header",
]
