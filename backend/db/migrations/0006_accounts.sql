-- 0006: accounts. Server-side console sessions, one-time e-mailed links (sign-up, password
-- reset, invitation), failed sign-ins for throttling, the audit log, and the built-in roles'
-- permissions in the catalogue of backend/accounts/permissions.py.

ALTER TABLE app_user ADD COLUMN last_login_at timestamptz;

-- Built-in roles keep Blynk's ids; '*' is every permission of the catalogue (Admin).
UPDATE role SET permissions = '{*}' WHERE id = 1;
UPDATE role SET permissions = '{devices.view,devices.view.own,devices.edit,devices.edit.own,tokens.view,templates.view,air.view,users.view,automations.view,automations.execute}' WHERE id = 2;
UPDATE role SET permissions = '{devices.view.own,devices.edit.own,automations.view}' WHERE id = 3;
ALTER TABLE role ADD CONSTRAINT role_custom_has_org CHECK (id < 100 OR org_id IS NOT NULL);
ALTER TABLE role ADD CONSTRAINT role_name_length CHECK (length(name) BETWEEN 1 AND 50);

-- A console session: the cookie holds a random token; only its SHA-256 is stored.
CREATE TABLE user_session (
    id            bigserial PRIMARY KEY,
    token_hash    bytea NOT NULL UNIQUE,
    csrf_token    text NOT NULL,
    user_id       bigint NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,
    ip            text,
    user_agent    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX user_session_user_idx ON user_session (user_id);
CREATE INDEX user_session_expires_idx ON user_session (expires_at);

-- A link sent by e-mail that works once before it expires. Only the token's SHA-256 is stored.
--   signup:          email, name, password_hash (the account is made when the link is used)
--   password_reset:  user_id
--   invitation:      org_id, role_id, email, name, created_by
CREATE TABLE account_token (
    id             bigserial PRIMARY KEY,
    token_hash     bytea NOT NULL UNIQUE,
    purpose        text NOT NULL CHECK (purpose IN ('signup', 'password_reset', 'invitation')),
    email          text NOT NULL,
    name           text NOT NULL DEFAULT '',
    password_hash  text,
    user_id        bigint REFERENCES app_user(id) ON DELETE CASCADE,
    org_id         bigint REFERENCES organization(id) ON DELETE CASCADE,
    role_id        integer REFERENCES role(id),
    created_by     bigint REFERENCES app_user(id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    revoked_at     timestamptz
);
CREATE INDEX account_token_org_idx ON account_token (org_id, purpose, created_at);

-- Failed sign-ins, counted per account (lower-cased e-mail) and per address within a window.
CREATE TABLE login_failure (
    scope  text NOT NULL CHECK (scope IN ('account', 'address')),
    key    text NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failure_idx ON login_failure (scope, key, at);

-- Every change made through the accounts and organization services. No foreign keys: entries
-- outlive the users and organizations they name.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    org_id       bigint,
    actor_id     bigint,
    actor_email  text NOT NULL DEFAULT '',
    ip           text,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text,
    details      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_org_idx ON audit_log (org_id, id DESC);
