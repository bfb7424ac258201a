-- 0025: an organization's image library (issue #19 item 2), the pictures of the mobile
-- dashboard's image buttons (Blynk's Image Button: one image for off, one for on). The
-- console's Content-Security-Policy loads images from its own origin only, so they are
-- uploaded here and served back from an authenticated route. Kept in the database (at most
-- OPENBLYNK_IMAGE_MAX_BYTES each, OPENBLYNK_IMAGES_PER_ORG per organization), so every app
-- replica serves them and a backup carries them. content_type is what the file's first bytes
-- say it is (PNG, JPEG or WebP), never what the uploader claimed.
CREATE TABLE console_image (
    id           BIGSERIAL PRIMARY KEY,
    org_id       BIGINT NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/webp')),
    size         INTEGER NOT NULL CHECK (size > 0),
    sha256       TEXT NOT NULL,
    data         BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   BIGINT REFERENCES app_user(id) ON DELETE SET NULL,
    UNIQUE (org_id, sha256)
);
