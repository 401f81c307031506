-- Share links: a viewer may play one job until expires_ms, unless revoked. The link's
-- secret is kept as its SHA-256 only: a copy of this table plays nothing.
CREATE TABLE shares (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    viewer TEXT NOT NULL,
    note TEXT,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    revoked_by TEXT,
    token_sha256 TEXT NOT NULL UNIQUE
);
CREATE INDEX shares_job ON shares (job_id, created_ms);
