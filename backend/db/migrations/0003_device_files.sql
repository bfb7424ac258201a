-- 0003: files devices upload (POST /external/api/upload) and data exports (data/get).

CREATE TABLE device_file (
    id            bigserial PRIMARY KEY,
    device_id     bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    name          text NOT NULL,
    stored_name   text NOT NULL UNIQUE,
    size          integer NOT NULL CHECK (size >= 0),
    content_type  text NOT NULL DEFAULT 'application/octet-stream',
    kind          text NOT NULL DEFAULT 'file' CHECK (kind IN ('file', 'dump', 'export')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_file_device_idx ON device_file (device_id, created_at);
