-- name: for_article
-- One row with NULL comment columns when the article has no comments; no row when it does not exist.
SELECT c.id, c.created_at, c.updated_at, c.body,
       u.username AS author_username, u.bio AS author_bio, u.image AS author_image,
       EXISTS (SELECT 1 FROM follows fo WHERE fo.follower_id = $2 AND fo.followed_id = c.author_id) AS following
  FROM articles a
  LEFT JOIN comments c ON c.article_id = a.id
  LEFT JOIN users u ON u.id = c.author_id
 WHERE a.slug = $1
 ORDER BY c.created_at DESC, c.id DESC;

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
SELECT c.id, c.author_id
  FROM comments c
  JOIN articles a ON a.id = c.article_id
 WHERE a.slug = $1 AND c.id = $2;

-- name: delete
DELETE FROM comments WHERE id = $1;
