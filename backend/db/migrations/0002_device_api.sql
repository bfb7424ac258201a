-- 0002: what the rest of Blynk's device API stores: template metadata fields and their
-- values per device, widget properties, the device timeline (events, online/offline), the
-- connection lifecycle settings and device vitals.

CREATE TABLE meta_field (
    id             bigserial PRIMARY KEY,
    template_id    bigint NOT NULL REFERENCES template(id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 64 AND position('/' in name) = 0),
    type           text NOT NULL DEFAULT 'text',
    default_value  text,
    UNIQUE (template_id, name)
);

CREATE TABLE device_meta (
    device_id   bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    name        text NOT NULL,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, name)
);

CREATE TABLE device_property (
    device_id   bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    pin         smallint NOT NULL,
    property    text NOT NULL,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, pin, property)
);

-- The device timeline: logged events and connection changes.
CREATE TABLE device_event (
    id           bigserial PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    ts           timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL CHECK (kind IN ('event', 'online', 'offline')),
    code         text,
    type         text,
    description  text NOT NULL DEFAULT ''
);
CREATE INDEX device_event_device_ts_idx ON device_event (device_id, ts DESC);

ALTER TABLE template
    ADD COLUMN offline_ignore_seconds integer NOT NULL DEFAULT 0 CHECK (offline_ignore_seconds >= 0);
