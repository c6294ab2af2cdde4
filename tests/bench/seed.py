"""Deterministic, realistic data, written through COPY for speed but shaped exactly as the API
writes it: argon2 password hashes, slugs from service.slugs, lower-case-unique emails, tags
linked through article_tags, timestamps with milliseconds.

The same seed (the `Scale`) always gives the same rows, so runs compare."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from service.slugs import slugify

PASSWORD = "password123"  # every seeded user's password, so the bench can log in through the API

TAGS = [
    "aiohttp",
    "algorithms",
    "api",
    "architecture",
    "asyncio",
    "asyncpg",
    "backend",
    "caching",
    "cli",
    "cloud",
    "concurrency",
    "containers",
    "css",
    "data",
    "databases",
    "debugging",
    "design",
    "devops",
    "distributed",
    "docker",
    "dragons",
    "frontend",
    "functional",
    "git",
    "go",
    "graphql",
    "http",
    "indexes",
    "javascript",
    "kubernetes",
    "linux",
    "logging",
    "machine-learning",
    "monitoring",
    "networking",
    "observability",
    "performance",
    "postgresql",
    "python",
    "queues",
    "react",
    "rust",
    "security",
    "sql",
    "testing",
    "training",
    "types",
    "ux",
    "web",
    "writing",
]
FIRST_NAMES = [
    "ada",
    "alan",
    "barbara",
    "brian",
    "charles",
    "dennis",
    "donald",
    "edsger",
    "frances",
    "grace",
    "guido",
    "hedy",
    "ivan",
    "james",
    "ken",
    "leslie",
    "linus",
    "margaret",
    "niklaus",
    "radia",
]
ADJECTIVES = [
    "quiet",
    "fast",
    "honest",
    "small",
    "careful",
    "lazy",
    "hidden",
    "simple",
    "curious",
    "stale",
    "eager",
    "broken",
    "tiny",
    "patient",
    "shared",
    "async",
    "cheap",
    "bold",
    "strange",
    "gentle",
]
NOUNS = [
    "pools",
    "dragons",
    "indexes",
    "queries",
    "workers",
    "sockets",
    "caches",
    "tokens",
    "slugs",
    "transactions",
    "locks",
    "queues",
    "tests",
    "plans",
    "counters",
    "routes",
    "schemas",
    "loops",
]
VERBS = [
    "explain",
    "survive",
    "outlive",
    "break",
    "teach",
    "hide",
    "measure",
    "deserve",
    "resist",
    "reward",
    "surprise",
    "shape",
    "need",
    "forget",
]
WORDS = (  # noqa: SIM905 - a sentence reads better than a list of its words
    "the pool lends one connection per request and always takes it back while the planner picks "
    "an index scan because the newest twenty rows are at the front of the index so nothing else "
    "is read a sequential scan would touch every page of the table and the latency would grow "
    "with it which is why we measure before we change anything and keep what wins"
).split()
IMAGE = "https://api.realworld.io/images/smiley-cyrus.jpeg"
START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scale:
    """How much data: the defaults are the benchmark's (issue 7)."""

    users: int = 120
    articles: int = 10_000
    follows: int = 2_000
    favorites: int = 20_000
    comments: int = 5_000
    seed: int = 7

    @classmethod
    def for_articles(cls, articles: int) -> Scale:
        """The benchmark's proportions at another size (for the scale curve)."""
        return cls(
            users=max(120, articles // 80),
            articles=articles,
            follows=max(2_000, articles // 5),
            favorites=articles * 2,
            comments=articles // 2,
        )


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + "."


def password_hashes(count: int, distinct: bool = True) -> list[str]:
    """Real argon2id hashes of PASSWORD, made by the service's own hasher (one per user, each with
    its own salt; `distinct=False` reuses one hash where only the row's shape matters)."""
    from service.auth import _hasher

    if not distinct:
        return [_hasher.hash(PASSWORD)] * count
    with ThreadPoolExecutor(max_workers=2) as pool:  # argon2 releases the GIL
        return list(pool.map(lambda _: _hasher.hash(PASSWORD), range(count)))


def username(index: int) -> str:
    return f"{FIRST_NAMES[index % len(FIRST_NAMES)]}{index}"


async def seed(conn: asyncpg.Connection, scale: Scale = Scale(), *, distinct_hashes: bool = True) -> dict:
    """Fill empty tables with `scale`'s data in one transaction; return facts the bench needs
    (a popular tag, an author, a user with favorites, a user with a feed, some slugs)."""
    rng = random.Random(scale.seed)
    hashes = password_hashes(scale.users, distinct_hashes)

    users = []
    for i in range(1, scale.users + 1):
        name = username(i)
        bio = _sentence(rng, 4, 14) if rng.random() < 0.7 else None
        image = IMAGE if rng.random() < 0.5 else None
        created = _ms(START - timedelta(days=400) + timedelta(minutes=i * 7, milliseconds=rng.randint(0, 59_999)))
        users.append((i, name, f"{name}@example.com", hashes[i - 1], bio, image, created, created))

    tags = [(i, name) for i, name in enumerate(TAGS, 1)]

    # Authors are skewed the way real sites are: a few write much, most write little.
    author_weights = [1.0 / (rank**0.8) for rank in range(1, scale.users + 1)]
    articles, article_tags, slugs = [], [], []
    moment = START
    for i in range(1, scale.articles + 1):
        moment += timedelta(seconds=rng.randint(60, 3600), milliseconds=rng.randint(0, 999))
        title = (
            f"{rng.choice(ADJECTIVES).capitalize()} {rng.choice(NOUNS)} {rng.choice(VERBS)} "
            f"{rng.choice(NOUNS)}, part {i}"
        )
        if i % 17 == 0:
            title = "Héllo wörld: " + title  # accents, as real titles have: slugify drops them
        slug = slugify(title)
        author = rng.choices(range(1, scale.users + 1), weights=author_weights)[0]
        description = _sentence(rng, 6, 20)
        body = "\n\n".join(_sentence(rng, 20, 60) for _ in range(rng.randint(2, 8)))
        created = _ms(moment)
        updated = created if rng.random() < 0.8 else _ms(created + timedelta(hours=rng.randint(1, 48)))
        articles.append((i, slug, title, description, body, author, created, updated))
        slugs.append(slug)
        for tag in rng.sample(range(1, len(TAGS) + 1), rng.randint(1, 3)):
            article_tags.append((i, tag))

    follows: set[tuple[int, int]] = set()
    while len(follows) < scale.follows:
        a, b = rng.randint(1, scale.users), rng.randint(1, scale.users)
        if a != b:
            follows.add((a, b))
    favorites: set[tuple[int, int]] = set()
    while len(favorites) < scale.favorites:
        favorites.add((rng.randint(1, scale.users), rng.randint(1, scale.articles)))

    comments = []
    for i in range(1, scale.comments + 1):
        article = rng.randint(1, scale.articles)
        created = _ms(articles[article - 1][6] + timedelta(minutes=rng.randint(1, 10_000)))
        comments.append((i, article, rng.randint(1, scale.users), _sentence(rng, 5, 40), created, created))

    async with conn.transaction():
        await conn.copy_records_to_table(
            "users",
            records=users,
            columns=["id", "username", "email", "password_hash", "bio", "image", "created_at", "updated_at"],
        )
        await conn.copy_records_to_table("tags", records=tags, columns=["id", "name"])
        await conn.copy_records_to_table(
            "articles",
            records=articles,
            columns=["id", "slug", "title", "description", "body", "author_id", "created_at", "updated_at"],
        )
        await conn.copy_records_to_table("article_tags", records=article_tags, columns=["article_id", "tag_id"])
        await conn.copy_records_to_table("follows", records=sorted(follows), columns=["follower_id", "followed_id"])
        await conn.copy_records_to_table("favorites", records=sorted(favorites), columns=["user_id", "article_id"])
        await conn.copy_records_to_table(
            "comments",
            records=comments,
            columns=["id", "article_id", "author_id", "body", "created_at", "updated_at"],
        )
        # COPY wrote explicit ids: move each identity past them, as if the API had made the rows.
        for table in ("users", "tags", "articles", "comments"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    await settle(conn)
    return facts(scale, slugs, article_tags, follows, favorites, articles)


SEEDED = ["users", "tags", "articles", "article_tags", "follows", "favorites", "comments"]
KEPT_COUNTS = ["article_totals", "tag_counts", "author_counts", "favoriter_counts", "favorite_counts"]


async def settle(conn: asyncpg.Connection) -> None:
    """Make the tables look like those of a database that has been running a while: the
    visibility map set (index-only scans skip the heap, and the planner counts on it: with
    relallvisible at 0 it picks bitmap heap scans for counts) and statistics gathered, so no
    autovacuum is left to run in the middle of a bench. A VACUUM that overlaps an older
    snapshot (an autovacuum worker that started during the seed) marks nothing, so lagging
    tables are vacuumed again, polling with a bound, until nearly every page is all-visible."""
    # and the counts the triggers kept during the seed (migration 0006), where the schema has them
    present = await conn.fetch(
        "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL", SEEDED + KEPT_COUNTS
    )
    tables = [row["name"] for row in present]
    lagging = tables
    for _ in range(40):
        await conn.execute(f"VACUUM {', '.join(lagging)}")
        lagging = [
            row["relname"]
            for row in await conn.fetch(
                "SELECT relname FROM pg_class WHERE relname = ANY($1::text[]) AND relkind = 'r'"
                " AND relpages > 0 AND relallvisible < relpages * 0.95",
                tables,
            )
        ]
        if not lagging:
            break
        await asyncio.sleep(0.25)
    await conn.execute(f"ANALYZE {', '.join(tables)}")


def facts(scale, slugs, article_tags, follows, favorites, articles) -> dict:
    """Typical (not extreme) values for the filtered endpoints: the median tag, author, favoriter
    and follower, so each measured page is an ordinary one."""

    def median_key(pairs, key_index):
        counts: dict[int, int] = {}
        for pair in pairs:
            counts[pair[key_index]] = counts.get(pair[key_index], 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (item[1], item[0]))
        return ranked[len(ranked) // 2][0]

    tag_id = median_key(article_tags, 1)
    author_id = median_key([(a[5],) for a in articles], 0)
    return {
        "tag": TAGS[tag_id - 1],
        "author": username(author_id),
        "favoriter": username(median_key(favorites, 0)),
        "follower": username(median_key(follows, 0)),
        "slugs": slugs,
        "users": [username(i) for i in range(1, scale.users + 1)],
    }
