-- 0016: webhooks (issue #13, Blynk's Settings → Developers → Webhooks) and their delivery log.

-- An organization's webhook: what triggers it (a datastream update of a template or of one
-- device, pin NULL = any datastream; a device's first connection; a device activated; a user
-- added), the request it sends (method, URL, headers as a JSON object, a body template with
-- Blynk's placeholders in one of three kinds) and its signing secret. ``failures`` counts
-- failed deliveries in a row; at the configured limit the webhook is disabled with a reason.
CREATE TABLE webhook (
    id               bigserial PRIMARY KEY,
    org_id           bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    enabled          boolean NOT NULL DEFAULT true,
    trigger_kind     text NOT NULL CHECK (trigger_kind IN
                         ('template_datastream', 'device_datastream', 'first_connection',
                          'device_activated', 'user_added', 'manual')),
    template_id      bigint REFERENCES template(id) ON DELETE CASCADE,
    device_id        bigint REFERENCES device(id) ON DELETE CASCADE,
    pin              smallint,
    method           text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT', 'DELETE')),
    url              text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    headers          jsonb NOT NULL DEFAULT '{}'::jsonb,
    body_kind        text NOT NULL DEFAULT 'json' CHECK (body_kind IN ('form', 'json', 'plain')),
    body_template    text NOT NULL DEFAULT '',
    secret           text NOT NULL,
    failures         integer NOT NULL DEFAULT 0,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name),
    CHECK (trigger_kind <> 'template_datastream' OR template_id IS NOT NULL),
    CHECK (trigger_kind <> 'device_datastream' OR device_id IS NOT NULL)
);
CREATE INDEX webhook_trigger_idx ON webhook (trigger_kind) WHERE enabled;

-- One delivery (or refusal) of a webhook: when, why (the trigger), what was sent (method, URL
-- without its query, body size), and what came back (status, the first bytes of the response)
-- or the error; ``attempt`` is the number of tries it took. Refusals (rate limit, body size,
-- address guard) are logged with ``refused`` and nothing was sent.
CREATE TABLE webhook_delivery (
    id             bigserial PRIMARY KEY,
    webhook_id     bigint NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
    org_id         bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    at             timestamptz NOT NULL DEFAULT now(),
    trigger        text NOT NULL,
    request        text NOT NULL,
    ok             boolean NOT NULL,
    refused        boolean NOT NULL DEFAULT false,
    status         smallint,
    response_head  text NOT NULL DEFAULT '',
    error          text,
    attempt        smallint NOT NULL DEFAULT 1,
    duration_ms    integer NOT NULL DEFAULT 0
);
CREATE INDEX webhook_delivery_hook_idx ON webhook_delivery (webhook_id, id DESC);
CREATE INDEX webhook_delivery_at_idx ON webhook_delivery (at);
