"""Property: whatever JSON, bytes, strings, path segments and tokens are thrown at the write
endpoints, the answer is 2xx or 4xx with a JSON body, a 4xx changes nothing stored, a 2xx
changes exactly what it says (text stored verbatim), and the database's invariants hold."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.counts import MISMATCHES
from tests.helpers import auth, create_article, register

TABLES = ["users", "follows", "articles", "tags", "article_tags", "favorites", "comments"]

SNIPPETS = [
    "'; DROP TABLE users; --",
    "<script>alert(1)</script>",
    "\x00",
    "\ud800",
    "\udfff",
    "%00",
    "../..",
    "$1",
    "\\",
    '"',
    "{{7*7}}",
    "\u202e",
    "\U0001f600",
    "admin@example.com",
    "alice",
    "target",
]

characters = st.one_of(
    st.characters(),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
    st.sampled_from(["\x00", "'", '"', "<", ">", "\\", "%", "@", ".", "-"]),
)
texts = st.one_of(
    st.text(characters, max_size=30),
    st.sampled_from(SNIPPETS),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "\U0001f600"]), st.integers(0, 2100)),
    st.builds(
        lambda a, b: f"{a}@{b}.com",
        st.text(characters, min_size=1, max_size=12),
        st.text(characters, min_size=1, max_size=8),
    ),
)
# Path segments stay short: a request line over aiohttp's 8190 bytes is refused by the HTTP parser
# itself (400 text/plain), before the app sees it.
NASTY = ["\x00", "\ud800", "\udc80", "'", '"', "<", "%", "/", "\\", ";", "\n", " "]
SEGMENTS = [
    st.text(st.sampled_from(NASTY), min_size=1, max_size=6),
    st.text(characters, max_size=40),
    st.sampled_from(SNIPPETS),
    st.builds(
        lambda a, snippet, b: a + snippet + b,
        st.text(characters, max_size=8),
        st.sampled_from(SNIPPETS),
        st.text(characters, max_size=8),
    ),
]


def segment_or(draw, existing: Any) -> Any:
    """An existing value about half of the time (so writes happen), else a hostile segment;
    each kind is picked uniformly (st.one_of would favour its first, simplest branch)."""
    return draw(st.sampled_from([st.just(existing), st.just(existing), *SEGMENTS]).flatmap(lambda s: s))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), texts
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)

# method, path template, envelope, fields
ENDPOINTS = [
    ("POST", "/api/users", "user", ["username", "email", "password"]),
    ("POST", "/api/users/login", "user", ["email", "password"]),
    ("PUT", "/api/user", "user", ["username", "email", "password", "bio", "image"]),
    ("POST", "/api/articles", "article", ["title", "description", "body", "tagList"]),
    ("PUT", "/api/articles/{slug}", "article", ["title", "description", "body"]),
    ("DELETE", "/api/articles/{slug}", None, []),
    ("POST", "/api/articles/{slug}/comments", "comment", ["body"]),
    ("DELETE", "/api/articles/{slug}/comments/{id}", None, []),
    ("POST", "/api/articles/{slug}/favorite", None, []),
    ("DELETE", "/api/articles/{slug}/favorite", None, []),
    ("POST", "/api/profiles/{username}/follow", None, []),
    ("DELETE", "/api/profiles/{username}/follow", None, []),
]


# Values a client might plausibly send, so that many requests are accepted and really write:
# printable text with SQL, HTML and non-ASCII in it (PostgreSQL holds all of it verbatim).
storable = st.characters(exclude_categories=("Cs", "Cc"))
printable_snippets = [s for s in SNIPPETS if s.isprintable() and s.encode("utf-8", "ignore").decode() == s]
plain = st.one_of(st.text(storable, min_size=1, max_size=60), st.sampled_from(printable_snippets))
no_at = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs"), exclude_characters="@"), min_size=1, max_size=20)
_serial = itertools.count()  # hypothesis starts from small values: without it most would be taken
PLAUSIBLE = {
    "username": st.builds(
        lambda name: f"{name}{next(_serial)}", st.from_regex(r"[A-Za-z0-9_.-]{1,30}", fullmatch=True)
    ),
    "email": st.builds(
        lambda local, host: f"{local}{next(_serial)}@{host}.com",
        no_at,
        st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True),
    ),
    "password": st.text(storable, min_size=8, max_size=40),
    "tagList": st.lists(st.text(storable, min_size=1, max_size=40), max_size=10),
}


def field_value(draw, name: str) -> Any:
    """Mostly a plausible value; now and then anything at all."""
    if draw(st.integers(0, 5)) == 5:
        return draw(st.one_of(texts, json_values, st.lists(texts, max_size=12)))
    return draw(PLAUSIBLE.get(name, plain))


@st.composite
def bodies(draw, envelope: str | None, fields: list[str]) -> Any:
    """A plausible envelope (often valid, so writes happen), arbitrary JSON, or raw bytes."""
    kind = draw(st.sampled_from(["shaped", "shaped", "shaped", "shaped", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json" or envelope is None:
        return draw(json_values)
    every = draw(st.integers(0, 3)) > 0
    chosen = fields if every else draw(st.lists(st.sampled_from(fields), unique=True))
    return {envelope: {name: field_value(draw, name) for name in chosen}}


@st.composite
def requests(draw) -> dict:
    method, template, envelope, fields = draw(st.sampled_from(ENDPOINTS))
    return {
        "method": method,
        "template": template,
        "slug": segment_or(draw, None),  # None: an existing article's slug
        "id": segment_or(draw, None),  # None: an existing comment's id
        "username": segment_or(draw, draw(st.sampled_from(["alice", "bob"]))),
        "pick": draw(st.integers(0, 20)),  # which existing article or comment
        "caller": draw(st.sampled_from(["alice", "alice", "bob", "bob", "nobody", "garbage"])),
        "garbage": draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)),
        "body": draw(bodies(envelope, fields)),
    }


@dataclass
class World:
    client: Any
    db: Any
    tokens: dict[str, str]


@pytest.fixture
async def world(client, db) -> World:
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    for title, owner in [("first", alice), ("second", bob), ("third", alice), ("fourth", bob)]:
        article = await create_article(client, owner["token"], title=title, tags=["t1", "t2"])
        for commenter in (alice, bob):
            await client.post(
                f"/api/articles/{article['slug']}/comments",
                json={"comment": {"body": "hello"}},
                headers=auth(commenter["token"]),
            )
    return World(client, db, {"alice": alice["token"], "bob": bob["token"]})


_STATE = "SELECT " + ", ".join(
    f"(SELECT count(*) FROM {t}) AS {t}, "
    f"(SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM {t} r) AS {t}_rows"
    for t in TABLES
)


async def state(db) -> tuple[dict[str, int], dict[str, str]]:
    """Row counts, and a fingerprint of every row (login_failures is left out: it records on purpose)."""
    row = await db.fetchrow(_STATE)
    return {t: row[t] for t in TABLES}, {t: row[f"{t}_rows"] for t in TABLES}


def segment(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


INVARIANTS = {
    "usernames are well-formed": "SELECT count(*) FROM users WHERE username !~ '^[A-Za-z0-9_.-]{1,40}$'",
    "passwords are argon2id hashes": "SELECT count(*) FROM users WHERE password_hash NOT LIKE '$argon2id$%'",
    "emails are unique in any case": "SELECT count(*) - count(DISTINCT lower(email)) FROM users",
    "at most ten tags": "SELECT count(*) FROM (SELECT 1 FROM article_tags GROUP BY article_id HAVING count(*) > 10) x",
    "article totals equal rows": "SELECT (SELECT coalesce(sum(articles), 0) FROM article_totals)"
    " - (SELECT count(*) FROM articles)",
    "no orphan articles": "SELECT count(*) FROM articles WHERE author_id NOT IN (SELECT id FROM users)",
    "no orphan comments": "SELECT count(*) FROM comments WHERE article_id NOT IN (SELECT id FROM articles)"
    " OR author_id NOT IN (SELECT id FROM users)",
    "no orphan favorites": "SELECT count(*) FROM favorites WHERE article_id NOT IN (SELECT id FROM articles)"
    " OR user_id NOT IN (SELECT id FROM users)",
    "no orphan tag links": "SELECT count(*) FROM article_tags WHERE tag_id NOT IN (SELECT id FROM tags)"
    " OR article_id NOT IN (SELECT id FROM articles)",
    "nobody follows themselves": "SELECT count(*) FROM follows WHERE follower_id = followed_id",
    "every kept count equals its rows": f"SELECT {MISMATCHES}",
}
_INVARIANTS = "SELECT " + ", ".join(f"({sql}) AS i{n}" for n, sql in enumerate(INVARIANTS.values()))


async def check_invariants(db) -> None:
    row = await db.fetchrow(_INVARIANTS)
    broken = [name for n, name in enumerate(INVARIANTS) if row[f"i{n}"] != 0]
    assert not broken, broken


async def send(world: World, case: dict) -> tuple[Any, dict]:
    db = world.db
    slug = case["slug"]
    if slug is None:
        slug = (
            await db.fetchval(
                "SELECT slug FROM articles ORDER BY id OFFSET $1 % greatest(1, "
                "(SELECT count(*) FROM articles)) LIMIT 1",
                case["pick"],
            )
            or "gone"
        )
    comment_id = case["id"]
    if comment_id is None:
        comment_id = str(
            await db.fetchval(
                "SELECT id FROM comments ORDER BY id OFFSET $1 % greatest(1, (SELECT count(*) FROM comments)) LIMIT 1",
                case["pick"],
            )
            or 1
        )
    path = case["template"].format(slug=segment(slug), id=segment(comment_id), username=segment(case["username"]))
    headers = {}
    if case["caller"] in world.tokens:
        headers = auth(world.tokens[case["caller"]])
    elif case["caller"] == "garbage":
        headers = {"Authorization": f"Token {case['garbage']}"}
    body = case["body"]
    # NaN and Infinity come out of json.dumps as invalid JSON, on purpose
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers["Content-Type"] = "application/json"
    response = await world.client.request(case["method"], URL(path, encoded=True), data=data, headers=headers)
    answer = {} if response.status == 204 else await response.json()
    return response, answer


def sent(case: dict, envelope: str, name: str) -> Any:
    body = case["body"]
    return body[envelope].get(name) if isinstance(body, dict) and isinstance(body.get(envelope), dict) else None


async def check_effect(world: World, case: dict, answer: dict, before: dict, after: dict) -> None:
    """A 2xx did exactly what it says; its text came back and was stored as sent."""
    method, template = case["method"], case["template"]
    delta = {table: after[table] - before[table] for table in TABLES}
    db = world.db
    if (method, template) == ("POST", "/api/users"):
        assert delta["users"] == 1
        for name in ("username", "email"):
            assert answer["user"][name] == sent(case, "user", name)
    elif (method, template) == ("POST", "/api/articles"):
        article = answer["article"]
        assert delta["articles"] == 1 and delta["article_tags"] == len(article["tagList"])
        for name in ("title", "description", "body"):
            assert article[name] == sent(case, "article", name)
        assert article["tagList"] == sorted(set(sent(case, "article", "tagList") or []))
        stored = await db.fetchrow("SELECT title, description, body FROM articles WHERE slug = $1", article["slug"])
        assert dict(stored) == {k: article[k] for k in ("title", "description", "body")}
    elif (method, template) == ("PUT", "/api/articles/{slug}"):
        article = answer["article"]
        stored = await db.fetchrow("SELECT title, description, body FROM articles WHERE slug = $1", article["slug"])
        assert dict(stored) == {k: article[k] for k in ("title", "description", "body")}
        for name in ("title", "description", "body"):
            if sent(case, "article", name) is not None:
                assert article[name] == sent(case, "article", name)
    elif (method, template) == ("PUT", "/api/user"):
        user = answer["user"]
        stored = await db.fetchrow("SELECT username, email, bio FROM users WHERE username = $1", user["username"])
        assert dict(stored) == {k: user[k] for k in ("username", "email", "bio")}
    elif (method, template) == ("DELETE", "/api/articles/{slug}"):
        assert delta["articles"] == -1
    elif (method, template) == ("POST", "/api/articles/{slug}/comments"):
        assert delta["comments"] == 1 and answer["comment"]["body"] == sent(case, "comment", "body")
    elif (method, template) == ("DELETE", "/api/articles/{slug}/comments/{id}"):
        assert delta["comments"] == -1
    elif template.endswith("/favorite"):
        article = answer["article"]
        assert article["favorited"] is (method == "POST")
        assert delta["favorites"] in ((0, 1) if method == "POST" else (0, -1))
    elif template.endswith("/follow"):
        assert answer["profile"]["following"] is (method == "POST")
    elif template == "/api/users/login":
        assert delta == dict.fromkeys(TABLES, 0)


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure reproduces, the suite stays deterministic
    database=None,
    # One app and one database serve every example on purpose: each example is checked against
    # the state it found, and the state left by earlier examples makes later ones more varied.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=requests())
async def test_hostile_writes_answer_2xx_or_4xx_and_leave_the_database_intact(world, case):
    before, before_rows = await state(world.db)
    response, answer = await send(world, case)
    assert response.status < 500, (response.status, answer, case)
    if response.status != 204:
        assert response.content_type == "application/json"
    after, after_rows = await state(world.db)
    if response.status >= 400:
        assert answer["errors"], answer
        assert after_rows == before_rows, "a refused request changed stored data"
    else:
        await check_effect(world, case, answer, before, after)
    await check_invariants(world.db)
