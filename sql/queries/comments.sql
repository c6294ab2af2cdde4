-- name: for_article
-- The article's comments, newest first, as the API's JSON built by PostgreSQL (keys as in
-- schemas/comments.py); body is NULL when the article does not exist. $2 is the viewer (or NULL).
SELECT $2::bigint IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $2) AS viewer_known,
       (SELECT json_build_object('comments', coalesce(
                   (SELECT json_agg(json_build_object(
                               'id', c.id,
                               'createdAt', api_time(c.created_at),
                               'updatedAt', api_time(c.updated_at),
                               'body', c.body,
                               'author', json_build_object(
                                   'username', u.username,
                                   'bio', u.bio,
                                   'image', u.image,
                                   'following', EXISTS (SELECT 1 FROM follows fo
                                                         WHERE fo.follower_id = $2 AND fo.followed_id = c.author_id)))
                            ORDER BY c.created_at DESC, c.id DESC)
                      FROM comments c
                      JOIN users u ON u.id = c.author_id
                     WHERE c.article_id = a.id),
                   '[]'))::text
          FROM articles a
         WHERE a.slug = $1) AS body;

-- name: insert
-- FOR KEY SHARE, as in articles.favorite: an article deleted meanwhile is a 404, not a 500.
WITH article AS (SELECT id FROM articles WHERE slug = $1 FOR KEY SHARE),
     added AS (
         INSERT INTO comments (article_id, author_id, body)
         SELECT id, $2, $3 FROM article
         RETURNING id, created_at, updated_at, body, author_id
     )
SELECT a.id, a.created_at, a.updated_at, a.body,
       u.username AS author_username, u.bio AS author_bio, u.image AS author_image,
       false AS following
  FROM added a
  JOIN users u ON u.id = a.author_id;

-- name: author
-- No row: no such article; a row with a NULL author_id: no such comment on it.
SELECT c.author_id
  FROM articles a
  LEFT JOIN comments c ON c.article_id = a.id AND c.id = $2
 WHERE a.slug = $1;

-- name: delete
DELETE FROM comments WHERE id = $1;
