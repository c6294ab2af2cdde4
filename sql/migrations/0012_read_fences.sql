-- Read-your-writes with streaming replicas (service/replicas.py): for each user, the primary's WAL
-- position just after that user's last successful write. A replica serves the user's reads only
-- once it has replayed past it. user_id 0 is the fence of anonymous writes (a registration),
-- which every read must pass. Read and written on the primary alone; no foreign key (a fence
-- left by a deleted user is harmless, and the upsert takes no lock on users).
CREATE TABLE read_fences (
    user_id bigint PRIMARY KEY,
    lsn     pg_lsn NOT NULL
);
