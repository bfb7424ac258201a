"""Webhooks (Blynk's Settings → Developers → Webhooks, and the automations' webhook action).

- ``models``: the ``webhook`` and ``webhook_delivery`` tables;
- ``requests``: the request a webhook sends, rendered from Blynk's placeholders; the 5 KB rule;
- ``signing``: the ``X-Openblynk-Signature`` HMAC-SHA256 header, its timestamp, the sealed secrets;
- ``guard``: the address guard (no loopback, link-local or private targets unless allowed);
- ``delivery``: :class:`~backend.webhooks.delivery.WebhookSender`, retries, the log, disabling;
- ``limits``: Blynk's 10 requests a minute per webhook; ``retention``: how long the log is kept;
- ``triggers``: datastream updates, first connections, activations, new users → deliveries;
- ``alerts``: the admins' notice of a webhook disabled after failing too often;
- ``service``, ``schemas``, ``controllers``, ``deps``: the console's JSON API;
- ``wiring``: the long-lived parts (sender, triggers) the app's lifespan starts and stops.

Errors: the backend's tree (``backend.errors``); :class:`~backend.webhooks.guard.AddressRefusedError`
is a ``ValidationError`` (a URL the guard refuses is the sender's mistake).
"""
