"""Profiles, follow and unfollow."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from schemas.profiles import Profile, ProfilePath, ProfileResponse
from service.db import connection
from service.errors import not_found, unprocessable
from service.routing import Api, current_user, viewer_id
from service.sqlfiles import queries

api = Api()
_q = queries("profiles")
TAG = "Profile"


def _profile(row: asyncpg.Record | None) -> ProfileResponse:
    if row is None:
        raise not_found("profile")
    return ProfileResponse(
        profile=Profile(username=row["username"], bio=row["bio"], image=row["image"], following=row["following"])
    )


@api.route(
    "GET",
    "/api/profiles/{username}",
    tag=TAG,
    summary="A user's profile",
    auth="optional",
    params=ProfilePath,
    response=ProfileResponse,
    errors=(404,),
)
async def get_profile(request: web.Request, params: ProfilePath) -> ProfileResponse:
    conn = await connection(request)
    return _profile(await conn.fetchrow(_q.by_username, params.username, viewer_id(request)))


@api.route(
    "POST",
    "/api/profiles/{username}/follow",
    tag=TAG,
    summary="Follow a user",
    auth="required",
    params=ProfilePath,
    response=ProfileResponse,
    transaction=True,
    errors=(404, 422),
)
async def follow_user(request: web.Request, params: ProfilePath) -> ProfileResponse:
    me = current_user(request)
    conn = await connection(request)
    row = await conn.fetchrow(_q.follow, params.username, me.id)
    if row is not None and row["id"] == me.id:
        raise unprocessable("username", "cannot follow yourself")
    return _profile(row)


@api.route(
    "DELETE",
    "/api/profiles/{username}/follow",
    tag=TAG,
    summary="Unfollow a user",
    auth="required",
    params=ProfilePath,
    response=ProfileResponse,
    transaction=True,
    errors=(404,),
)
async def unfollow_user(request: web.Request, params: ProfilePath) -> ProfileResponse:
    conn = await connection(request)
    return _profile(await conn.fetchrow(_q.unfollow, params.username, current_user(request).id))
