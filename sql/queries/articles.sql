-- Reads answer in one round trip each, with the response's JSON built by PostgreSQL
-- (json_build_object, json_agg) and passed through as bytes: no rows to decode, no models to
-- build. Keys and their order are those of the pydantic models in schemas/articles.py, which
-- tests/test_sql_json.py holds them to. $1 is always the viewer's user id (NULL when anonymous);
-- `viewer_known` is false when a token names a user that no longer exists (401).

-- name: list
-- A template: service/handlers/articles.py puts in the page query and the count query from
-- the fragments below, one statement per combination of filters, so each is planned for its
-- own filters (a generic `($4 IS NULL OR ...)` query gets one plan for all of them once
-- PostgreSQL switches a prepared statement to its generic plan, after five executions).
-- $2 limit, $3 offset, then one parameter per filter given; the fragments get their numbers
-- from the handler. The page is rendered by articles_json() (migrations 0003, 0006), whose plan
-- PostgreSQL keeps. With no filter or one, the page walks an index in the list's order (newest
-- first, id as tie-break) and stops after limit + offset entries, and the count is one the
-- database keeps (article_totals, 0003; the counts of 0006): both cost the same whatever the
-- filter matches. Two filters at once intersect, and count their intersection.
SELECT $1::bigint IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $1) AS viewer_known,
       json_build_object(
           'articles', articles_json(ARRAY({page}), $1),
           'articlesCount', ({count})
       )::text AS body;

-- name: page_all
SELECT a.id FROM articles a ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3

-- name: page_where
SELECT a.id FROM articles a WHERE {where} ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3

-- name: page_tag
-- The tag's entries of article_tags_tag_newest_idx, in the list's order (0007 copies each
-- article's created_at into them): the page reads limit + offset entries, for a tag on three
-- articles or on nine in ten. The one index on tag_id leaves no other plan to flip to.
SELECT at.article_id
  FROM article_tags at
 WHERE at.tag_id = (SELECT id FROM tags WHERE name = ${n})
 ORDER BY at.article_created_at DESC, at.article_id DESC
 LIMIT $2 OFFSET $3

-- name: page_favorited
-- The user's entries of favorites_user_newest_idx, in the list's order, as for a tag.
SELECT f.article_id
  FROM favorites f
 WHERE f.user_id = (SELECT id FROM users WHERE username = ${n})
 ORDER BY f.article_created_at DESC, f.article_id DESC
 LIMIT $2 OFFSET $3

-- name: page_feed
-- The newest (limit + offset) of each followed author, merged: bounded by the follows, however
-- many articles there are or however long ago the followed authors last wrote.
SELECT a.id
  FROM follows fo
 CROSS JOIN LATERAL (SELECT a.id, a.created_at FROM articles a
                      WHERE a.author_id = fo.followed_id
                      ORDER BY a.created_at DESC, a.id DESC
                      LIMIT $2::bigint + $3::bigint) AS a
 WHERE fo.follower_id = $1
 ORDER BY a.created_at DESC, a.id DESC
 LIMIT $2 OFFSET $3

-- name: by_tag
a.id IN (SELECT at.article_id FROM article_tags at WHERE at.tag_id = (SELECT id FROM tags WHERE name = ${n}))

-- name: by_author
a.author_id = (SELECT id FROM users WHERE username = ${n})

-- name: by_favoriter
a.id IN (SELECT f.article_id FROM favorites f WHERE f.user_id = (SELECT id FROM users WHERE username = ${n}))

-- name: count_all
SELECT sum(articles)::bigint FROM article_totals

-- name: count_tag
-- The counts kept by triggers (migration 0006): at most 16 rows per key, however big the count.
SELECT coalesce(sum(articles), 0)::bigint FROM tag_counts WHERE tag_id = (SELECT id FROM tags WHERE name = ${n})

-- name: count_author
SELECT coalesce(sum(articles), 0)::bigint
  FROM author_counts WHERE user_id = (SELECT id FROM users WHERE username = ${n})

-- name: count_favoriter
SELECT coalesce(sum(favorites), 0)::bigint
  FROM favoriter_counts WHERE user_id = (SELECT id FROM users WHERE username = ${n})

-- name: count_feed
-- The followed authors' counts, summed: one lookup per follow (the aggregate in LATERAL keeps it
-- a lookup; as a join, a generic plan may hash every author's count instead).
SELECT coalesce(sum(per_author.n), 0)::bigint
  FROM follows fo
 CROSS JOIN LATERAL (SELECT sum(c.articles) AS n FROM author_counts c WHERE c.user_id = fo.followed_id) AS per_author
 WHERE fo.follower_id = $1

-- name: count_where
SELECT count(*) FROM articles a WHERE {where}

-- name: by_slug
-- The author and the tag names by primary key (LIMIT 1 keeps the author a lookup): for one row,
-- the generic plan would otherwise hash all of users and tags on every call (~30% of its time).
SELECT $1::bigint IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $1) AS viewer_known,
       (SELECT json_build_object('article', json_build_object(
                   'slug', a.slug,
                   'title', a.title,
                   'description', a.description,
                   'tagList', ARRAY(SELECT (SELECT t.name FROM tags t WHERE t.id = at.tag_id) AS name
                                       FROM article_tags at WHERE at.article_id = a.id ORDER BY name),
                   'createdAt', api_time(a.created_at),
                   'updatedAt', api_time(a.updated_at),
                   'favorited', EXISTS (SELECT 1 FROM favorites f WHERE f.user_id = $1 AND f.article_id = a.id),
                   'favoritesCount', (SELECT coalesce(sum(c.favorites), 0)::bigint FROM favorite_counts c
                                       WHERE c.article_id = a.id),
                   'author', json_build_object(
                       'username', u.username,
                       'bio', u.bio,
                       'image', u.image,
                       'following', EXISTS (SELECT 1 FROM follows fo
                                             WHERE fo.follower_id = $1 AND fo.followed_id = a.author_id)),
                   'body', a.body))::text
          FROM articles a
         CROSS JOIN LATERAL (SELECT username, bio, image FROM users WHERE id = a.author_id LIMIT 1) AS u
         WHERE a.slug = $2) AS body;

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
-- The article's created_at goes with each link (else a trigger looks it up, migration 0007).
INSERT INTO article_tags (article_id, tag_id, article_created_at)
SELECT $1, t.id, a.created_at FROM tags t, articles a WHERE a.id = $1 AND t.name = ANY($2::text[])
ON CONFLICT DO NOTHING;

-- name: unlink_other_tags
-- An update's tagList replaces the tags: the article's tags not named in $2 go (a tag no article
-- uses any more leaves GET /api/tags, whose query shows only tags in use).
DELETE FROM article_tags at
 WHERE at.article_id = $1
   AND at.tag_id NOT IN (SELECT t.id FROM tags t WHERE t.name = ANY($2::text[]));

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
-- The article's created_at goes with it (else a trigger looks it up, migration 0006).
WITH article AS (SELECT id, created_at FROM articles WHERE slug = $2 FOR KEY SHARE),
     added AS (
         INSERT INTO favorites (user_id, article_id, article_created_at) SELECT $1, id, created_at FROM article
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
SELECT json_build_object('tags', coalesce(json_agg(t.name ORDER BY t.name), '[]'))::text
  FROM tags t
 WHERE EXISTS (SELECT 1 FROM article_tags at WHERE at.tag_id = t.id);
