-- What the read queries need to answer in one round trip, with JSON built by PostgreSQL.

-- Timestamps as the API writes them: UTC with milliseconds, 2024-01-01T09:30:00.123Z (the same
-- text pydantic wrote). A plain SQL function, so the planner inlines it.
CREATE FUNCTION api_time(moment timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

-- A page of articles as the API's JSON, in the order of `ids`, for the lists and the feed (keys
-- and their order as in schemas/articles.py ArticleSummary; tests/test_sql_json.py checks).
-- A function rather than part of each list query: PostgreSQL keeps one plan for it per session,
-- while the list queries around it are planned for their filter values on every execution
-- (a LIMIT given as a parameter keeps PostgreSQL on custom plans), and planning this
-- rendering each time would cost more than running it.
CREATE FUNCTION articles_json(ids bigint[], viewer bigint) RETURNS json
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
               'favoritesCount', (SELECT count(*) FROM favorites f WHERE f.article_id = a.id),
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

-- articlesCount of the unfiltered list, exact and cheap: counting the index of 100,000 articles
-- costs milliseconds on every page, so inserts and deletes of articles (cascades and COPY too)
-- keep a running total here, in their own transaction. The total is spread over 16 rows, one per
-- backend (pid modulo 16), so concurrent writers do not queue on a single row; it is their sum.
CREATE TABLE article_totals (
    shard    smallint PRIMARY KEY,
    articles bigint NOT NULL
);
INSERT INTO article_totals (shard, articles) SELECT s, 0 FROM generate_series(0, 15) AS s;
UPDATE article_totals SET articles = (SELECT count(*) FROM articles) WHERE shard = 0;

CREATE FUNCTION article_totals_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM new_rows;
    ELSE
        SELECT -count(*) INTO delta FROM old_rows;
    END IF;
    IF delta <> 0 THEN  -- an insert that conflicted changes nothing, and locks nothing
        UPDATE article_totals SET articles = articles + delta WHERE shard = pg_backend_pid() % 16;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION article_totals_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE article_totals SET articles = 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER articles_total_insert AFTER INSERT ON articles
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION article_totals_count();
CREATE TRIGGER articles_total_delete AFTER DELETE ON articles
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION article_totals_count();
CREATE TRIGGER articles_total_truncate AFTER TRUNCATE ON articles
    FOR EACH STATEMENT EXECUTE FUNCTION article_totals_reset();
