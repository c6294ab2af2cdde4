-- Every list is one query for the page and one for the count, whatever the page size:
-- tags, author and favorites come from article_cards' joins and subqueries, never per row.
-- $1 is always the viewer's user id (NULL when anonymous).

-- name: list
SELECT c.slug, c.title, c.description, c.tag_list, c.created_at, c.updated_at, c.favorites_count,
       c.author_username, c.author_bio, c.author_image,
       EXISTS (SELECT 1 FROM favorites f WHERE f.user_id = $1 AND f.article_id = c.id) AS favorited,
       EXISTS (SELECT 1 FROM follows fo WHERE fo.follower_id = $1 AND fo.followed_id = c.author_id) AS following
  FROM article_cards c
 WHERE ($4::text IS NULL OR c.id IN (SELECT at.article_id FROM article_tags at
                                        JOIN tags t ON t.id = at.tag_id WHERE t.name = $4))
   AND ($5::text IS NULL OR c.author_id = (SELECT id FROM users WHERE username = $5))
   AND ($6::text IS NULL OR c.id IN (SELECT f.article_id FROM favorites f
                                        JOIN users fu ON fu.id = f.user_id WHERE fu.username = $6))
 ORDER BY c.created_at DESC, c.id DESC
 LIMIT $2 OFFSET $3;

-- name: count
SELECT count(*)
  FROM articles a
 WHERE ($1::text IS NULL OR a.id IN (SELECT at.article_id FROM article_tags at
                                        JOIN tags t ON t.id = at.tag_id WHERE t.name = $1))
   AND ($2::text IS NULL OR a.author_id = (SELECT id FROM users WHERE username = $2))
   AND ($3::text IS NULL OR a.id IN (SELECT f.article_id FROM favorites f
                                        JOIN users fu ON fu.id = f.user_id WHERE fu.username = $3));

-- name: feed
SELECT c.slug, c.title, c.description, c.tag_list, c.created_at, c.updated_at, c.favorites_count,
       c.author_username, c.author_bio, c.author_image,
       EXISTS (SELECT 1 FROM favorites f WHERE f.user_id = $1 AND f.article_id = c.id) AS favorited,
       true AS following
  FROM article_cards c
 WHERE c.author_id IN (SELECT followed_id FROM follows WHERE follower_id = $1)
 ORDER BY c.created_at DESC, c.id DESC
 LIMIT $2 OFFSET $3;

-- name: count_feed
SELECT count(*)
  FROM articles a
 WHERE a.author_id IN (SELECT followed_id FROM follows WHERE follower_id = $1);

-- name: by_slug
SELECT c.slug, c.title, c.description, c.body, c.tag_list, c.created_at, c.updated_at, c.favorites_count,
       c.author_username, c.author_bio, c.author_image,
       EXISTS (SELECT 1 FROM favorites f WHERE f.user_id = $1 AND f.article_id = c.id) AS favorited,
       EXISTS (SELECT 1 FROM follows fo WHERE fo.follower_id = $1 AND fo.followed_id = c.author_id) AS following
  FROM article_cards c
 WHERE c.slug = $2;

-- name: insert
-- Nothing returned means the slug is taken: the caller retries with another.
INSERT INTO articles (slug, title, description, body, author_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (slug) DO NOTHING
RETURNING id;

-- name: create_tags
-- In name order, so concurrent articles sharing new tags cannot deadlock.
INSERT INTO tags (name)
SELECT DISTINCT name FROM unnest($1::text[]) AS name ORDER BY name
ON CONFLICT (name) DO NOTHING;

-- name: link_tags
-- A statement of its own after create_tags, so its snapshot sees tags another request just made.
INSERT INTO article_tags (article_id, tag_id)
SELECT $1, t.id FROM tags t WHERE t.name = ANY($2::text[])
ON CONFLICT DO NOTHING;

-- name: owner
-- Locks the row, so an update or delete acts on the article the check saw.
SELECT id, author_id, title FROM articles WHERE slug = $1 FOR UPDATE;

-- name: update
UPDATE articles
   SET slug        = coalesce($2, slug),
       title       = coalesce($3, title),
       description = coalesce($4, description),
       body        = coalesce($5, body),
       updated_at  = now()
 WHERE id = $1
RETURNING slug;

-- name: delete
DELETE FROM articles WHERE id = $1;

-- name: favorite
-- FOR KEY SHARE: an article being deleted is waited for and then not found (404), instead of
-- the insert failing its foreign key (500); and a delete waits for this insert to commit.
WITH article AS (SELECT id FROM articles WHERE slug = $2 FOR KEY SHARE),
     added AS (
         INSERT INTO favorites (user_id, article_id) SELECT $1, id FROM article
         ON CONFLICT DO NOTHING
     )
SELECT id FROM article;

-- name: unfavorite
WITH article AS (SELECT id FROM articles WHERE slug = $2),
     removed AS (
         DELETE FROM favorites WHERE user_id = $1 AND article_id IN (SELECT id FROM article)
     )
SELECT id FROM article;

-- name: tags
SELECT t.name
  FROM tags t
 WHERE EXISTS (SELECT 1 FROM article_tags at WHERE at.tag_id = t.id)
 ORDER BY t.name;
