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
