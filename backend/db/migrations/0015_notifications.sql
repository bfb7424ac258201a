-- 0015: notifications (issue #13): in-app notifications of users, their preferences, the
-- per-organization hourly e-mail count, and Blynk's notification settings of template events.

-- One in-app notification of one user (the console's bell). ``source`` says what made it
-- (an event of a device, an automation, a webhook, the system) and ``source_id`` which one.
CREATE TABLE notification (
    id          bigserial PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body        text NOT NULL DEFAULT '' CHECK (length(body) <= 2000),
    level       text NOT NULL DEFAULT 'info' CHECK (level IN ('info', 'warning', 'critical', 'content')),
    device_id   bigint REFERENCES device(id) ON DELETE SET NULL,
    source      text NOT NULL CHECK (source IN ('event', 'automation', 'webhook', 'system')),
    source_id   bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz
);
CREATE INDEX notification_user_idx ON notification (user_id, id DESC);
CREATE INDEX notification_unread_idx ON notification (user_id) WHERE read_at IS NULL;

-- A user's notification preferences; no row means the defaults (everything on, not muted).
-- ``muted`` silences both kinds without losing the two switches.
CREATE TABLE notification_pref (
    user_id  bigint PRIMARY KEY REFERENCES app_user(id) ON DELETE CASCADE,
    email    boolean NOT NULL DEFAULT true,
    in_app   boolean NOT NULL DEFAULT true,
    muted    boolean NOT NULL DEFAULT false
);

-- E-mails an organization's notifications sent in an hour (OPENBLYNK_NOTIFICATION_EMAILS_PER_HOUR),
-- counted in the database so that every app process shares the limit.
CREATE TABLE notification_email_hour (
    org_id  bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    hour    timestamptz NOT NULL,
    sent    integer NOT NULL,
    PRIMARY KEY (org_id, hour)
);

-- Blynk's notification settings of an event definition (e-mail and in-app switches,
-- recipients, limit period, every Nth event); NULL: the event notifies nobody.
ALTER TABLE event_def ADD COLUMN notify jsonb;

-- Per device and event code: how many events were logged (for "every Nth") and when the
-- last notification went out (for the limit period).
CREATE TABLE event_notify_state (
    device_id     bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    code          text NOT NULL,
    seen          bigint NOT NULL DEFAULT 0,
    last_sent_at  timestamptz,
    PRIMARY KEY (device_id, code)
);
