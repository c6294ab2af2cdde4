"""Input bounds and hostile input: oversized bodies get 413 before they are read, every string
has a maximum, lists and pages are clamped; NUL, invalid UTF-8, lone surrogates, deep or huge
JSON get 422; SQL- and HTML-looking text is stored and returned verbatim. Never a 500."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest
from yarl import URL

from tests.helpers import auth, create_article, register

LIMIT = 4096  # MAX_BODY_SIZE for the 413 tests


async def test_body_over_the_limit_gets_413_before_it_is_read(make_client, db):
    """Content-Length over MAX_BODY_SIZE: the answer comes while the body is still unsent, so
    the service did not wait to read it (a raw socket sends the headers and a few bytes only)."""
    client = await make_client(MAX_BODY_SIZE=str(LIMIT))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            b"POST /api/users HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 10485760\r\n\r\n{"user": '
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        status_line, *header_lines = head.decode().split("\r\n")
        assert status_line.split(" ")[1] == "413", head
        headers = dict(line.split(": ", 1) for line in header_lines if line)
        body = await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), timeout=10)
        assert headers["Content-Type"].startswith("application/json")
        assert "body" in json.loads(body)["errors"]
    finally:
        writer.close()
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_chunked_body_over_the_limit_gets_413_json(make_client, db):
    """No Content-Length: aiohttp stops reading at client_max_size; the answer is still ours."""
    client = await make_client(MAX_BODY_SIZE=str(LIMIT))

    async def chunks():
        yield b'{"user": {"username": "'
        for _ in range(LIMIT // 512 + 2):
            yield b"a" * 512
        yield b'"}}'

    response = await client.post("/api/users", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413, await response.text()
    assert response.content_type == "application/json"
    assert "body" in (await response.json())["errors"]
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_body_at_the_limit_is_read(make_client):
    client = await make_client(MAX_BODY_SIZE=str(LIMIT))
    padding = "x" * (LIMIT - len('{"user":{"username":"u1","email":"u1@example.com","password":"password123"},"p":""}'))
    body = json.dumps(
        {"user": {"username": "u1", "email": "u1@example.com", "password": "password123"}, "p": padding},
        separators=(",", ":"),
    ).encode()
    assert len(body) == LIMIT
    response = await client.post("/api/users", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 201, await response.text()


def email_of(length: int) -> str:
    domain = "@example.com"
    return "e" * (length - len(domain)) + domain


# (where, field, maximum, a valid value of a given length)
STRING_FIELDS = [
    ("user", "username", 40, lambda n: "u" * n),
    ("user", "email", 254, email_of),
    ("user", "password", 128, lambda n: "p" * n),
    ("user", "bio", 1000, lambda n: "b" * n),
    ("user", "image", 2000, lambda n: "https://example.com/" + "i" * (n - 20)),
    ("article", "title", 200, lambda n: "t" * n),
    ("article", "description", 1000, lambda n: "d" * n),
    ("article", "body", 100_000, lambda n: "b" * n),
    ("article", "tagList", 40, lambda n: ["g" * n]),
    ("comment", "body", 10_000, lambda n: "c" * n),
]


async def _send(client, token: str, where: str, field: str, value, slug: str):
    if where == "user":
        if field in ("username", "email", "password"):
            user = {"username": "someone", "email": "someone@example.com", "password": "password123", field: value}
            return await client.post("/api/users", json={"user": user})
        return await client.put("/api/user", json={"user": {field: value}}, headers=auth(token))
    if where == "article":
        article = {"title": "a title", "description": "d", "body": "b", field: value}
        return await client.post("/api/articles", json={"article": article}, headers=auth(token))
    return await client.post(f"/api/articles/{slug}/comments", json={"comment": {field: value}}, headers=auth(token))


@pytest.mark.parametrize(
    ("where", "field", "maximum", "make"),
    STRING_FIELDS,
    ids=[f"{where}.{field}" for where, field, _, _ in STRING_FIELDS],
)
async def test_every_string_has_a_maximum_length(client, db, where, field, maximum, make):
    owner = await register(client, "owner")
    slug = (await create_article(client, owner["token"], title="target"))["slug"]
    too_long = await _send(client, owner["token"], where, field, make(maximum + 1), slug)
    assert too_long.status == 422, await too_long.text()
    assert field in (await too_long.json())["errors"]
    at_most = await _send(client, owner["token"], where, field, make(maximum), slug)
    assert at_most.status in (200, 201), await at_most.text()


async def test_tag_list_has_a_maximum_count(client, db):
    user = await register(client)
    ten = [f"tag{i}" for i in range(10)]
    article = {"title": "t", "description": "d", "body": "b", "tagList": [*ten, "x"]}
    response = await client.post("/api/articles", headers=auth(user["token"]), json={"article": article})
    assert response.status == 422
    assert "tagList" in (await response.json())["errors"]
    assert await db.fetchval("SELECT count(*) FROM articles") == 0
    await create_article(client, user["token"], tags=ten)
    assert await db.fetchval("SELECT count(*) FROM article_tags") == 10


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-5", "limit"),
        ("limit=ten", "limit"),
        ("limit=1e3", "limit"),
        ("offset=-1", "offset"),
        (f"offset={2**31}", "offset"),
        ("offset=%00", "offset"),
        ("tag=" + "t" * 41, "tag"),
        ("author=" + "a" * 41, "author"),
        ("favorited=no%20spaces", "favorited"),
    ],
)
async def test_page_and_filter_bounds(client, query, field):
    for path in ("/api/articles", "/api/articles/feed"):
        user = await register(client)
        response = await client.get(URL(f"{path}?{query}", encoded=True), headers=auth(user["token"]))
        if path.endswith("feed") and field not in ("limit", "offset"):
            assert response.status == 200  # the feed has no filters: they are ignored
            continue
        assert response.status == 422, (path, query, await response.text())
        assert field in (await response.json())["errors"]
    ok = await client.get("/api/articles?limit=100&offset=0")
    assert ok.status == 200


HOSTILE = [
    "'; DROP TABLE users; --",
    "Robert'); DELETE FROM articles WHERE ('1'='1",
    "$1 $2 \\x00 %00 %s %n {0} ${jndi:ldap://x}",
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>&amp;&lt;",
    "\u202eevil\u2028line\u2029sep \ufeff bom",
    "emoji \U0001f600 and surrogate pair \ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16"),
    'tab\tnewline\ncr\r quote" backslash\\',
]


async def test_sql_and_html_looking_strings_are_stored_and_returned_verbatim(client, db):
    user = await register(client)
    for text in HOSTILE:
        article = await create_article(client, user["token"], title=text, tags=[text[:40]], description=text, body=text)
        fetched = await (await client.get(f"/api/articles/{quote(article['slug'], safe='')}")).json()
        assert fetched["article"]["title"] == fetched["article"]["body"] == text
        assert fetched["article"]["tagList"] == [text[:40]]
        comment = await client.post(
            f"/api/articles/{quote(article['slug'], safe='')}/comments",
            json={"comment": {"body": text}},
            headers=auth(user["token"]),
        )
        assert (await comment.json())["comment"]["body"] == text
        me = await client.put("/api/user", json={"user": {"bio": text}}, headers=auth(user["token"]))
        assert (await me.json())["user"]["bio"] == text
        assert await db.fetchval("SELECT body FROM articles WHERE slug = $1", article["slug"]) == text
        assert me.content_type == "application/json"
    assert await db.fetchval("SELECT count(*) FROM articles") == len(HOSTILE)
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_nul_is_a_422_in_body_path_and_query(client, db):
    user = await register(client)
    slug = (await create_article(client, user["token"]))["slug"]
    comment = await client.post(
        f"/api/articles/{slug}/comments", json={"comment": {"body": "c"}}, headers=auth(user["token"])
    )
    comment_id = (await comment.json())["comment"]["id"]
    as_user = auth(user["token"])
    body = await client.post(
        "/api/articles", headers=as_user, json={"article": {"title": "nul\u0000", "description": "d", "body": "b"}}
    )
    assert body.status == 422 and "title" in (await body.json())["errors"]
    nul = "%00"
    for method, path in [
        ("GET", f"/api/profiles/{nul}"),
        ("POST", f"/api/profiles/a{nul}/follow"),
        ("DELETE", f"/api/profiles/{nul}/follow"),
        ("GET", f"/api/articles/{nul}"),
        ("PUT", f"/api/articles/x{nul}"),
        ("DELETE", f"/api/articles/{nul}"),
        ("POST", f"/api/articles/{nul}/favorite"),
        ("DELETE", f"/api/articles/{nul}/favorite"),
        ("GET", f"/api/articles/{nul}/comments"),
        ("POST", f"/api/articles/{nul}/comments"),
        ("DELETE", f"/api/articles/{nul}/comments/{comment_id}"),
        ("DELETE", f"/api/articles/{slug}/comments/{nul}"),
        ("GET", f"/api/articles?tag={nul}"),
        ("GET", f"/api/articles?author=x{nul}"),
    ]:
        payload = {"article": {"title": "t"}} if method == "PUT" else {"comment": {"body": "c"}}
        response = await client.request(
            method, URL(path, encoded=True), headers=as_user, json=payload if method in ("PUT", "POST") else None
        )
        assert response.status == 422, (method, path, response.status, await response.text())
        assert response.content_type == "application/json"
    assert await db.fetchval("SELECT count(*) FROM comments") == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"user": {"username": "\xff\xfe", "email": "a@example.com", "password": "password123"}}',  # not UTF-8
        b'{"user": {"username": "ab", "email": "a@example.com", "password": "pass\\ud800word"}}',  # lone surrogate
        b'{"user": {"username": "ab", "email": "a@example.com", "password": "pass\\udc00word"}}',
        b'{"user": {"username": "ab", "email": "a@example.com", "password": "password\\u0000"}}',  # NUL
        b"[" * 100_000 + b"]" * 100_000,  # deep: 200 kB of nesting
        b'{"user": ' * 5000 + b"{}" + b"}" * 5000,
        b'{"user": {"username": "ab", "email": "a@example.com", "password": ['
        + b",".join([b"1e999999", b"-" + b"9" * 5000] * 50)
        + b"]}}",  # huge numbers
        b'{"user": {"username": 12, "email": null, "password": []}}',
        b"",
        b"null",
        b'"just a string"',
        b'{"user": {"username": "ab", "email": "a@example.com", "password": "password123"',  # cut short
    ],
    ids=[
        "invalid-utf8",
        "high-surrogate",
        "low-surrogate",
        "nul",
        "deep-array",
        "deep-object",
        "huge-numbers",
        "wrong-types",
        "empty",
        "null",
        "string",
        "truncated",
    ],
)
async def test_malformed_json_is_a_422(client, db, raw):
    response = await client.post("/api/users", data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 422, await response.text()
    assert response.content_type == "application/json"
    assert (await response.json())["errors"]
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_huge_json_within_the_body_limit_is_a_422(client, db):
    """A 1 MiB list where ten items are allowed: rejected by count, quickly, nothing stored."""
    user = await register(client)
    tags = ["t"] * 150_000
    body = json.dumps({"article": {"title": "t", "description": "d", "body": "b", "tagList": tags}}).encode()
    assert len(body) < 1024 * 1024
    response = await client.post(
        "/api/articles", data=body, headers={"Content-Type": "application/json", **auth(user["token"])}
    )
    assert response.status == 422
    assert "tagList" in (await response.json())["errors"]
    assert await db.fetchval("SELECT count(*) FROM articles") == 0


async def test_a_valid_surrogate_pair_is_stored_as_its_character(client, db):
    user = await register(client)
    raw = b'{"article": {"title": "smile \\ud83d\\ude00", "description": "d", "body": "b"}}'
    response = await client.post(
        "/api/articles", data=raw, headers={"Content-Type": "application/json", **auth(user["token"])}
    )
    assert response.status == 201, await response.text()
    assert await db.fetchval("SELECT title FROM articles") == "smile \U0001f600"


async def test_wrong_content_type_is_a_422(client, db):
    body = json.dumps({"user": {"username": "ab", "email": "a@example.com", "password": "password123"}})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = await client.post("/api/users", data=body, headers={"Content-Type": content_type})
        assert response.status == 422, content_type
    assert await db.fetchval("SELECT count(*) FROM users") == 0
