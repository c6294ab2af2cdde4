"""RealWorld 2.0's error answers: each failing field with a message in the spec's short style
("can't be blank", "has already been taken", "is missing", "not found"), never a library's
sentence; and the statuses the 2.0 tests pin down."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.articles import ArticleFilters, NewArticleRequest, UpdateArticleRequest
from schemas.users import NewUserRequest, UpdateUserRequest
from service.errors import validation_errors
from tests.helpers import auth, create_article
from tests.realworld import comment, errors, member, members, ok

# Words of pydantic's own sentences: none may reach a client.
LIBRARY_WORDS = ("should", "Input", "Field required", "valid", "Value error", "pydantic")


def messages(model, data) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return validation_errors(caught.value)


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        (NewUserRequest, {"user": {}}, {f: ["can't be blank"] for f in ("username", "email", "password")}),
        (
            NewUserRequest,
            {"user": {"username": "", "email": "", "password": ""}},
            {f: ["can't be blank"] for f in ("username", "email", "password")},
        ),
        (
            NewUserRequest,
            {"user": {"username": "a b", "email": "a@b.c", "password": "short"}},
            {"username": ["is invalid"], "password": ["is too short (minimum is 8 characters)"]},
        ),
        (
            NewUserRequest,
            {"user": {"username": "u" * 41, "email": "nope", "password": "p" * 129}},
            {
                "username": ["is too long (maximum is 40 characters)"],
                "email": ["is invalid"],
                "password": ["is too long (maximum is 128 characters)"],
            },
        ),
        (
            NewUserRequest,
            {"user": {"username": 5, "email": None, "password": ["x"]}},
            {"username": ["must be a string"], "email": ["can't be blank"], "password": ["must be a string"]},
        ),
        (NewUserRequest, {}, {"user": ["can't be blank"]}),
        (NewUserRequest, {"user": None}, {"user": ["can't be blank"]}),
        (NewUserRequest, {"user": []}, {"user": ["must be an object"]}),
        (
            UpdateUserRequest,
            {"user": {"email": None, "username": None, "password": None}},
            {f: ["can't be blank"] for f in ("email", "username", "password")},
        ),
        (
            UpdateUserRequest,
            {"user": {"email": "", "username": "", "password": ""}},
            {f: ["can't be blank"] for f in ("email", "username", "password")},
        ),
        (
            NewArticleRequest,
            {"article": {"title": "", "description": "", "body": ""}},
            {f: ["can't be blank"] for f in ("title", "description", "body")},
        ),
        (
            NewArticleRequest,
            {"article": {"title": "t", "description": "d", "body": "b", "tagList": ["ok"] * 11}},
            {"tagList": ["is too long (maximum is 10 items)"]},
        ),
        (
            NewArticleRequest,
            {"article": {"title": "t", "description": "d", "body": "b", "tagList": ["", "ok", ""]}},
            {"tagList": ["can't be blank"]},
        ),
        (UpdateArticleRequest, {"article": {"tagList": None}}, {"tagList": ["must be an array"]}),
        (UpdateArticleRequest, {"article": {"tagList": "dragons"}}, {"tagList": ["must be an array"]}),
        (
            ArticleFilters,
            {"limit": "x", "offset": "-1"},
            {"limit": ["must be an integer"], "offset": ["must be greater than or equal to 0"]},
        ),
        (ArticleFilters, {"limit": "101"}, {"limit": ["must be less than or equal to 100"]}),
    ],
)
def test_each_field_fails_with_a_message_in_the_specs_style(model, data, expected):
    assert messages(model, data) == expected


def test_a_body_that_is_not_json_is_named_as_the_body():
    with pytest.raises(ValidationError) as caught:
        NewUserRequest.model_validate_json(b'{"user": ')
    assert validation_errors(caught.value) == {"body": ["is not valid JSON"]}


async def test_the_official_messages_over_http(client, db):
    jake, anna = await members(db, "jake", "anna")
    article = await create_article(client, jake["token"])
    slug = article["slug"]
    # No token where one is needed: "is missing"; a bad one: "is invalid".
    assert await errors(await client.post("/api/articles", json={}), 401) == {"token": ["is missing"]}
    assert await errors(await client.get("/api/user", headers=auth("x.y.z")), 401) == {"token": ["is invalid"]}
    assert await errors(await client.get("/api/user", headers={"Authorization": "Basic x"}), 401) == {
        "token": ["is invalid"]
    }
    # Wrong credentials, whatever the password's length.
    for password in ("wrong-password", "short"):
        login = await client.post(
            "/api/users/login", json={"user": {"email": "jake@example.com", "password": password}}
        )
        assert await errors(login, 401) == {"credentials": ["invalid"]}
    # Missing resources, under the resource's name.
    assert await errors(await client.get("/api/articles/no-such"), 404) == {"article": ["not found"]}
    assert await errors(await client.get("/api/profiles/nobody"), 404) == {"profile": ["not found"]}
    gone = await client.delete("/api/articles/no-such/comments/1", headers=auth(jake["token"]))
    assert await errors(gone, 404) == {"article": ["not found"]}
    gone = await client.delete(f"/api/articles/{slug}/comments/99999", headers=auth(jake["token"]))
    assert await errors(gone, 404) == {"comment": ["not found"]}
    # Someone else's: "forbidden" under the resource.
    mine = await comment(client, jake["token"], slug)
    not_hers = await client.delete(f"/api/articles/{slug}/comments/{mine['id']}", headers=auth(anna["token"]))
    assert await errors(not_hers, 403) == {"comment": ["forbidden"]}
    put = await client.put(f"/api/articles/{slug}", json={"article": {"body": "x"}}, headers=auth(anna["token"]))
    assert await errors(put, 403) == {"article": ["forbidden"]}
    # A blank field, and a body that is no JSON.
    blank = await client.post("/api/articles", json={"article": {"title": ""}}, headers=auth(jake["token"]))
    assert await errors(blank, 422) == {f: ["can't be blank"] for f in ("title", "description", "body")}
    broken = await client.post("/api/users", data=b"{", headers={"Content-Type": "application/json"})
    assert await errors(broken, 422) == {"body": ["is not valid JSON"]}


async def test_no_answer_carries_a_library_sentence(client, db):
    jake = await member(db, "jake")
    attempts = [
        ("POST", "/api/users", {"user": {"username": 1, "email": [], "password": {}}}),
        ("PUT", "/api/user", {"user": {"image": 7, "bio": [], "email": "x"}}),
        ("POST", "/api/articles", {"article": {"title": "t", "description": "d", "body": "b", "tagList": [1, None]}}),
        ("GET", "/api/articles?limit=-5&offset=abc&tag=", None),
        ("GET", "/api/articles/feed/x", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=auth(jake["token"]))
        assert 400 <= response.status < 500
        for field, texts in (await response.json())["errors"].items():
            for text in texts:
                assert not any(word in text for word in LIBRARY_WORDS), (path, field, text)


async def test_a_new_comment_is_201(client, db):
    jake = await member(db, "jake")
    article = await create_article(client, jake["token"])
    response = await client.post(
        f"/api/articles/{article['slug']}/comments", json={"comment": {"body": "hi"}}, headers=auth(jake["token"])
    )
    assert (await ok(response, 201))["comment"]["body"] == "hi"
