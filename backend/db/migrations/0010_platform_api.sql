-- 0010: the platform API (issue #5 item 4). OAuth2 clients of an organization, the access and
-- refresh tokens they were given, and the per-organization request counter of the rate limit.

-- A client of the platform API. The secret is shown once; only its SHA-256 is kept (it is 240
-- random bits, so a fast hash is enough and keeps /oauth2/token cheap).
CREATE TABLE oauth_client (
    id           bigserial PRIMARY KEY,
    client_id    text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL,
    org_id       bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    permissions  text[] NOT NULL,
    created_by   bigint REFERENCES app_user(id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX oauth_client_org_idx ON oauth_client (org_id);

-- Tokens given to a client; only their SHA-256 is kept. A refresh token works once (it is
-- replaced by a new one each time it is used).
CREATE TABLE oauth_token (
    id          bigserial PRIMARY KEY,
    client_id   bigint NOT NULL REFERENCES oauth_client(id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('access', 'refresh')),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX oauth_token_client_idx ON oauth_token (client_id);
CREATE INDEX oauth_token_expires_idx ON oauth_token (expires_at);

-- Requests of one organization in its current one-minute window (shared by every app
-- process; unlogged: a crash forgets at most one minute of counting).
CREATE UNLOGGED TABLE api_rate (
    org_id        bigint PRIMARY KEY REFERENCES organization(id) ON DELETE CASCADE,
    window_start  timestamptz NOT NULL,
    count         integer NOT NULL
);
