-- Leases: the loops that must run on one coordinator replica at a time (live playlists
-- and finishing jobs, the reclaim of stalled tasks, the dead-letter follower) run where
-- the lease is held. `fence` grows with every new holder; a holder checks it before it
-- writes, so a replica that lost its lease (frozen, cut off) writes nothing.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    fence BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
