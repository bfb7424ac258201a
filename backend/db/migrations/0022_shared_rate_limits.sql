-- 0022: rate limits counted across app processes (issue #13).
-- Counters only: UNLOGGED (no WAL; after a crash PostgreSQL empties them, which forgets at most
-- a minute of counting).

-- Webhook requests in the last minute (Blynk's 10 a minute per webhook), one row a request, in
-- the shape of the sliding-window throttles (backend/db/window.py): scope 'webhook', key its id.
CREATE UNLOGGED TABLE webhook_request (
    scope  text NOT NULL,
    key    text NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_request_key_idx ON webhook_request (scope, key, at);

-- The HTTP device API's token bucket of each device, shared by the app replicas: units left at
-- `updated` (refilled at OPENBLYNK_DEVICE_RATE_LIMIT a second up to one second's worth), and
-- how many the latest reservation was granted (backend/device_api/ratelimit.py).
CREATE UNLOGGED TABLE device_rate_bucket (
    device_id  bigint PRIMARY KEY,
    units      double precision NOT NULL,
    updated    timestamptz NOT NULL,
    granted    integer NOT NULL
);
