-- name: fence
-- After the request's commit, so the position is at or past its commit record. The insert
-- position, not pg_current_wal_lsn() (the write position): with synchronous_commit off, a
-- commit record may not be written yet when its transaction returns. Monotonic: two writes of
-- one client finishing in either order leave the later position.
-- Its own transaction without waiting for the WAL flush (set_fence, migration 0012): the row lock
-- on a busy client's fence is held for an instant, not for an fsync. `position`, read in the same
-- statement, is past the write's commit as the fence is: the worker keeps it as a hint
-- (Replicas.wrote; a hint only, so whether it lands just before or after the fence's own record
-- does not matter).
SELECT set_fence($1::text[]), pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS position;

-- name: fences
-- One lookup for every read queued while the previous one ran.
SELECT key, lsn - '0/0'::pg_lsn AS lsn FROM read_fences WHERE key = ANY($1::text[]);

-- name: prune
-- Fences older than any replica in use is behind: every such replica has passed them.
-- One worker of all at a time (the others skip it), at most 10,000 rows at once.
WITH turn AS (SELECT pg_try_advisory_xact_lock(hashtext('conduit read_fences prune')) AS mine)
DELETE FROM read_fences
 WHERE (SELECT mine FROM turn)
   AND key IN (SELECT key FROM read_fences WHERE at < now() - make_interval(secs => $1) LIMIT 10000);

-- name: primary_position
-- No row from a standby (a multi-host DATABASE_URL after a failover): the sample fails.
SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn WHERE NOT pg_is_in_recovery();

-- name: replica_position
-- Outside recovery (promoted) the replica is skipped, whatever replay position it still reports.
SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_replay_lsn() - '0/0'::pg_lsn AS replayed;
