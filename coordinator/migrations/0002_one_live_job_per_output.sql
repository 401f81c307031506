-- Two live jobs never write the same output prefix: the second is refused (409). A prefix
-- used by a finished, failed or cancelled job can be used again.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_live_output ON jobs (output) WHERE state IN ('queued', 'running');
