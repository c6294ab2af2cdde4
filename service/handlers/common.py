"""Helpers shared by the resource handlers: records to models, and JSON that PostgreSQL built."""

from __future__ import annotations

from typing import TypeVar

import asyncpg
from aiohttp import web
from pydantic import MISSING

from schemas.comments import Comment
from schemas.profiles import Profile
from service.errors import not_found, unauthorized

T = TypeVar("T")


def given(value: T | MISSING) -> T | None:
    """A field of an update as a query parameter: NULL (leave it as it is) when it was not sent."""
    return None if value is MISSING else value


def author(row: asyncpg.Record) -> Profile:
    return Profile(
        username=row["author_username"], bio=row["author_bio"], image=row["author_image"], following=row["following"]
    )


def comment(row: asyncpg.Record) -> Comment:
    return Comment(
        id=row["id"], created_at=row["created_at"], updated_at=row["updated_at"], body=row["body"], author=author(row)
    )


def json_response(body: str, status: int = 200) -> web.Response:
    """A response whose JSON text was built by PostgreSQL, passed through without decoding."""
    return web.Response(body=body.encode(), status=status, content_type="application/json", charset="utf-8")


def built_json(row: asyncpg.Record | None, missing: str, status: int = 200) -> web.Response:
    """The answer of a read query that returns (viewer_known, body): 401 when the token's user
    no longer exists, 404 (`missing` not found) when there is no body, else the body itself."""
    if row is None:  # these queries aggregate: one row, always
        raise RuntimeError("a read query returned no row")
    if not row["viewer_known"]:
        raise unauthorized()  # the token's user no longer exists
    if row["body"] is None:
        raise not_found(missing)
    return json_response(row["body"], status)
