-- 0013: automations (issue #13) and their log.

-- An organization's automation: one condition and an ordered list of actions, both kept as
-- JSON in the shape of backend/automations/schemas.py (checked there, on every write). The
-- engine keeps its own per-automation state (last fired, hysteresis) in the two columns
-- below, so a restart neither fires twice inside a limit period nor forgets a disarmed
-- condition.
CREATE TABLE automation (
    id              bigserial PRIMARY KEY,
    org_id          bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    enabled         boolean NOT NULL DEFAULT true,
    condition       jsonb NOT NULL,
    actions         jsonb NOT NULL,
    limit_period_s  integer NOT NULL DEFAULT 0 CHECK (limit_period_s >= 0),
    created_by      bigint,
    last_fired_at   timestamptz,
    state           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX automation_org_idx ON automation (org_id, id);
CREATE INDEX automation_kind_idx ON automation ((condition->>'type')) WHERE enabled;

-- One run of an automation: what triggered it and how it went. A run stopped at a ``wait``
-- is 'waiting' with the position of the next action and when to resume, so it survives a
-- restart. Kept as long as device logs (the history maintenance job trims it).
CREATE TABLE automation_run (
    id                 bigserial PRIMARY KEY,
    automation_id      bigint NOT NULL REFERENCES automation(id) ON DELETE CASCADE,
    org_id             bigint NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    trigger            text NOT NULL,
    trigger_device_id  bigint REFERENCES device(id) ON DELETE SET NULL,
    trigger_value      text,
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    status             text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'waiting', 'ok', 'failed')),
    next_action        integer NOT NULL DEFAULT 0,
    resume_at          timestamptz
);
CREATE INDEX automation_run_automation_idx ON automation_run (automation_id, id DESC);
CREATE INDEX automation_run_org_idx ON automation_run (org_id, id DESC);
CREATE INDEX automation_run_started_idx ON automation_run (started_at);
CREATE INDEX automation_run_waiting_idx ON automation_run (resume_at) WHERE status IN ('running', 'waiting');

-- One action of a run (one row per position): its outcome (``detail`` says why it failed)
-- and how long it took.
CREATE TABLE automation_step (
    run_id       bigint NOT NULL REFERENCES automation_run(id) ON DELETE CASCADE,
    position     integer NOT NULL,
    action_type  text NOT NULL,
    ok           boolean NOT NULL,
    detail       text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    duration_ms  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, position)
);
