-- Jobs and their chunk tasks. IF NOT EXISTS: databases made before migrations (by the
-- coordinator's own CREATE TABLE, columns included) are taken over as they are.
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    output TEXT NOT NULL,
    priority TEXT NOT NULL,
    ladder TEXT NOT NULL,
    error TEXT,
    master TEXT,
    plan TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL);

CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    part TEXT NOT NULL,
    state TEXT NOT NULL,
    frames_done BIGINT NOT NULL,
    frames_total BIGINT,
    error TEXT,
    updated_ms BIGINT,
    reclaims BIGINT);

CREATE INDEX IF NOT EXISTS tasks_by_job ON tasks (job_id);
