"""Skewed data, written in SQL: one article with 100,000 favorites, one author with 50,000
articles, one tag on 90% of the articles, beside ordinary rows of each kind. Used by
tests/test_skew_plans.py (plans that skew cannot flip) and `make bench-scale` (their cost)."""

from __future__ import annotations

import asyncpg

FANS = 100_000  # users, every one of whom favorites the viral article
ARTICLES = 60_000  # 50,000 of them by the prolific author
PROLIFIC = 50_000

SKEW_SQL = f"""
INSERT INTO users (username, email, password_hash, bio)
SELECT 'user' || n, 'user' || n || '@example.com', 'not-a-hash', 'bio ' || n FROM generate_series(1, {FANS}) AS n;

INSERT INTO tags (name) VALUES ('everywhere'), ('ordinary'), ('rare');

-- user1 is the prolific author: every article n with n % 6 <> 0 is theirs (50,000); the others
-- belong to users 2-1001 (ten each). One a minute, newest last.
INSERT INTO articles (slug, title, description, body, author_id, created_at, updated_at)
SELECT 'article-' || n, 'Article ' || n, 'about ' || n, 'the body of article ' || n,
       CASE WHEN n % 6 <> 0 THEN 1 ELSE 2 + (n / 6) % 1000 END,
       timestamptz '2024-01-01' + n * interval '1 minute', timestamptz '2024-01-01' + n * interval '1 minute'
  FROM generate_series(1, {ARTICLES}) AS n;

-- 'everywhere' on 90% of articles, 'ordinary' on 10%, 'rare' on 0.1%.
INSERT INTO article_tags (article_id, tag_id)
SELECT a.id, t.id FROM articles a JOIN tags t
    ON (t.name = 'everywhere' AND a.id % 10 <> 0) OR (t.name = 'ordinary' AND a.id % 10 = 0)
    OR (t.name = 'rare' AND a.id % 1000 = 0);

-- The viral article (article-30000) is everyone's favorite; user2 favorites 200 others, user3
-- only the viral one, and a sprinkle of ordinary favorites elsewhere.
INSERT INTO favorites (user_id, article_id)
SELECT u.id, (SELECT id FROM articles WHERE slug = 'article-30000') FROM users u;
INSERT INTO favorites (user_id, article_id)
SELECT 2, id FROM articles WHERE id % 300 = 7 ON CONFLICT DO NOTHING;
INSERT INTO favorites (user_id, article_id)
SELECT 10 + n % 5000, (n * 7919) % {ARTICLES} + 1 FROM generate_series(1, 20000) AS n ON CONFLICT DO NOTHING;

-- user4 follows the prolific author and nine ordinary ones; user5 ten ordinary ones.
INSERT INTO follows (follower_id, followed_id)
SELECT 4, id FROM users WHERE id = 1 OR id BETWEEN 100 AND 108
UNION ALL SELECT 5, id FROM users WHERE id BETWEEN 200 AND 209;
"""

# (name, filter kind, value): each skewed value beside an ordinary one of the same kind
FACTS = {
    "viral_article": "article-30000",
    "ordinary_article": "article-29994",
    "prolific_author": "user1",
    "ordinary_author": "user7",
    "everywhere_tag": "everywhere",
    "rare_tag": "rare",
    "many_favorites": "user2",
    "one_favorite": "user3",
    "reader_of_prolific": 4,
    "ordinary_reader": 5,
}


async def seed_skew(conn: asyncpg.Connection) -> dict[str, object]:
    """Fill empty tables with the skewed data (one transaction), vacuum and analyze them."""
    async with conn.transaction():
        await conn.execute(SKEW_SQL)
    from tests.bench.seed import settle

    await settle(conn)
    return dict(FACTS)
