-- 0007: Blynk.Air. Firmware images (stored on disk by SHA-256), shipments, the status of
-- every device in a shipment, and device tags (a shipment target).

CREATE TABLE firmware (
    id             bigserial PRIMARY KEY,
    org_id         bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    filename       text NOT NULL,
    size           bigint NOT NULL CHECK (size > 0),
    sha256         bytea NOT NULL CHECK (length(sha256) = 32),
    md5            bytea NOT NULL CHECK (length(md5) = 16),
    signature      bytea NOT NULL CHECK (length(signature) = 64),
    fw_type        text,
    version        text,
    build          text,
    blynk_version  text,
    info           jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, sha256)
);

CREATE TABLE ota_shipment (
    id                bigserial PRIMARY KEY,
    org_id            bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    firmware_id       bigint NOT NULL REFERENCES firmware(id) ON DELETE RESTRICT,
    target_kind       text NOT NULL CHECK (target_kind IN ('template', 'devices', 'org', 'tag')),
    target_template   bigint REFERENCES template(id) ON DELETE CASCADE,
    target_org        bigint REFERENCES organization(id) ON DELETE CASCADE,
    target_tag        text,
    apply_mode        text NOT NULL CHECK (apply_mode IN ('lower_version', 'earlier_build', 'another_build')),
    preferred_time    text NOT NULL DEFAULT 'any'
                      CHECK (preferred_time IN ('any', 'night', 'morning', 'afternoon', 'evening')),
    attempts_limit    integer NOT NULL DEFAULT 3,
    attempts_period   integer NOT NULL DEFAULT 86400,  -- seconds
    pacing            jsonb NOT NULL,
    abort_rule        jsonb,
    device_timeout    integer NOT NULL DEFAULT 600,    -- seconds
    base_url          text NOT NULL,                   -- where devices download from
    state             text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'paused', 'cancelled', 'finished')),
    state_reason      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,
    UNIQUE (org_id, name)
);
CREATE INDEX ota_shipment_state_idx ON ota_shipment (state);

-- One row per device the shipment has looked at. ``origin_*`` is what the device ran when it
-- was first offered the image (to recognise Old -> New -> Old); ``attempts`` are offer times.
CREATE TABLE ota_device (
    shipment_id     bigint NOT NULL REFERENCES ota_shipment(id) ON DELETE CASCADE,
    device_id       bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    status          text NOT NULL,
    origin_version  text,
    origin_build    text,
    attempts        timestamptz[] NOT NULL DEFAULT '{}',
    downloads       timestamptz[] NOT NULL DEFAULT '{}',
    offered_at      timestamptz,
    bytes_served    bigint NOT NULL DEFAULT 0,
    detail          text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shipment_id, device_id)
);
CREATE INDEX ota_device_device_idx ON ota_device (device_id);
CREATE INDEX ota_device_status_idx ON ota_device (shipment_id, status);

-- Free-form device tags (a shipment may target every device with a tag).
CREATE TABLE device_tag (
    device_id  bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    tag        text NOT NULL CHECK (length(tag) BETWEEN 1 AND 64),
    PRIMARY KEY (device_id, tag)
);
CREATE INDEX device_tag_tag_idx ON device_tag (tag);
