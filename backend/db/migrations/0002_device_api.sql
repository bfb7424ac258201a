-- 0002: what the rest of Blynk's device API stores: template metadata fields and their
-- values per device, widget properties, the device timeline (events, online/offline), the
-- connection lifecycle settings and device vitals.

-- Custom metadata fields of a template. Blynk's system fields (Device Name, Device Owner,
-- Time Zone, Location, Hotspot Name) exist in every template and are not stored here.
-- field_id is the template-scoped number used by the HTTP API's metaFieldId (10 and up;
-- 1..5 are the system fields).
CREATE TABLE meta_field (
    id             bigserial PRIMARY KEY,
    template_id    bigint NOT NULL REFERENCES template(id) ON DELETE CASCADE,
    field_id       integer NOT NULL CHECK (field_id >= 10),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 64 AND position('/' in name) = 0
                                        AND position(',' in name) = 0),
    type           text NOT NULL DEFAULT 'text',
    default_value  text,
    UNIQUE (template_id, name),
    UNIQUE (template_id, field_id)
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

-- Connection lifecycle and vitals (from sys/presence, sys/vitals and sys/ping).
-- online_via: 'mqtt' while an MQTT session is up, 'http' while an HTTP-only device counts as
-- online after reporting data. msgs_*/bytes_* are the totals of the current (or last) MQTT
-- connection as the broker reports them.
ALTER TABLE device
    ADD COLUMN online_via         text CHECK (online_via IN ('mqtt', 'http')),
    ADD COLUMN msgs_in            bigint,
    ADD COLUMN msgs_out           bigint,
    ADD COLUMN bytes_in           bigint,
    ADD COLUMN bytes_out          bigint,
    ADD COLUMN vitals_at          timestamptz,
    ADD COLUMN disconnects_today  integer NOT NULL DEFAULT 0,
    ADD COLUMN disconnects_day    date,
    ADD COLUMN last_ping_ms       double precision,
    ADD COLUMN last_ping_at       timestamptz;
