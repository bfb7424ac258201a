-- Locations (issue #19): named places of an organization, and the devices assigned to them.
CREATE TABLE location (
    id          bigserial PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    name        text NOT NULL,
    address     text NOT NULL DEFAULT '',
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon         double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    time_zone   text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

ALTER TABLE device ADD COLUMN location_id bigint REFERENCES location(id) ON DELETE SET NULL;
CREATE INDEX device_location_idx ON device (location_id) WHERE location_id IS NOT NULL;

-- a device moved to another organization leaves its location (a location holds its own organization's devices)
CREATE FUNCTION device_leaves_location() RETURNS trigger AS $$
BEGIN
    IF NEW.org_id IS DISTINCT FROM OLD.org_id THEN
        NEW.location_id := NULL;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER device_leaves_location BEFORE UPDATE OF org_id ON device
    FOR EACH ROW EXECUTE FUNCTION device_leaves_location();
