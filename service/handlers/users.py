"""Registration, login, and the current user."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import MISSING

from schemas.users import LoginUserRequest, NewUserRequest, UpdateUserRequest, User, UserResponse
from service import keys
from service.auth import hash_password, issue_token, verify_password
from service.db import connection, put_back
from service.errors import ApiError, unauthorized
from service.handlers.common import given
from service.limits import begin_login_attempt, login_keys, login_succeeded
from service.routing import Api, current_user
from service.settings import resolved
from service.sqlfiles import queries

api = Api()
_q = queries("users")
TAG = "User and Authentication"


def _user(request: web.Request, row: asyncpg.Record, token: str | None = None) -> UserResponse:
    if token is None:
        settings = request.app[keys.SETTINGS]
        token = issue_token(row["id"], resolved(settings.jwt_secret), settings.jwt_expiry)
    return UserResponse(
        user=User(email=row["email"], token=token, username=row["username"], bio=row["bio"], image=row["image"])
    )


def _taken(username: bool, email: bool) -> ApiError:
    errors = {}
    if username:
        errors["username"] = ["has already been taken"]
    if email:
        errors["email"] = ["has already been taken"]
    return ApiError(409, errors or {"user": ["has already been taken"]})


@api.route(
    "POST",
    "/api/users",
    tag=TAG,
    summary="Register a user",
    body=NewUserRequest,
    response=UserResponse,
    status=201,
    transaction=True,
    errors=(409,),
)
async def create_user(request: web.Request, body: NewUserRequest) -> UserResponse:
    new = body.user
    password_hash = await hash_password(new.password)  # before taking a connection
    conn = await connection(request)
    row = await conn.fetchrow(_q.insert, new.username, new.email, password_hash)
    if row is None:
        taken = await conn.fetchrow(_q.taken, new.username, new.email)  # aggregates: always one row
        raise _taken(bool(taken and taken["username"]), bool(taken and taken["email"]))
    request[keys.WRITER] = row["id"]  # whose read-your-writes fence this write sets (replicas)
    return _user(request, row)


@api.route(
    "POST",
    "/api/users/login",
    tag=TAG,
    summary="Log in",
    body=LoginUserRequest,
    response=UserResponse,
    errors=(401, 429),
)
async def login(request: web.Request, body: LoginUserRequest) -> UserResponse:
    # Not one transaction: a failed attempt must be recorded although the answer is an error.
    credentials = body.user
    limit_keys = login_keys(request, credentials.email)
    conn = await connection(request)
    attempt = await begin_login_attempt(conn, request, limit_keys)  # counted as a failure until it succeeds
    found = await conn.fetchrow(_q.credentials_by_email, credentials.email)
    await put_back(request)  # argon2 takes tens of milliseconds: hold no pool slot meanwhile
    # An unknown email costs one argon2 verification too (against a dummy hash): same time.
    verified = await verify_password(found["password_hash"] if found else None, credentials.password)
    if not verified or found is None:  # (an unknown email is never verified: `found` only narrows the type)
        raise ApiError(401, {"credentials": ["invalid"]}, {"WWW-Authenticate": "Token"})  # the entry stays: a failure
    conn = await connection(request)
    await login_succeeded(conn, limit_keys, attempt)
    row = await conn.fetchrow(_q.by_id, found["id"])
    if row is None:  # the account was deleted since its password was checked
        raise unauthorized("the account no longer exists")
    return _user(request, row)


# 422 is never answered here (there is no input to reject); it is listed because the official
# contract lists it for every operation, and clients generated from that contract expect it.
@api.route(
    "GET",
    "/api/user",
    tag=TAG,
    summary="The current user",
    auth="required",
    response=UserResponse,
    verify_user=False,
    errors=(422,),
)
async def get_current_user(request: web.Request) -> UserResponse:
    user = current_user(request)
    conn = await connection(request)
    row = await conn.fetchrow(_q.by_id, user.id)
    if row is None:
        raise unauthorized()  # the token's user no longer exists
    return _user(request, row, token=user.token)


@api.route(
    "PUT",
    "/api/user",
    tag=TAG,
    summary="Update the current user",
    auth="required",
    body=UpdateUserRequest,
    response=UserResponse,
    transaction=True,
    verify_user=False,
    errors=(409, 422),
)
async def update_current_user(request: web.Request, body: UpdateUserRequest) -> UserResponse:
    user = current_user(request)
    changes = body.user
    password_hash = None if changes.password is MISSING else await hash_password(changes.password)
    conn = await connection(request)
    try:
        row = await conn.fetchrow(
            _q.update,
            user.id,
            given(changes.username),
            given(changes.email),
            password_hash,
            changes.bio is not MISSING,
            given(changes.bio),
            changes.image is not MISSING,
            given(changes.image),
        )
    except asyncpg.UniqueViolationError as error:
        raise _taken(
            error.constraint_name == "users_username_key", error.constraint_name == "users_email_key"
        ) from None
    if row is None:
        raise unauthorized()  # the token's user no longer exists
    return _user(request, row, token=user.token)
