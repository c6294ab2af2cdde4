"""Articles: create, read, update, delete; slugs; lists with pagination and filters; the feed;
favorites; and a fixed number of statements per list whatever the page size."""

from __future__ import annotations

import pytest

from tests.helpers import auth, create_article
from tests.realworld import (
    ARTICLE_KEYS,
    ISO_MILLIS_UTC,
    SUMMARY_KEYS,
    URL_SAFE_SLUG,
    QueryLog,
    articles,
    errors,
    favorite,
    follow,
    member,
    members,
    ok,
    quick_users,
    slugs,
)

DRAGON = {
    "title": "How to train your dragon",
    "description": "Ever wonder how?",
    "body": "Very carefully.",
    "tagList": ["training", "dragons"],
}


async def post_article(client, token: str | None, article: dict):
    return await client.post("/api/articles", json={"article": article}, headers=auth(token) if token else {})


async def get_article(client, slug: str, token: str | None = None) -> dict:
    return (await ok(await client.get(f"/api/articles/{slug}", headers=auth(token) if token else {})))["article"]


async def put_article(client, token: str, slug: str, changes: dict):
    return await client.put(f"/api/articles/{slug}", json={"article": changes}, headers=auth(token))


# Create and read


async def test_create_answers_201_with_the_whole_article(client, db):
    jake = await member(db, "jake")
    article = (await ok(await post_article(client, jake["token"], DRAGON), 201))["article"]
    assert set(article) == ARTICLE_KEYS
    assert article["slug"] == "how-to-train-your-dragon"
    assert (article["title"], article["description"], article["body"]) == (
        DRAGON["title"],
        DRAGON["description"],
        DRAGON["body"],
    )
    assert article["tagList"] == ["dragons", "training"]  # alphabetical, whatever the order given
    assert (article["favorited"], article["favoritesCount"]) == (False, 0)
    assert article["author"] == {"username": "jake", "bio": None, "image": None, "following": False}
    assert ISO_MILLIS_UTC.match(article["createdAt"]) and ISO_MILLIS_UTC.match(article["updatedAt"])
    assert await get_article(client, article["slug"]) == article
    assert await db.fetchval("SELECT count(*) FROM articles") == 1


async def test_tag_list_is_optional_and_repeated_tags_count_once(client, db):
    jake = await member(db, "jake")
    assert set(await errors(await post_article(client, jake["token"], {**DRAGON, "tagList": None}), 422)) == {
        "tagList"  # null is not a list
    }
    untagged = {key: value for key, value in DRAGON.items() if key != "tagList"}
    assert (await ok(await post_article(client, jake["token"], untagged), 201))["article"]["tagList"] == []
    repeated = {**DRAGON, "tagList": ["b", "a", "b"]}
    assert (await ok(await post_article(client, jake["token"], repeated), 201))["article"]["tagList"] == ["a", "b"]


async def test_create_needs_a_valid_token(client, db):
    await errors(await post_article(client, None, DRAGON), 401)
    await errors(await post_article(client, "not-a-token", DRAGON), 401)
    assert await db.fetchval("SELECT count(*) FROM articles") == 0


async def test_create_with_missing_fields_names_each_field(client, db):
    jake = await member(db, "jake")
    assert set(await errors(await post_article(client, jake["token"], {}), 422)) == {"title", "description", "body"}
    assert set(await errors(await client.post("/api/articles", json={}, headers=auth(jake["token"])), 422)) == {
        "article"
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("title", ""), ("description", ""), ("body", ""), ("title", 42), ("tagList", "dragons"), ("tagList", [""])],
)
async def test_create_with_an_invalid_field_names_that_field(client, field, value, db):
    jake = await member(db, "jake")
    assert set(await errors(await post_article(client, jake["token"], {**DRAGON, field: value}), 422)) == {field}


async def test_an_unknown_slug_is_404_everywhere(client, db):
    jake = await member(db, "jake")
    headers = auth(jake["token"])
    assert set(await errors(await client.get("/api/articles/no-such-article"), 404)) == {"article"}
    await errors(await put_article(client, jake["token"], "no-such-article", {"body": "x"}), 404)
    await errors(await client.delete("/api/articles/no-such-article", headers=headers), 404)
    await errors(await client.post("/api/articles/no-such-article/favorite", headers=headers), 404)
    await errors(await client.delete("/api/articles/no-such-article/favorite", headers=headers), 404)


async def test_reading_is_anonymous_or_signed_in_but_never_with_a_bad_token(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"])
    await get_article(client, article["slug"])
    await get_article(client, article["slug"], jake["token"])
    await errors(await client.get(f"/api/articles/{article['slug']}", headers=auth("not-a-token")), 401)


async def test_the_reader_sees_their_own_favorited_and_following(client, db):
    jake, anna = await members(db, "jake", "anna")
    article = await create_article(client, jake["token"])
    await favorite(client, anna["token"], article["slug"])
    await follow(client, anna["token"], "jake")
    as_anna = await get_article(client, article["slug"], anna["token"])
    assert (as_anna["favorited"], as_anna["favoritesCount"], as_anna["author"]["following"]) == (True, 1, True)
    as_jake = await get_article(client, article["slug"], jake["token"])
    assert (as_jake["favorited"], as_jake["favoritesCount"], as_jake["author"]["following"]) == (False, 1, False)
    anonymous = await get_article(client, article["slug"])
    assert (anonymous["favorited"], anonymous["author"]["following"]) == (False, False)


# Slugs


async def test_slugs_are_url_safe_and_unique_when_titles_repeat(client, db):
    jake = await member(db, "jake")
    first = await create_article(client, jake["token"], title="Hello, World! Again?")
    second = await create_article(client, jake["token"], title="Hello, World! Again?")
    third = await create_article(client, jake["token"], title="hello world again")
    assert first["slug"] == "hello-world-again"
    found = [first["slug"], second["slug"], third["slug"]]
    assert len(set(found)) == 3
    for slug in found:
        assert URL_SAFE_SLUG.match(slug) and slug.startswith("hello-world-again")
        assert (await get_article(client, slug))["slug"] == slug


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Ünïcödé Àrticle", "unicode-article"),
        ("Crème brûlée: the ½ story", "creme-brulee-the-1-2-story"),
        ("Łódź an der Straße", "lodz-an-der-strasse"),
    ],
)
async def test_unicode_titles_give_readable_ascii_slugs(client, title, expected, db):
    jake = await member(db, "jake")
    assert (await create_article(client, jake["token"], title=title))["slug"] == expected


async def test_titles_without_latin_letters_still_get_distinct_url_safe_slugs(client, db):
    jake = await member(db, "jake")
    made = [
        await create_article(client, jake["token"], title=title) for title in ("日本語の記事", "日本語の記事", "🐉")
    ]
    assert len({article["slug"] for article in made}) == 3
    for article in made:
        assert URL_SAFE_SLUG.match(article["slug"])
        assert (await get_article(client, article["slug"]))["title"] == article["title"]


async def test_changing_the_title_changes_the_slug(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"], title="Old title")
    updated = (await ok(await put_article(client, jake["token"], article["slug"], {"title": "New title"})))["article"]
    assert updated["slug"] == "new-title" and updated["title"] == "New title"
    await errors(await client.get("/api/articles/old-title"), 404)
    assert (await get_article(client, "new-title"))["body"] == article["body"]


async def test_a_new_title_that_another_article_has_gets_a_unique_slug(client, db):
    jake = await member(db, "jake")
    await create_article(client, jake["token"], title="Taken")
    article = await create_article(client, jake["token"], title="Free")
    updated = (await ok(await put_article(client, jake["token"], article["slug"], {"title": "Taken"})))["article"]
    assert updated["slug"] != "taken" and updated["slug"].startswith("taken-")
    assert (await get_article(client, "taken"))["title"] == "Taken"


async def test_an_update_without_a_new_title_keeps_the_slug(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"], title="Same")
    response = await put_article(client, jake["token"], article["slug"], {"title": "Same", "body": "new body"})
    assert (await ok(response))["article"]["slug"] == "same"


# Update and delete


async def test_the_author_updates_the_given_fields(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"], tags=["b", "a"])
    response = await put_article(
        client, jake["token"], article["slug"], {"body": "With two hands", "description": "new"}
    )
    updated = (await ok(response))["article"]
    assert (updated["body"], updated["description"], updated["title"]) == ("With two hands", "new", article["title"])
    assert updated["tagList"] == ["a", "b"]
    assert updated["createdAt"] == article["createdAt"] and updated["updatedAt"] >= article["updatedAt"]
    # milliseconds on the wire may tie; the stored microseconds may not
    assert await db.fetchval("SELECT updated_at > created_at FROM articles")
    assert await get_article(client, article["slug"]) == updated


async def test_null_in_an_update_is_422_and_changes_nothing(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"], tags=["kept"])
    response = await put_article(client, jake["token"], article["slug"], {"title": None, "tagList": None})
    assert await errors(response, 422) == {"title": ["can't be blank"], "tagList": ["must be an array"]}
    assert await get_article(client, article["slug"]) == article


async def test_fields_left_out_of_an_update_stay_as_they_are(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"], tags=["kept"])
    updated = (await ok(await put_article(client, jake["token"], article["slug"], {"body": "new"})))["article"]
    assert (updated["slug"], updated["title"], updated["description"], updated["tagList"]) == (
        article["slug"],
        article["title"],
        article["description"],
        ["kept"],
    )
    assert updated["body"] == "new"


async def test_tag_list_in_an_update_replaces_the_tags(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"], tags=["dragons", "training"])
    other = await create_article(client, jake["token"], title="Other", tags=["training"])
    replaced = await put_article(client, jake["token"], article["slug"], {"tagList": ["zebras", "dragons", "zebras"]})
    assert (await ok(replaced))["article"]["tagList"] == ["dragons", "zebras"]
    assert (await get_article(client, article["slug"]))["tagList"] == ["dragons", "zebras"]
    assert (await ok(await client.get("/api/tags")))["tags"] == ["dragons", "training", "zebras"]
    emptied = await put_article(client, jake["token"], article["slug"], {"tagList": []})
    assert (await ok(emptied))["article"]["tagList"] == []
    # A tag no article uses any more leaves the list of tags; one still in use stays.
    assert (await ok(await client.get("/api/tags")))["tags"] == ["training"]
    assert (await articles(client, "tag=dragons"))["articlesCount"] == 0
    assert (await get_article(client, other["slug"]))["tagList"] == ["training"]


async def test_only_the_author_may_update_or_delete(client, db):
    jake, anna = await members(db, "jake", "anna")
    article = await create_article(client, jake["token"])
    assert set(await errors(await put_article(client, anna["token"], article["slug"], {"body": "mine"}), 403)) == {
        "article"
    }
    await errors(await client.delete(f"/api/articles/{article['slug']}", headers=auth(anna["token"])), 403)
    assert await get_article(client, article["slug"]) == article


async def test_update_and_delete_need_a_valid_token(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"])
    path = f"/api/articles/{article['slug']}"
    for headers in ({}, auth("not-a-token")):
        await errors(await client.put(path, json={"article": {"body": "x"}}, headers=headers), 401)
        await errors(await client.delete(path, headers=headers), 401)


@pytest.mark.parametrize(("field", "value"), [("title", ""), ("body", ""), ("description", 7), ("body", [1])])
async def test_update_validates_each_field(client, field, value, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"])
    response = await put_article(client, jake["token"], article["slug"], {field: value})
    assert set(await errors(response, 422)) == {field}


async def test_delete_answers_204_and_removes_the_article_with_its_comments_and_favorites(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"], tags=["gone"])
    await favorite(client, jake["token"], article["slug"])
    await ok(
        await client.post(
            f"/api/articles/{article['slug']}/comments", json={"comment": {"body": "x"}}, headers=auth(jake["token"])
        ),
        201,
    )
    response = await client.delete(f"/api/articles/{article['slug']}", headers=auth(jake["token"]))
    assert response.status == 204 and await response.read() == b""
    await errors(await client.get(f"/api/articles/{article['slug']}"), 404)
    for table in ("articles", "favorites", "comments", "article_tags"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table


# Lists


async def test_lists_show_summaries_without_body_newest_first(client, db):
    jake = await member(db, "jake")
    made = [await create_article(client, jake["token"], title=f"Article {n}", tags=["z", "a"]) for n in range(3)]
    listing = await articles(client)
    assert listing["articlesCount"] == 3
    assert slugs(listing) == [article["slug"] for article in reversed(made)]
    for article in listing["articles"]:
        assert set(article) == SUMMARY_KEYS  # no "body" in lists
        assert article["tagList"] == ["a", "z"]


async def test_an_empty_list(client):
    assert await articles(client) == {"articles": [], "articlesCount": 0}


async def test_pagination_with_limit_and_offset_and_an_exact_count(client, db):
    jake = await member(db, "jake")
    made = [(await create_article(client, jake["token"], title=f"Article {n}"))["slug"] for n in range(25)]
    newest_first = list(reversed(made))
    default = await articles(client)
    assert slugs(default) == newest_first[:20]  # limit defaults to 20, offset to 0
    assert default["articlesCount"] == 25
    page = await articles(client, "limit=5&offset=10")
    assert slugs(page) == newest_first[10:15]
    assert page["articlesCount"] == 25  # the whole count, not the page's
    assert slugs(await articles(client, "limit=100&offset=20")) == newest_first[20:]
    beyond = await articles(client, "offset=1000")
    assert beyond == {"articles": [], "articlesCount": 25}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=1.5", "offset"),
    ],
)
async def test_bad_pagination_is_422_naming_the_parameter(client, query, field, db):
    jake = await member(db, "jake")
    assert set(await errors(await client.get(f"/api/articles?{query}"), 422)) == {field}
    assert set(await errors(await client.get(f"/api/articles/feed?{query}", headers=auth(jake["token"])), 422)) == {
        field
    }


async def test_lists_are_anonymous_or_signed_in_but_never_with_a_bad_token(client, db):
    await articles(client)
    await errors(await client.get("/api/articles", headers=auth("not-a-token")), 401)
    orphan = await member(db, "orphan")
    await db.execute("DELETE FROM users WHERE username = 'orphan'")
    assert set(await errors(await client.get("/api/articles", headers=auth(orphan["token"])), 401)) == {"token"}


@pytest.fixture
async def library(client, db):
    """jake wrote a (dragons, training) and b (dragons); anna wrote c (training) and d (none).
    anna favorited a and c; jake favorited c. Slugs by name, created in the order a, b, c, d."""
    jake, anna = await members(db, "jake", "anna")
    made = {
        "a": await create_article(client, jake["token"], title="a", tags=["dragons", "training"]),
        "b": await create_article(client, jake["token"], title="b", tags=["dragons"]),
        "c": await create_article(client, anna["token"], title="c", tags=["training"]),
        "d": await create_article(client, anna["token"], title="d"),
    }
    await favorite(client, anna["token"], "a")
    await favorite(client, anna["token"], "c")
    await favorite(client, jake["token"], "c")
    return {"jake": jake, "anna": anna, **made}


FILTERS = [
    ("", ["d", "c", "b", "a"]),
    ("tag=dragons", ["b", "a"]),
    ("tag=training", ["c", "a"]),
    ("tag=unknown", []),
    ("author=jake", ["b", "a"]),
    ("author=anna", ["d", "c"]),
    ("author=nobody", []),
    ("favorited=anna", ["c", "a"]),
    ("favorited=jake", ["c"]),
    ("favorited=nobody", []),
    ("tag=training&author=jake", ["a"]),
    ("tag=dragons&author=anna", []),
    ("tag=training&favorited=jake", ["c"]),
    ("author=jake&favorited=anna", ["a"]),
    ("tag=training&author=anna&favorited=anna", ["c"]),
    ("tag=dragons&author=jake&favorited=anna", ["a"]),
]


async def test_each_filter_and_their_combinations(client, library):
    for query, expected in FILTERS:
        listing = await articles(client, query)
        assert (query, slugs(listing), listing["articlesCount"]) == (query, expected, len(expected))


async def test_a_filtered_count_is_independent_of_the_page(client, library):
    page = await articles(client, "tag=training&limit=1&offset=1")
    assert slugs(page) == ["a"] and page["articlesCount"] == 2


async def test_lists_show_the_readers_favorited_and_following(client, library):
    await follow(client, library["jake"]["token"], "anna")
    listing = await articles(client, token=library["jake"]["token"])
    seen = {a["slug"]: (a["favorited"], a["favoritesCount"], a["author"]["following"]) for a in listing["articles"]}
    assert seen == {"a": (False, 1, False), "b": (False, 0, False), "c": (True, 2, True), "d": (False, 0, True)}


# Feed


async def test_the_feed_lists_followed_authors_newest_first(client, library, db):
    reader = await member(db, "reader")
    assert await articles(client, token=reader["token"], path="/api/articles/feed") == {
        "articles": [],
        "articlesCount": 0,
    }
    await follow(client, reader["token"], "anna")
    feed = await articles(client, token=reader["token"], path="/api/articles/feed")
    assert slugs(feed) == ["d", "c"] and feed["articlesCount"] == 2
    for article in feed["articles"]:
        assert set(article) == SUMMARY_KEYS and article["author"]["following"] is True
    await follow(client, reader["token"], "jake")
    feed = await articles(client, "limit=2&offset=1", token=reader["token"], path="/api/articles/feed")
    assert slugs(feed) == ["c", "b"] and feed["articlesCount"] == 4


async def test_the_feed_shows_the_readers_favorites(client, library):
    await follow(client, library["jake"]["token"], "anna")
    feed = await articles(client, token=library["jake"]["token"], path="/api/articles/feed")
    assert [(a["slug"], a["favorited"], a["favoritesCount"]) for a in feed["articles"]] == [
        ("d", False, 0),
        ("c", True, 2),
    ]


async def test_the_feed_needs_a_valid_token(client):
    await errors(await client.get("/api/articles/feed"), 401)
    await errors(await client.get("/api/articles/feed", headers=auth("not-a-token")), 401)


# Favorites


async def test_favorite_and_unfavorite(client, db):
    jake, anna = await members(db, "jake", "anna")
    article = await create_article(client, jake["token"])
    liked = await favorite(client, anna["token"], article["slug"])
    assert (liked["favorited"], liked["favoritesCount"]) == (True, 1)
    assert set(liked) == ARTICLE_KEYS
    both = await favorite(client, jake["token"], article["slug"])
    assert (both["favorited"], both["favoritesCount"]) == (True, 2)
    again = await favorite(client, jake["token"], article["slug"])  # idempotent
    assert (again["favorited"], again["favoritesCount"]) == (True, 2)
    assert await db.fetchval("SELECT count(*) FROM favorites") == 2

    response = await client.delete(f"/api/articles/{article['slug']}/favorite", headers=auth(anna["token"]))
    unliked = (await ok(response))["article"]
    assert (unliked["favorited"], unliked["favoritesCount"]) == (False, 1)
    response = await client.delete(f"/api/articles/{article['slug']}/favorite", headers=auth(anna["token"]))
    assert ((await ok(response))["article"]["favoritesCount"]) == 1  # unfavoriting twice changes nothing
    assert await db.fetchval("SELECT count(*) FROM favorites") == 1


async def test_favorite_needs_a_valid_token(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"])
    path = f"/api/articles/{article['slug']}/favorite"
    for method in (client.post, client.delete):
        await errors(await method(path), 401)
        await errors(await method(path, headers=auth("not-a-token")), 401)


# A fixed number of statements per list, whatever the page size


@pytest.fixture
async def counted(make_client, db):
    """The app with a pool of one connection, whose statements are counted; 20 articles by 20
    authors, each with tags, favorited by the reader, who follows every author."""
    client = await make_client(DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1")
    reader = await member(db, "reader")
    for n, token in enumerate(await quick_users(db, [f"author{n}" for n in range(20)])):
        await create_article(client, token, title=f"Article {n}", tags=[f"tag{n}", "common"])
        await favorite(client, reader["token"], f"article-{n}")
        await follow(client, reader["token"], f"author{n}")
    return client, reader["token"], await QueryLog.attach(client)


LISTS = [
    ("/api/articles", ""),
    ("/api/articles", "tag=common&"),
    ("/api/articles", "author=author3&"),
    ("/api/articles", "favorited=reader&"),
    ("/api/articles", "tag=common&favorited=reader&"),
    ("/api/articles/feed", ""),
]


async def test_a_page_of_20_runs_as_many_statements_as_a_page_of_1(counted):
    client, token, log = counted
    for path, query in LISTS:
        for headers in ({}, auth(token)):
            if path.endswith("feed") and not headers:
                continue
            one = await log.count(client.get(f"{path}?{query}limit=1", headers=headers))
            page_of_one = list(log.statements)
            twenty = await log.count(client.get(f"{path}?{query}limit=20", headers=headers))
            assert twenty == one, (path, query, page_of_one, log.statements)
            # one statement: the page, its count and the token's user (the pool's release adds none)
            assert one == 1, (path, query, page_of_one)


async def test_the_counted_pages_really_hold_20_articles(counted):
    client, token, _ = counted
    for path in ("/api/articles", "/api/articles/feed"):
        listing = await articles(client, "limit=20", token, path)
        assert len(listing["articles"]) == 20 and listing["articlesCount"] == 20
        for article in listing["articles"]:
            assert article["favorited"] and article["author"]["following"] and len(article["tagList"]) == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/articles"), ("PUT", "/api/articles/{slug}"), ("POST", "/api/articles/{slug}/comments")],
)
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"article": {"title": ', "application/json"),
        (b'{"article": {}}', "text/plain"),
        (b"\xff\xfe", "application/json"),
    ],
    ids=["malformed", "wrong-type", "not-utf8"],
)
async def test_bad_bodies_are_422_json_on_every_write(client, db, method, path, data, content_type):
    jake = await member(db, "jake")
    slug = (await create_article(client, jake["token"]))["slug"]
    headers = {**auth(jake["token"]), "Content-Type": content_type}
    response = await client.request(method, path.format(slug=slug), data=data, headers=headers)
    assert set(await errors(response, 422)) == {"body"}
    assert await db.fetchval("SELECT count(*) FROM articles") == 1
    assert await db.fetchval("SELECT count(*) FROM comments") == 0
