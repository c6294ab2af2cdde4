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
-- NULL leaves a field as it is; $6 says whether image was given (it may be set to NULL).
UPDATE users
   SET username      = coalesce($2, username),
       email         = coalesce($3, email),
       password_hash = coalesce($4, password_hash),
       bio           = coalesce($5, bio),
       image         = CASE WHEN $6 THEN $7 ELSE image END,
       updated_at    = now()
 WHERE id = $1
RETURNING id, username, email, bio, image;

-- name: recent_failures
-- How many failed logins each key has inside the window, and when its oldest one expires.
SELECT key, count(*) AS failures, min(failed_at) + make_interval(secs => $2) - now() AS retry_in
  FROM login_failures
 WHERE key = ANY($1::text[]) AND failed_at > now() - make_interval(secs => $2)
 GROUP BY key;

-- name: record_failure
WITH expired AS (
    DELETE FROM login_failures
     WHERE key = ANY($1::text[]) AND failed_at <= now() - make_interval(secs => $2)
)
INSERT INTO login_failures (key) SELECT unnest($1::text[]);

-- name: clear_failures
DELETE FROM login_failures WHERE key = $1;
