-- Counts the lists answer from, and an index in each list's order, so that a page and its
-- articlesCount cost the same at a thousand articles and at a million (issue 13).
--
-- The counts are kept by statement-level triggers on the rows they count, in the writing
-- transaction: any INSERT, DELETE, UPDATE of a counted column, cascade or COPY, whoever runs it
-- (the API, a tag replacement, a migration, psql). A rolled-back write takes its change with it.
-- Like article_totals (0003), each count is spread over rows, one per backend (pid modulo 16),
-- and is their sum: concurrent writers of one hot article or tag add to different rows instead
-- of queueing on one. Each statement adds to its keys in key order, so two writers on the same
-- shard take their rows in the same order.
--
-- This file only creates the count tables and the functions, touching no existing table; 0007,
-- 0008 and 0009 attach them to article_tags, favorites and articles, one table per file; 0010
-- counts the rows already there, in batches, while the service keeps writing (the triggers
-- count every write from their commit on; 0010 recounts each key under a short lock of the
-- counted table, which replaces whatever the triggers had so far); 0011 tidies up.

-- Each article's created_at, copied into the rows that list articles by tag and by favoriter,
-- so that those pages walk an index in the list's order (newest first, id as tie-break). Filled
-- by a trigger from the article when the insert does not give it; the API never changes an
-- article's created_at, and a direct change is copied (articles_created_at_moved).
CREATE FUNCTION copy_article_created_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.article_created_at IS NULL OR TG_OP = 'UPDATE' THEN
        NEW.article_created_at := (SELECT created_at FROM articles WHERE id = NEW.article_id);
    END IF;
    RETURN NEW;
END
$$;
CREATE FUNCTION articles_created_at_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE article_tags SET article_created_at = NEW.created_at WHERE article_id = NEW.id;
    UPDATE favorites SET article_created_at = NEW.created_at WHERE article_id = NEW.id;
    RETURN NULL;
END
$$;
-- The counts. No foreign keys: when a key goes (a deleted article, user or tag), the cascade
-- counts its rows down and its count rows stay, at 0 (reads sum them; a few bytes each). They
-- are not deleted with the key: the cascade's own statement trigger may fire after the key's,
-- and would count down from nothing (tests/test_count_drift.py caught exactly that).
CREATE TABLE tag_counts (          -- articles per tag
    tag_id   bigint NOT NULL,
    shard    smallint NOT NULL,
    articles bigint NOT NULL,
    PRIMARY KEY (tag_id, shard)
);
CREATE TABLE author_counts (       -- articles per author (and so the feed's total)
    user_id  bigint NOT NULL,
    shard    smallint NOT NULL,
    articles bigint NOT NULL,
    PRIMARY KEY (user_id, shard)
);
CREATE TABLE favoriter_counts (    -- favorites per user (?favorited=)
    user_id   bigint NOT NULL,
    shard     smallint NOT NULL,
    favorites bigint NOT NULL,
    PRIMARY KEY (user_id, shard)
);
CREATE TABLE favorite_counts (     -- favorites per article (favoritesCount)
    article_id bigint NOT NULL,
    shard      smallint NOT NULL,
    favorites  bigint NOT NULL,
    PRIMARY KEY (article_id, shard)
);

-- One function per counted table. INSERT adds, DELETE subtracts, UPDATE moves a row from its old
-- key to its new one (keys that net to zero are not touched, so an UPDATE that changes no
-- counted column locks no count). An insert that conflicted (ON CONFLICT DO NOTHING) has no
-- rows here and changes nothing.
CREATE FUNCTION article_tags_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tag_counts AS c (tag_id, shard, articles)
        SELECT tag_id, pg_backend_pid() % 16, count(*) FROM new_rows GROUP BY tag_id ORDER BY tag_id
        ON CONFLICT (tag_id, shard) DO UPDATE SET articles = c.articles + excluded.articles;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO tag_counts AS c (tag_id, shard, articles)
        SELECT tag_id, pg_backend_pid() % 16, -count(*) FROM old_rows GROUP BY tag_id ORDER BY tag_id
        ON CONFLICT (tag_id, shard) DO UPDATE SET articles = c.articles + excluded.articles;
    ELSE
        INSERT INTO tag_counts AS c (tag_id, shard, articles)
        SELECT tag_id, pg_backend_pid() % 16, sum(n)
          FROM (SELECT tag_id, 1 AS n FROM new_rows UNION ALL SELECT tag_id, -1 FROM old_rows) AS moved
         GROUP BY tag_id HAVING sum(n) <> 0 ORDER BY tag_id
        ON CONFLICT (tag_id, shard) DO UPDATE SET articles = c.articles + excluded.articles;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION favorites_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO favorite_counts AS c (article_id, shard, favorites)
        SELECT article_id, pg_backend_pid() % 16, count(*) FROM new_rows GROUP BY article_id ORDER BY article_id
        ON CONFLICT (article_id, shard) DO UPDATE SET favorites = c.favorites + excluded.favorites;
        INSERT INTO favoriter_counts AS c (user_id, shard, favorites)
        SELECT user_id, pg_backend_pid() % 16, count(*) FROM new_rows GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id, shard) DO UPDATE SET favorites = c.favorites + excluded.favorites;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO favorite_counts AS c (article_id, shard, favorites)
        SELECT article_id, pg_backend_pid() % 16, -count(*) FROM old_rows GROUP BY article_id ORDER BY article_id
        ON CONFLICT (article_id, shard) DO UPDATE SET favorites = c.favorites + excluded.favorites;
        INSERT INTO favoriter_counts AS c (user_id, shard, favorites)
        SELECT user_id, pg_backend_pid() % 16, -count(*) FROM old_rows GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id, shard) DO UPDATE SET favorites = c.favorites + excluded.favorites;
    ELSE
        INSERT INTO favorite_counts AS c (article_id, shard, favorites)
        SELECT article_id, pg_backend_pid() % 16, sum(n)
          FROM (SELECT article_id, 1 AS n FROM new_rows UNION ALL SELECT article_id, -1 FROM old_rows) AS moved
         GROUP BY article_id HAVING sum(n) <> 0 ORDER BY article_id
        ON CONFLICT (article_id, shard) DO UPDATE SET favorites = c.favorites + excluded.favorites;
        INSERT INTO favoriter_counts AS c (user_id, shard, favorites)
        SELECT user_id, pg_backend_pid() % 16, sum(n)
          FROM (SELECT user_id, 1 AS n FROM new_rows UNION ALL SELECT user_id, -1 FROM old_rows) AS moved
         GROUP BY user_id HAVING sum(n) <> 0 ORDER BY user_id
        ON CONFLICT (user_id, shard) DO UPDATE SET favorites = c.favorites + excluded.favorites;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION articles_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO author_counts AS c (user_id, shard, articles)
        SELECT author_id, pg_backend_pid() % 16, count(*) FROM new_rows GROUP BY author_id ORDER BY author_id
        ON CONFLICT (user_id, shard) DO UPDATE SET articles = c.articles + excluded.articles;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO author_counts AS c (user_id, shard, articles)
        SELECT author_id, pg_backend_pid() % 16, -count(*) FROM old_rows GROUP BY author_id ORDER BY author_id
        ON CONFLICT (user_id, shard) DO UPDATE SET articles = c.articles + excluded.articles;
    ELSE
        INSERT INTO author_counts AS c (user_id, shard, articles)
        SELECT author_id, pg_backend_pid() % 16, sum(n)
          FROM (SELECT author_id, 1 AS n FROM new_rows UNION ALL SELECT author_id, -1 FROM old_rows) AS moved
         GROUP BY author_id HAVING sum(n) <> 0 ORDER BY author_id
        ON CONFLICT (user_id, shard) DO UPDATE SET articles = c.articles + excluded.articles;
    END IF;
    RETURN NULL;
END
$$;

-- TRUNCATE (also reached through CASCADE) empties what it counted.
CREATE FUNCTION counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'article_tags' THEN
        DELETE FROM tag_counts;
    ELSIF TG_TABLE_NAME = 'favorites' THEN
        DELETE FROM favorite_counts;
        DELETE FROM favoriter_counts;
    ELSE
        DELETE FROM author_counts;
    END IF;
    RETURN NULL;
END
$$;
-- favoritesCount from favorite_counts: a lookup of at most 16 rows however popular the article.
CREATE OR REPLACE FUNCTION articles_json(ids bigint[], viewer bigint) RETURNS json
    LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT coalesce(json_agg(json_build_object(
               'slug', a.slug,
               'title', a.title,
               'description', a.description,
               'tagList', ARRAY(SELECT t.name FROM article_tags at JOIN tags t ON t.id = at.tag_id
                                 WHERE at.article_id = a.id ORDER BY t.name),
               'createdAt', api_time(a.created_at),
               'updatedAt', api_time(a.updated_at),
               'favorited', EXISTS (SELECT 1 FROM favorites f WHERE f.user_id = viewer AND f.article_id = a.id),
               'favoritesCount', (SELECT coalesce(sum(c.favorites), 0)::bigint FROM favorite_counts c
                                   WHERE c.article_id = a.id),
               'author', json_build_object(
                   'username', u.username,
                   'bio', u.bio,
                   'image', u.image,
                   'following', EXISTS (SELECT 1 FROM follows fo
                                         WHERE fo.follower_id = viewer AND fo.followed_id = a.author_id)))
               ORDER BY page.position), '[]')
      FROM unnest(ids) WITH ORDINALITY AS page (id, position)
      JOIN articles a ON a.id = page.id
      JOIN users u ON u.id = a.author_id);
END
$$;

-- Where 0010's batches have got to: one row per phase, in order; each batch advances one.
CREATE TABLE count_backfill (
    position smallint PRIMARY KEY,
    phase    text NOT NULL,
    next_key bigint NOT NULL DEFAULT 0,
    done     boolean NOT NULL DEFAULT false
);
INSERT INTO count_backfill (position, phase)
VALUES (1, 'article_tags'), (2, 'favorites'), (3, 'favoriters'), (4, 'authors'), (5, 'tags');

-- One batch of 0010: the keys [next_key, next_key + width) of the first unfinished phase, under
-- a SHARE lock of the one table it reads (concurrent writers of that table wait for this short
-- transaction; readers do not). With the table's writers excluded, the batch's own statements
-- see every committed row and nobody else's half-done one, so the count it writes is exact, and
-- the triggers carry it on from there. One table lock per transaction: a batch holds nothing a
-- writer waits for while it waits itself, so it cannot deadlock with the service. Recounting a
-- key twice is harmless, so a batch that ran twice (or keys that arrived later) change nothing.
-- Returns whether anything is left.
CREATE FUNCTION count_backfill_step(width bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    step count_backfill;
    upto bigint;
    last bigint;
BEGIN
    SELECT * INTO step FROM count_backfill WHERE NOT done ORDER BY position LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    upto := step.next_key + width;
    IF step.phase = 'article_tags' THEN
        LOCK TABLE article_tags IN SHARE MODE;
        UPDATE article_tags at SET article_created_at = a.created_at
          FROM articles a
         WHERE a.id = at.article_id AND at.article_id >= step.next_key AND at.article_id < upto
           AND at.article_created_at IS NULL;
        last := (SELECT max(id) FROM articles);
    ELSIF step.phase = 'favorites' THEN
        LOCK TABLE favorites IN SHARE MODE;
        UPDATE favorites f SET article_created_at = a.created_at
          FROM articles a
         WHERE a.id = f.article_id AND f.article_id >= step.next_key AND f.article_id < upto
           AND f.article_created_at IS NULL;
        DELETE FROM favorite_counts WHERE article_id >= step.next_key AND article_id < upto;
        INSERT INTO favorite_counts (article_id, shard, favorites)
        SELECT article_id, 0, count(*) FROM favorites
         WHERE article_id >= step.next_key AND article_id < upto GROUP BY article_id;
        last := (SELECT max(id) FROM articles);
    ELSIF step.phase = 'favoriters' THEN
        LOCK TABLE favorites IN SHARE MODE;
        DELETE FROM favoriter_counts WHERE user_id >= step.next_key AND user_id < upto;
        INSERT INTO favoriter_counts (user_id, shard, favorites)
        SELECT user_id, 0, count(*) FROM favorites
         WHERE user_id >= step.next_key AND user_id < upto GROUP BY user_id;
        last := (SELECT max(id) FROM users);
    ELSIF step.phase = 'authors' THEN
        LOCK TABLE articles IN SHARE MODE;
        DELETE FROM author_counts WHERE user_id >= step.next_key AND user_id < upto;
        INSERT INTO author_counts (user_id, shard, articles)
        SELECT author_id, 0, count(*) FROM articles
         WHERE author_id >= step.next_key AND author_id < upto GROUP BY author_id;
        last := (SELECT max(id) FROM users);
    ELSE
        LOCK TABLE article_tags IN SHARE MODE;
        DELETE FROM tag_counts WHERE tag_id >= step.next_key AND tag_id < upto;
        INSERT INTO tag_counts (tag_id, shard, articles)
        SELECT tag_id, 0, count(*) FROM article_tags
         WHERE tag_id >= step.next_key AND tag_id < upto GROUP BY tag_id;
        last := (SELECT max(id) FROM tags);
    END IF;
    UPDATE count_backfill SET next_key = upto, done = upto > coalesce(last, 0) WHERE position = step.position;
    RETURN true;
END
$$;
