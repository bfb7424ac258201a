-- 0014: the scheduler's persistent jobs (issue #13). APScheduler 3's SQLAlchemyJobStore keeps
-- each job as a pickled state with its next run time; the table is made here, with the rest of
-- the schema, so the app's database role needs no CREATE right at run time and a restore of a
-- backup brings the schedule back. Only the scheduling leader's APScheduler reads and writes it.
CREATE TABLE IF NOT EXISTS apscheduler_jobs (
    id VARCHAR(191) PRIMARY KEY,
    next_run_time DOUBLE PRECISION,
    job_state BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_apscheduler_jobs_next_run_time ON apscheduler_jobs (next_run_time);
