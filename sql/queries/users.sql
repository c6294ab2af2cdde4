-- name: exists
SELECT EXISTS (SELECT 1 FROM users WHERE id = $1);

-- name: insert
-- Both unique indexes (username, lower(email)) arbitrate; nothing returned means one was taken.
INSERT INTO users (username, email, password_hash)
VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING id, username, email, bio, image;

-- name: taken
SELECT bool_or(username = $1) AS username, bool_or(lower(email) = lower($2)) AS email
  FROM users
 WHERE username = $1 OR lower(email) = lower($2);

-- name: credentials_by_email
SELECT id, password_hash FROM users WHERE lower(email) = lower($1);

-- name: by_id
SELECT id, username, email, bio, image FROM users WHERE id = $1;

-- name: update
-- NULL leaves username, email and password as they are. $5 and $7 say whether bio and image were
-- sent: each may be cleared, and an empty one is stored as NULL.
UPDATE users
   SET username      = coalesce($2, username),
       email         = coalesce($3, email),
       password_hash = coalesce($4, password_hash),
       bio           = CASE WHEN $5 THEN nullif($6, '') ELSE bio END,
       image         = CASE WHEN $7 THEN nullif($8, '') ELSE image END,
       updated_at    = now()
 WHERE id = $1
RETURNING id, username, email, bio, image;

-- name: lock_attempt_keys
-- Within a transaction (DB_POOL_MODE=transaction), entries are not seen by others until commit:
-- serialize attempts on the same keys instead (in key order, so two attempts cannot deadlock).
-- In autocommit mode the lock ends with the statement, and each entry is visible at once anyway.
SELECT count(pg_advisory_xact_lock(hashtextextended(key, 0)))
  FROM (SELECT unnest($1::text[]) AS key ORDER BY 1) AS keys;

-- name: reserve_attempt
-- A login attempt is entered as a failure before its password is checked, under both keys, so
-- concurrent attempts count each other; expired entries of these keys are dropped on the way.
WITH expired AS (
    DELETE FROM login_failures
     WHERE key = ANY($1::text[]) AND failed_at <= now() - make_interval(secs => $2)
)
INSERT INTO login_failures (key) SELECT unnest($1::text[])
RETURNING id;

-- name: recent_failures
-- Failures per key inside the window (the current attempt included), and when enough of them
-- will have expired for an attempt to be allowed again: the (count - $3)-th oldest one's expiry.
SELECT key,
       count(*) AS failures,
       (array_agg(failed_at ORDER BY failed_at))[greatest(count(*)::int - $3, 1)]
           + make_interval(secs => $2) - now() AS retry_in
  FROM login_failures
 WHERE key = ANY($1::text[]) AND failed_at > now() - make_interval(secs => $2)
 GROUP BY key;

-- name: forget_attempt
DELETE FROM login_failures WHERE id = ANY($1::bigint[]);

-- name: clear_failures
-- A successful login: the account's failures go, and so does this attempt's own address entry.
DELETE FROM login_failures WHERE key = $1 OR id = ANY($2::bigint[]);
