"""Users and authentication: register, log in, the current user and its update; tokens,
password storage, and the error answers of the spec."""

from __future__ import annotations

import jwt
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from service.auth import issue_token
from tests.helpers import auth, register
from tests.realworld import JWT_SECRET as SECRET
from tests.realworld import USER_KEYS, errors, member, members, ok


def new_user(username: str = "jake", email: str | None = None, password: str = "jakejakejake") -> dict:
    return {"user": {"username": username, "email": email or f"{username}@jake.jake", "password": password}}


async def login(client, email: str, password: str):
    return await client.post("/api/users/login", json={"user": {"email": email, "password": password}})


# Registration


async def test_register_answers_201_with_the_user_and_a_token(client, db):
    body = await ok(await client.post("/api/users", json=new_user()), 201)
    user = body["user"]
    assert set(user) == USER_KEYS
    assert (user["username"], user["email"], user["bio"], user["image"]) == ("jake", "jake@jake.jake", None, None)
    me = await ok(await client.get("/api/user", headers=auth(user["token"])))
    assert me["user"]["username"] == "jake"
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_passwords_are_stored_as_argon2id_hashes(client, db):
    await ok(await client.post("/api/users", json=new_user(password="correct horse")), 201)
    stored = await db.fetchval("SELECT password_hash FROM users WHERE username = 'jake'")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert PasswordHasher().verify(stored, "correct horse")
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(stored, "wrong horse")


async def test_register_with_missing_fields_names_each_field(client):
    problems = await errors(await client.post("/api/users", json={"user": {}}), 422)
    assert set(problems) == {"username", "email", "password"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "not-an-email"), ("email", ""), ("username", ""), ("username", "has spaces"), ("password", "short")],
)
async def test_register_with_an_invalid_field_names_that_field_only(client, field, value):
    payload = new_user()
    payload["user"][field] = value
    assert set(await errors(await client.post("/api/users", json=payload), 422)) == {field}


async def test_a_taken_username_or_email_is_409_naming_the_field(client, db):
    await ok(await client.post("/api/users", json=new_user("jake", "jake@jake.jake")), 201)
    same_name = await client.post("/api/users", json=new_user("jake", "other@jake.jake"))
    assert await errors(same_name, 409) == {"username": ["has already been taken"]}
    same_email = await client.post("/api/users", json=new_user("other", "JAKE@Jake.jake"))  # emails ignore case
    assert await errors(same_email, 409) == {"email": ["has already been taken"]}
    both = await client.post("/api/users", json=new_user("jake", "jake@jake.jake"))
    assert set(await errors(both, 409)) == {"username", "email"}
    assert await db.fetchval("SELECT count(*) FROM users") == 1


@pytest.mark.parametrize("path", ["/api/users", "/api/users/login", "/api/user"])
async def test_malformed_json_is_a_422_json_answer(client, db, path):
    headers = {"Content-Type": "application/json"}
    if path == "/api/user":
        headers |= auth((await member(db, "jake"))["token"])
    method = client.put if path == "/api/user" else client.post
    assert set(await errors(await method(path, data=b'{"user": {"email": ', headers=headers), 422)) == {"body"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_wrong_content_type_is_a_422_json_answer(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/api/users", data=b'{"user": {}}', headers=headers)
    assert set(await errors(response, 422)) == {"body"}


@pytest.mark.parametrize("payload", [[], "user", 42, None])
async def test_a_body_that_is_not_an_object_is_422_on_body(client, payload):
    assert set(await errors(await client.post("/api/users", json=payload), 422)) == {"body"}


@pytest.mark.parametrize("payload", [{}, {"user": "jake"}, {"user": []}, {"username": "jake"}])
async def test_a_missing_or_wrong_envelope_is_422_naming_the_envelope(client, payload):
    assert set(await errors(await client.post("/api/users", json=payload), 422)) == {"user"}


# Login


async def test_login_answers_the_user_with_a_token(client):
    await ok(await client.post("/api/users", json=new_user()), 201)
    user = (await ok(await login(client, "jake@jake.jake", "jakejakejake")))["user"]
    assert set(user) == USER_KEYS and user["username"] == "jake"
    await ok(await client.get("/api/user", headers=auth(user["token"])))


async def test_login_ignores_the_case_of_the_email(client):
    await ok(await client.post("/api/users", json=new_user()), 201)
    await ok(await login(client, "JAKE@jake.JAKE", "jakejakejake"))


async def test_unknown_email_and_wrong_password_get_the_same_answer(client):
    await ok(await client.post("/api/users", json=new_user()), 201)
    wrong_password = await login(client, "jake@jake.jake", "not-the-password")
    unknown_email = await login(client, "nobody@jake.jake", "jakejakejake")
    assert await errors(wrong_password, 401) == await errors(unknown_email, 401)
    assert wrong_password.headers["WWW-Authenticate"] == unknown_email.headers["WWW-Authenticate"] == "Token"


async def test_login_validates_its_body(client):
    assert set(await errors(await client.post("/api/users/login", json={"user": {}}), 422)) == {"email", "password"}


# The current user and the token


async def test_current_user_answers_the_user_and_the_same_token(client):
    jake = await register(client, "jake")
    user = (await ok(await client.get("/api/user", headers=auth(jake["token"]))))["user"]
    assert user == jake


async def test_the_bearer_scheme_is_accepted_too(client, db):
    jake = await member(db, "jake")
    await ok(await client.get("/api/user", headers={"Authorization": f"Bearer {jake['token']}"}))


async def test_current_user_without_a_token_is_401(client):
    assert set(await errors(await client.get("/api/user"), 401)) == {"token"}


def expired_token(user_id: int) -> str:
    return issue_token(user_id, SECRET, lifetime=-60)


@pytest.mark.parametrize(
    "header",
    [
        "Token not-a-jwt",
        "Token ",
        "Basic amFrZTpqYWtl",
        "Token " + jwt.encode({"sub": "1", "iat": 0, "nbf": 0, "exp": 4102444800}, "another-secret-another-secret-00"),
        "Token " + jwt.encode({"sub": "1", "iat": 0, "nbf": 0, "exp": 4102444800}, None, algorithm="none"),
        "Token " + jwt.encode({"iat": 0, "nbf": 0, "exp": 4102444800}, SECRET),  # no subject
        "Token " + jwt.encode({"sub": "jake", "iat": 0, "nbf": 0, "exp": 4102444800}, SECRET),  # not an id
        "Token " + expired_token(1),
    ],
    ids=["garbage", "empty", "other-scheme", "other-secret", "alg-none", "no-sub", "sub-not-id", "expired"],
)
async def test_an_invalid_token_is_401(client, db, header):
    await member(db, "jake")  # user id 1 exists: only the token is wrong
    assert set(await errors(await client.get("/api/user", headers={"Authorization": header}), 401)) == {"token"}


async def test_the_token_of_a_deleted_user_is_401(client, db):
    jake = await register(client, "jake")
    await db.execute("DELETE FROM users WHERE username = 'jake'")
    await errors(await client.get("/api/user", headers=auth(jake["token"])), 401)
    await errors(await client.put("/api/user", json={"user": {"bio": "x"}}, headers=auth(jake["token"])), 401)


async def test_the_token_carries_the_user_id_and_an_expiry(client, db):
    jake = await register(client, "jake")
    claims = jwt.decode(jake["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(await db.fetchval("SELECT id FROM users WHERE username = 'jake'"))
    assert claims["exp"] > claims["iat"]


# Update


async def test_update_changes_each_given_field_and_keeps_the_rest(client, db):
    jake = await member(db, "jake")
    changes = {"bio": "I like to skateboard", "image": "https://i.stack.imgur.com/xHWG8.jpg"}
    user = (await ok(await client.put("/api/user", json={"user": changes}, headers=auth(jake["token"]))))["user"]
    assert user["bio"] == changes["bio"] and user["image"] == changes["image"]
    assert (user["username"], user["email"]) == (jake["username"], jake["email"])
    again = (await ok(await client.get("/api/user", headers=auth(jake["token"]))))["user"]
    assert again == user


async def test_update_can_clear_the_image(client, db):
    jake = await member(db, "jake")
    headers = auth(jake["token"])
    await ok(await client.put("/api/user", json={"user": {"image": "https://example.com/a.png"}}, headers=headers))
    user = (await ok(await client.put("/api/user", json={"user": {"image": None}}, headers=headers)))["user"]
    assert user["image"] is None


@pytest.mark.parametrize("field", ["bio", "image"])
async def test_bio_and_image_are_null_until_set_and_empty_is_stored_as_null(client, db, field):
    jake = await register(client, "jake")
    assert jake[field] is None
    headers = auth(jake["token"])
    value = "https://example.com/a.png" if field == "image" else "I like to skateboard"
    assert (await ok(await client.put("/api/user", json={"user": {field: value}}, headers=headers)))["user"][
        field
    ] == value
    for cleared in ("", None):
        await ok(await client.put("/api/user", json={"user": {field: value}}, headers=headers))
        user = (await ok(await client.put("/api/user", json={"user": {field: cleared}}, headers=headers)))["user"]
        assert user[field] is None
        assert await db.fetchval(f"SELECT {field} FROM users WHERE username = 'jake'") is None
        assert (await ok(await client.get("/api/profiles/jake")))["profile"][field] is None


@pytest.mark.parametrize("field", ["email", "username", "password"])
@pytest.mark.parametrize("value", [None, ""])
async def test_update_cannot_empty_email_username_or_password(client, db, field, value):
    jake = await register(client, "jake")
    before = await db.fetchrow("SELECT username, email, password_hash FROM users")
    response = await client.put("/api/user", json={"user": {field: value, "bio": "x"}}, headers=auth(jake["token"]))
    assert await errors(response, 422) == {field: ["can't be blank"]}
    assert await db.fetchrow("SELECT username, email, password_hash, bio FROM users") == (*before, None)


@pytest.mark.parametrize("length", [8, 64, 128])
async def test_passwords_of_8_to_128_characters_are_accepted(client, length):
    password = "p" * length
    jake = await register(client, "jake", password=password)
    await ok(await login(client, jake["email"], password))
    changed = "q" * length
    await ok(await client.put("/api/user", json={"user": {"password": changed}}, headers=auth(jake["token"])))
    await ok(await login(client, jake["email"], changed))


async def test_changing_username_and_email_keeps_the_session(client):
    jake = await register(client, "jake")
    changes = {"username": "jacob", "email": "jacob@jake.jake"}
    user = (await ok(await client.put("/api/user", json={"user": changes}, headers=auth(jake["token"]))))["user"]
    assert (user["username"], user["email"]) == ("jacob", "jacob@jake.jake")
    # the token issued before the change still names the same user
    me = (await ok(await client.get("/api/user", headers=auth(jake["token"]))))["user"]
    assert (me["username"], me["email"]) == ("jacob", "jacob@jake.jake")
    await errors(await client.get("/api/profiles/jake"), 404)
    await ok(await client.get("/api/profiles/jacob"))


async def test_changing_the_password_rehashes_it(client, db):
    jake = await register(client, "jake", password="first-password")
    before = await db.fetchval("SELECT password_hash FROM users WHERE username = 'jake'")
    update = {"user": {"password": "second-password"}}
    await ok(await client.put("/api/user", json=update, headers=auth(jake["token"])))
    after = await db.fetchval("SELECT password_hash FROM users WHERE username = 'jake'")
    assert after != before and after.startswith("$argon2id$")
    await errors(await login(client, jake["email"], "first-password"), 401)
    await ok(await login(client, jake["email"], "second-password"))


async def test_update_to_a_taken_username_or_email_is_409_and_changes_nothing(client, db):
    jake, _ = await members(db, "jake", "celeb")
    headers = auth(jake["token"])
    taken_name = await client.put("/api/user", json={"user": {"username": "celeb", "bio": "x"}}, headers=headers)
    assert await errors(taken_name, 409) == {"username": ["has already been taken"]}
    taken_email = await client.put("/api/user", json={"user": {"email": "CELEB@example.com"}}, headers=headers)
    assert await errors(taken_email, 409) == {"email": ["has already been taken"]}
    assert await db.fetchval("SELECT bio FROM users WHERE username = 'jake'") is None


@pytest.mark.parametrize(("field", "value"), [("email", "nope"), ("username", ""), ("password", "short"), ("bio", 5)])
async def test_update_validates_each_field(client, db, field, value):
    jake = await member(db, "jake")
    response = await client.put("/api/user", json={"user": {field: value}}, headers=auth(jake["token"]))
    assert set(await errors(response, 422)) == {field}


async def test_update_without_a_token_is_401(client):
    await errors(await client.put("/api/user", json={"user": {"bio": "x"}}), 401)


async def test_an_unknown_route_or_method_answers_json(client):
    assert set(await errors(await client.get("/api/nothing-here"), 404)) == {"path"}
    assert set(await errors(await client.patch("/api/user", json={}), 405)) == {"method"}
