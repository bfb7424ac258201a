-- 0005: history retention per template (NULL: the global OPENBLYNK_HISTORY_*_RETENTION_DAYS).

ALTER TABLE template
    ADD COLUMN raw_retention_days integer CHECK (raw_retention_days > 0),
    ADD COLUMN rollup_retention_days integer CHECK (rollup_retention_days > 0);
