-- 0003: files devices upload (POST /external/api/upload) and data exports (data/get), and the
-- per-device daily counters behind Blynk's limits on imports, exports and uploads.

CREATE TABLE device_file (
    id            bigserial PRIMARY KEY,
    device_id     bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    name          text NOT NULL,
    stored_name   text NOT NULL UNIQUE,
    size          bigint NOT NULL CHECK (size >= 0),
    content_type  text NOT NULL DEFAULT 'application/octet-stream',
    kind          text NOT NULL DEFAULT 'file' CHECK (kind IN ('file', 'dump', 'export')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_file_device_idx ON device_file (device_id, created_at);
CREATE INDEX device_file_kind_created_idx ON device_file (kind, created_at);

-- How much of each daily limit a device has used on one UTC day (rows of past days are
-- deleted as the device uses its limits again).
CREATE TABLE device_quota (
    device_id  bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('import', 'export', 'upload')),
    day        date NOT NULL,
    used       integer NOT NULL CHECK (used >= 0),
    PRIMARY KEY (device_id, kind, day)
);
