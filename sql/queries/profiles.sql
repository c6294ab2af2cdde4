-- name: by_username
SELECT u.id, u.username, u.bio, u.image,
       EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $2 AND f.followed_id = u.id) AS following
  FROM users u
 WHERE u.username = $1;

-- name: follow
-- Idempotent: following twice (or two requests at once) leaves one row.
WITH target AS (SELECT id, username, bio, image FROM users WHERE username = $1),
     added AS (
         INSERT INTO follows (follower_id, followed_id)
         SELECT $2, id FROM target WHERE id <> $2
         ON CONFLICT DO NOTHING
     )
SELECT id, username, bio, image, true AS following FROM target;

-- name: unfollow
WITH target AS (SELECT id, username, bio, image FROM users WHERE username = $1),
     removed AS (
         DELETE FROM follows WHERE follower_id = $2 AND followed_id IN (SELECT id FROM target)
     )
SELECT id, username, bio, image, false AS following FROM target;
