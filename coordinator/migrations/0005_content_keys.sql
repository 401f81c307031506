-- Content keys: one per job and key period, wrapped (AES-256-GCM) by the master key from
-- FARM_MASTER_KEY_FILE; the plain key never reaches the database or object storage.
CREATE TABLE content_keys (
    job_id TEXT NOT NULL,
    period BIGINT NOT NULL,
    -- Seconds of media per period, as when the job was accepted (the setting may change).
    period_seconds BIGINT NOT NULL,
    wrapped TEXT NOT NULL,
    PRIMARY KEY (job_id, period)
);
