-- Blynk.Inject (issue #17): static tokens and their claim codes.
--
-- A static token is a device auth token made ahead for a template in a manufacturer's
-- organization, with a separate claim code (the QR code). No device row exists until the
-- token is first used: the device connecting with it (then it is the manufacturer's, unclaimed)
-- or a user claiming it (then it is the claimer's). Both are kept as HMAC (lookup) and
-- Fernet-encrypted (export, labels), never in clear.
CREATE TABLE static_token (
    id               bigserial PRIMARY KEY,
    org_id           bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    template_id      bigint NOT NULL REFERENCES template(id) ON DELETE CASCADE,
    token_hmac       bytea NOT NULL UNIQUE,
    token_encrypted  text NOT NULL,
    claim_hmac       bytea NOT NULL UNIQUE,
    claim_encrypted  text NOT NULL,
    meta             jsonb NOT NULL DEFAULT '{}',
    device_id        bigint UNIQUE REFERENCES device(id) ON DELETE SET NULL,
    claimed_org_id   bigint REFERENCES organization(id) ON DELETE SET NULL,
    owner_id         bigint REFERENCES app_user(id) ON DELETE SET NULL,
    claimed_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX static_token_org_idx ON static_token (org_id, template_id, id);

-- Deleting a claimed device un-claims its static token: the device, connecting again, is the
-- manufacturer's unclaimed device once more, and its code claims it again (a resale).
CREATE FUNCTION static_token_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE static_token SET claimed_org_id = NULL, owner_id = NULL, claimed_at = NULL
    WHERE device_id = OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER device_release_static_token BEFORE DELETE ON device
    FOR EACH ROW EXECUTE FUNCTION static_token_release();

-- Wrong claim codes, per user and per address, in a sliding window (the claim throttle).
CREATE TABLE claim_failure (
    scope  text NOT NULL,
    key    text NOT NULL,
    at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX claim_failure_key_idx ON claim_failure (scope, key, at);

-- Headless claiming: a window a static-token device opens by proving it holds its claim code
-- (MQTT claim/open); a user who types the device's serial and the window's PIN claims it.
CREATE TABLE claim_window (
    static_token_id  bigint PRIMARY KEY REFERENCES static_token(id) ON DELETE CASCADE,
    pin_hmac         bytea NOT NULL,
    until            timestamptz NOT NULL
);

-- Wi-Fi provisioning (Blynk Edgent): a short-lived token a signed-in user asks for, for a
-- template and a device name; the device that first connects with it becomes that user's, in
-- their organization. Kept as HMAC and Fernet, as device tokens.
CREATE TABLE provisioning_token (
    id               bigserial PRIMARY KEY,
    token_hmac       bytea NOT NULL UNIQUE,
    token_encrypted  text NOT NULL,
    org_id           bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    template_id      bigint NOT NULL REFERENCES template(id) ON DELETE CASCADE,
    owner_id         bigint REFERENCES app_user(id) ON DELETE CASCADE,
    name             text NOT NULL,
    expires_at       timestamptz NOT NULL,
    device_id        bigint REFERENCES device(id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
