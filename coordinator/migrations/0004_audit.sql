-- The audit trail: who did what, when, from which address. Rows are only ever inserted;
-- each holds the SHA-256 of the row before it (`coordinator audit verify` checks the chain).
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    principal TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    job_id TEXT,
    share_id TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_job ON audit (job_id, seq);
CREATE INDEX audit_principal ON audit (principal, seq);
