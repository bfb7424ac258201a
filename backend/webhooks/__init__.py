"""Webhooks (Blynk's Settings → Developers → Webhooks, and the automations' webhook action).

- ``models``: the ``webhook`` and ``webhook_delivery`` tables;
- ``requests``: the request a webhook sends, rendered from Blynk's placeholders; the 5 KB rule;
- ``signing``: the ``X-Openblynk-Signature`` HMAC-SHA256 header and its timestamp;
- ``guard``: the address guard (no loopback, link-local or private targets unless allowed);
- ``delivery``: :class:`~backend.webhooks.delivery.WebhookSender`, limits, retries, the log;
- ``triggers``: datastream updates, first connections, activations, new users → deliveries;
- ``alerts``: the admins' notice of a webhook disabled after failing too often;
- ``service``, ``schemas``, ``controllers``: the console's JSON API.

Errors: the backend's tree (``backend.errors``); :class:`~backend.webhooks.guard.AddressRefusedError`
is a ``ValidationError`` (a URL the guard refuses is the sender's mistake).
"""
