-- name: fence
-- After the request's commit, so the position is at or past its commit record. The insert
-- position, not pg_current_wal_lsn() (the write position): with synchronous_commit off, a
-- commit record may not be written yet when its transaction returns. Monotonic: two writes of
-- one client finishing in either order leave the later position.
INSERT INTO read_fences AS f (key, lsn)
SELECT key, pg_current_wal_insert_lsn() FROM unnest($1::text[]) AS key
ON CONFLICT (key) DO UPDATE SET lsn = greatest(f.lsn, excluded.lsn), at = now();

-- name: fences
-- One lookup for every read queued while the previous one ran.
SELECT key, lsn - '0/0'::pg_lsn AS lsn FROM read_fences WHERE key = ANY($1::text[]);

-- name: prune
-- Fences older than any replica in use is behind: every such replica has passed them.
DELETE FROM read_fences WHERE at < now() - make_interval(secs => $1);

-- name: primary_position
SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn;

-- name: replica_position
-- Outside recovery (promoted) the replay position is NULL: the replica is then skipped.
SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_replay_lsn() - '0/0'::pg_lsn AS replayed;
