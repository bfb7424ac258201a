-- 0021: exactly-once scheduled firings, resumable runs and durable presence timers (issue #13).

-- A stored scheduler job's run time, written (and committed) by the leading scheduler before it
-- moves the job to its next run time, and deleted once the job's handler has claimed the run.
-- A leader killed in between leaves the row; the next leader runs the handler again for the
-- same slot (the handler's own unique claim makes the second call a no-op). ``grace_s``: how
-- late the slot may still run (NULL: however late).
CREATE TABLE scheduler_firing (
    job_id       text NOT NULL,
    fire_at      timestamptz NOT NULL,
    grace_s      integer,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, fire_at)
);

-- Runs: the slot a scheduled run was fired for (unique per automation: a slot runs once), the
-- engine process that executes it (``owner``: the key of a PostgreSQL advisory lock its process
-- holds while it lives), how often it was taken over after its process ended, and why
-- (``note``). A run ends 'interrupted' when it is not resumed (see the README).
ALTER TABLE automation_run
    ADD COLUMN slot     text,
    ADD COLUMN owner    integer,
    ADD COLUMN resumes  integer NOT NULL DEFAULT 0,
    ADD COLUMN note     text NOT NULL DEFAULT '';
ALTER TABLE automation_run DROP CONSTRAINT IF EXISTS automation_run_status_check;
ALTER TABLE automation_run ADD CONSTRAINT automation_run_status_check
    CHECK (status IN ('running', 'waiting', 'ok', 'failed', 'interrupted'));
CREATE UNIQUE INDEX automation_run_slot_idx ON automation_run (automation_id, slot);
CREATE INDEX automation_run_running_idx ON automation_run (owner) WHERE status = 'running';
-- Runs left 'running' by the code before this migration cannot be resumed (their progress was
-- not kept step by step).
UPDATE automation_run SET status = 'interrupted', finished_at = now(),
    note = 'found running when the database was upgraded (0021); not resumed'
WHERE status = 'running';

-- "Online/offline for N seconds" timers: due at ``due_at`` for one automation and device,
-- deleted when the device flips back first or when the timer fires.
CREATE TABLE automation_timer (
    automation_id  bigint NOT NULL REFERENCES automation(id) ON DELETE CASCADE,
    device_id      bigint NOT NULL REFERENCES device(id) ON DELETE CASCADE,
    due_at         timestamptz NOT NULL,
    PRIMARY KEY (automation_id, device_id)
);
