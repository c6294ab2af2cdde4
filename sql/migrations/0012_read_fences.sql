-- Read-your-writes with streaming replicas (service/replicas.py): for each client, the primary's
-- WAL position just after its last successful write. A replica serves the client's reads only
-- once it has replayed past it. A client is its user ('u' || id) and its address ('a' || address):
-- a write moves both, a read passes both (a client may read with another token, or none, than
-- it wrote with). Read and written on the primary alone; rows older than any usable replica's lag
-- are pruned by the service (`at`).
CREATE TABLE read_fences (
    key text PRIMARY KEY,
    lsn pg_lsn NOT NULL,
    at  timestamptz NOT NULL DEFAULT now()
);

-- A write's fence, after its commit: the primary's WAL insert position (at or past the commit
-- record, even with synchronous_commit off), monotonic per key (two writes of one client ending
-- in either order leave the later one). Its transaction commits without waiting for the WAL
-- flush: the fence only has to be visible, and a busy client's row lock must not be held for an
-- fsync (a fence lost in a crash of the primary is the accepted edge). Keys are made distinct.
CREATE FUNCTION set_fence(keys text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO read_fences AS f (key, lsn)
    SELECT k.key, p.pos FROM (SELECT DISTINCT unnest(keys) AS key) AS k, (SELECT pg_current_wal_insert_lsn() AS pos) AS p
    ON CONFLICT (key) DO UPDATE SET lsn = greatest(f.lsn, excluded.lsn), at = now();
END
$$;
