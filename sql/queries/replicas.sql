-- name: fence
-- After the request's commit, so the position is at or past its commit record. The insert
-- position, not pg_current_wal_lsn() (the write position): with synchronous_commit off, a
-- commit record may not be written yet when its transaction returns. Monotonic: two writes of
-- one user finishing in either order leave the later position.
INSERT INTO read_fences AS f (user_id, lsn)
SELECT id, pg_current_wal_insert_lsn() FROM unnest($1::bigint[]) AS id
ON CONFLICT (user_id) DO UPDATE SET lsn = greatest(f.lsn, excluded.lsn);

-- name: fences
-- One lookup for every signed-in read queued while the previous batch ran.
SELECT user_id, lsn - '0/0'::pg_lsn AS lsn FROM read_fences WHERE user_id = ANY($1::bigint[]);

-- name: primary_position
SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn;

-- name: replica_position
-- Outside recovery (promoted) the replay position is NULL: the replica is then skipped.
SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_replay_lsn() - '0/0'::pg_lsn AS replayed;
