"""Integration clients' device side (issue #14 item 3): the app's half of an organization's
own MQTT namespace (the broker's half is ``broker.namespace``).

* :mod:`backend.integrations.feed` -- :class:`DeviceFeed`: the read-only feed of an
  organization's devices (values, events, online/offline) published into its namespace under
  ``dev/<device id>/...`` for the organizations that have an OAuth client that "may use MQTT".
* :mod:`backend.integrations.writes` -- :class:`IntegrationWrites`: ``dev/<device id>/set/<name>``
  published by an integration client, applied through the platform API's checked write path
  (the client's permissions and scope, ``DataService.write_from_server``, the actions log).

Topics and payloads: README, "Bridging and integrations".
"""
