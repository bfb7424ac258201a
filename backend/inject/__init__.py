"""Blynk.Inject: how a made device reaches its user (issue #17).

- ``codes``: the claim code value object (``sqr_…``).
- ``activation``: the broker's first sight of a static token becomes the manufacturer's
  unclaimed device.
- ``throttle``: wrong claim codes, counted per user and per address.
- ``static_tokens``: generate, import, list and export static tokens; ``claims``: claim and
  unclaim; ``labels``: printable QR labels.
- ``controllers``: the console's JSON routes and the platform API's routes.

Errors are the project's tree (``backend.errors``): a wrong or used claim code is
``NotFoundError`` / ``ConflictError``, too many wrong codes ``RateLimitedError``.
"""
