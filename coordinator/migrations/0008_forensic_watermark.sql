-- Forensic watermarking (A/B): 1 when the job asked for it. Its mark seed and its shares'
-- code words are derived from the master key, never stored.
ALTER TABLE jobs ADD COLUMN forensic BIGINT NOT NULL DEFAULT 0;
