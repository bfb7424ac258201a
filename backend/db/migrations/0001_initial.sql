-- 0001: organizations, users and roles; templates with datastreams and events; devices;
-- latest values; time-partitioned history.

CREATE TABLE organization (
    id          bigserial PRIMARY KEY,
    parent_id   bigint REFERENCES organization(id) ON DELETE RESTRICT,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    tz          text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (parent_id, name)
);
CREATE INDEX organization_parent_idx ON organization (parent_id);

CREATE TABLE role (
    id          integer PRIMARY KEY,
    org_id      bigint REFERENCES organization(id) ON DELETE CASCADE,
    name        text NOT NULL,
    permissions text[] NOT NULL DEFAULT '{}',
    UNIQUE (org_id, name)
);
-- Blynk's built-in roles keep Blynk's ids; custom roles start at 100.
INSERT INTO role (id, org_id, name, permissions) VALUES
    (1, NULL, 'Admin', '{*}'),
    (2, NULL, 'Staff', '{devices.view,devices.edit,devices.tokens,templates.view,users.view,automations.view,automations.execute}'),
    (3, NULL, 'User',  '{devices.view.own,devices.edit.own}');
CREATE SEQUENCE role_custom_id_seq START 100 OWNED BY role.id;

CREATE TABLE app_user (
    id             bigserial PRIMARY KEY,
    org_id         bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    email          text NOT NULL,
    name           text NOT NULL DEFAULT '',
    password_hash  text NOT NULL,
    role_id        integer NOT NULL REFERENCES role(id),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'invited')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX app_user_email_idx ON app_user (lower(email));

CREATE TABLE template (
    id                  bigserial PRIMARY KEY,
    public_id           text NOT NULL UNIQUE CHECK (public_id ~ '^TMPL[A-Za-z0-9]{8}$'),
    org_id              bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description         text NOT NULL DEFAULT '',
    hardware            text NOT NULL DEFAULT 'ESP32',
    connection_type     text NOT NULL DEFAULT 'WI_FI',
    heartbeat_interval  integer NOT NULL DEFAULT 45 CHECK (heartbeat_interval > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE datastream (
    id             bigserial PRIMARY KEY,
    template_id    bigint NOT NULL REFERENCES template(id) ON DELETE CASCADE,
    pin            smallint NOT NULL CHECK (pin BETWEEN 0 AND 255),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 64 AND position('/' in name) = 0),
    alias          text NOT NULL DEFAULT '',
    type           text NOT NULL CHECK (type IN ('integer', 'double', 'string', 'enum', 'location')),
    min            double precision,
    max            double precision,
    default_value  text,
    units          text NOT NULL DEFAULT '',
    decimals       smallint CHECK (decimals BETWEEN 0 AND 5),
    save_raw       boolean NOT NULL DEFAULT false,
    sync           boolean NOT NULL DEFAULT false,
    enum_values    jsonb,
    CHECK (min IS NULL OR max IS NULL OR min <= max),
    UNIQUE (template_id, pin),
    UNIQUE (template_id, name)
);

CREATE TABLE event_def (
    id           bigserial PRIMARY KEY,
    template_id  bigint NOT NULL REFERENCES template(id) ON DELETE CASCADE,
    code         text NOT NULL CHECK (code ~ '^[A-Za-z0-9_ ]{1,50}$'),
    name         text NOT NULL,
    type         text NOT NULL DEFAULT 'info' CHECK (type IN ('info', 'warning', 'critical', 'content')),
    description  text NOT NULL DEFAULT '',
    UNIQUE (template_id, code)
);

CREATE TABLE device (
    id                bigserial PRIMARY KEY,
    org_id            bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    template_id       bigint NOT NULL REFERENCES template(id) ON DELETE RESTRICT,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    owner_id          bigint REFERENCES app_user(id) ON DELETE SET NULL,
    token_hmac        bytea NOT NULL UNIQUE,
    token_encrypted   text NOT NULL,
    fw_version        text,
    fw_type           text,
    fw_build          text,
    blynk_version     text,
    board_template_id text,
    rx_buffer         integer,
    online            boolean NOT NULL DEFAULT false,
    ip                text,
    client_id         text,
    keep_alive        integer,
    connected_at      timestamptz,
    disconnected_at   timestamptz,
    last_seen         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);
CREATE INDEX device_template_idx ON device (template_id);

-- The latest value of every datastream of every device (written coalesced by the ingest).
CREATE TABLE datastream_value (
    device_id   bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    pin         smallint NOT NULL,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, pin)
);

-- Raw history, one table partitioned by time. Partitions are created ahead by the
-- application (backend.history.partitions); the default partition catches anything else
-- so a late or early point is never lost.
CREATE TABLE history (
    device_id   integer NOT NULL,
    pin         smallint NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision,
    text_value  text
) PARTITION BY RANGE (ts);
CREATE TABLE history_default PARTITION OF history DEFAULT;
CREATE INDEX history_device_pin_ts_idx ON history (device_id, pin, ts);
