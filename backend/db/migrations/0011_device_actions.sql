-- 0011: Blynk's actions log of devices (GET /api/v1/organization/device/logs).

-- A datastream value set by a user (console) or a platform API client, never by the device
-- itself: who set which value when, and whether the device was online then. Kept as long as
-- the device's raw history (the history maintenance job deletes older entries); no foreign
-- key to the user or client, so an entry outlives them with the address it was made by.
CREATE TABLE device_action (
    id           bigserial PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    pin          smallint NOT NULL,
    value        text NOT NULL,
    user_id      bigint,
    client_id    bigint,
    actor_email  text NOT NULL,
    is_online    boolean NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_action_device_idx ON device_action (device_id, created_at DESC, id DESC);
CREATE INDEX device_action_created_idx ON device_action (created_at);
