"""Articles: lists, the feed, one article, its writes, favorites, and tags."""

from __future__ import annotations

from functools import cache

import asyncpg
from aiohttp import web
from pydantic import MISSING

from schemas.articles import (
    ArticleFilters,
    ArticlePath,
    MultipleArticlesResponse,
    NewArticleRequest,
    Page,
    SingleArticleResponse,
    TagsResponse,
    UpdateArticleRequest,
)
from service.db import connection
from service.errors import ApiError, forbidden, not_found
from service.handlers.common import built_json, given, json_response
from service.routing import Api, current_user, viewer_id
from service.slugs import candidates
from service.sqlfiles import queries

api = Api()
_q = queries("articles")
TAG = "Articles"
# One article; the template excludes "feed" so that /api/articles/feed is only the feed's and
# answers 405 (Allow: GET) to other methods instead of reaching the article handlers.
ARTICLE = "/api/articles/{slug:(?!feed$)[^/]+}"


async def _single(conn: asyncpg.Connection, viewer: int | None, slug: str, status: int = 200) -> web.Response:
    return built_json(await conn.fetchrow(_q.by_slug, viewer, slug), "article", status)


@cache
def list_statement(tag: bool, author: bool, favorited: bool) -> str:
    """The list query for one combination of filters (at most 8 texts, each prepared once per
    connection and planned for its own filters); its parameters after $1-$3 are the given
    filters in this order: tag, author, favorited."""
    fragments = (
        (tag, _q.by_tag, _q.count_tag),
        (author, _q.by_author, _q.count_author),
        (favorited, _q.by_favoriter, _q.count_favoriter),
    )
    conditions: list[str] = []
    counts: list[str] = []
    for wanted, condition, count in fragments:
        if wanted:
            n = 4 + len(conditions)
            conditions.append(condition.format(n=n))
            counts.append(count.format(n=n))
    if not conditions:
        return _q.list.format(page=_q.page_all, count=_q.count_all)
    if len(conditions) == 1:  # one filter: a page from its own index in list order, a kept count
        if tag:
            page = _q.page_tag.format(n=4)
        elif favorited:
            page = _q.page_favorited.format(n=4)
        else:
            page = _q.page_where.format(where=conditions[0])
        return _q.list.format(page=page, count=counts[0])
    where = " AND ".join(conditions)
    return _q.list.format(page=_q.page_where.format(where=where), count=_q.count_where.format(where=where))


@cache
def feed_statement() -> str:
    return _q.list.format(page=_q.page_feed, count=_q.count_feed)


# Reads below check the token's user in their own query (verify_user=False): one round trip.


@api.route(
    "GET",
    "/api/articles",
    tag=TAG,
    summary="Recent articles, filtered",
    auth="optional",
    query=ArticleFilters,
    response=MultipleArticlesResponse,
    verify_user=False,
)
async def list_articles(request: web.Request, query: ArticleFilters) -> web.Response:
    filters = [value for value in (query.tag, query.author, query.favorited) if value is not None]
    statement = list_statement(query.tag is not None, query.author is not None, query.favorited is not None)
    conn = await connection(request)
    return built_json(await conn.fetchrow(statement, viewer_id(request), query.limit, query.offset, *filters), "")


@api.route(
    "GET",
    "/api/articles/feed",
    tag=TAG,
    summary="Recent articles by followed users",
    auth="required",
    query=Page,
    response=MultipleArticlesResponse,
    verify_user=False,
)
async def get_feed(request: web.Request, query: Page) -> web.Response:
    me = current_user(request)
    conn = await connection(request)
    return built_json(await conn.fetchrow(feed_statement(), me.id, query.limit, query.offset), "")


@api.route(
    "GET",
    ARTICLE,
    tag=TAG,
    summary="One article",
    auth="optional",
    params=ArticlePath,
    response=SingleArticleResponse,
    errors=(404,),
    verify_user=False,
)
async def get_article(request: web.Request, params: ArticlePath) -> web.Response:
    conn = await connection(request)
    return await _single(conn, viewer_id(request), params.slug)


@api.route(
    "POST",
    "/api/articles",
    tag=TAG,
    summary="Create an article",
    auth="required",
    body=NewArticleRequest,
    response=SingleArticleResponse,
    status=201,
    transaction=True,
    errors=(409,),
)
async def create_article(request: web.Request, body: NewArticleRequest) -> web.Response:
    me = current_user(request)
    new = body.article
    conn = await connection(request)
    for slug in candidates(new.title):
        article_id = await conn.fetchval(_q.insert, slug, new.title, new.description, new.body, me.id)
        if article_id is not None:
            break
    else:
        raise ApiError(409, {"slug": ["could not find a free slug; retry"]})
    await _add_tags(conn, article_id, new.tag_list)
    return await _single(conn, me.id, slug, status=201)


async def _add_tags(conn: asyncpg.Connection, article_id: int, names: list[str]) -> None:
    """Tag the article with `names`, making the tags that do not exist yet."""
    if names:
        await conn.execute(_q.create_tags, names)
        await conn.execute(_q.link_tags, article_id, names)


async def _owned_article(conn: asyncpg.Connection, slug: str, user_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(_q.owner, slug)
    if row is None:
        raise not_found("article")
    if row["author_id"] != user_id:
        raise forbidden("article")
    return row


@api.route(
    "PUT",
    ARTICLE,
    tag=TAG,
    summary="Update an article",
    auth="required",
    params=ArticlePath,
    body=UpdateArticleRequest,
    response=SingleArticleResponse,
    transaction=True,
    errors=(403, 404, 409),
)
async def update_article(request: web.Request, params: ArticlePath, body: UpdateArticleRequest) -> web.Response:
    me = current_user(request)
    changes = body.article
    conn = await connection(request)
    row = await _owned_article(conn, params.slug, me.id)
    title = given(changes.title)
    fields = (title, given(changes.description), given(changes.body))
    if title is None or title == row["title"]:
        slug = await conn.fetchval(_q.update, row["id"], None, *fields)
    else:
        for candidate in candidates(title):
            try:
                async with conn.transaction():  # a savepoint: a taken slug must not end the request
                    slug = await conn.fetchval(_q.update, row["id"], candidate, *fields)
                break
            except asyncpg.UniqueViolationError:
                continue
        else:
            raise ApiError(409, {"slug": ["could not find a free slug; retry"]})
    if changes.tag_list is not MISSING:
        await conn.execute(_q.unlink_other_tags, row["id"], changes.tag_list)
        await _add_tags(conn, row["id"], changes.tag_list)
    return await _single(conn, me.id, slug)


@api.route(
    "DELETE",
    ARTICLE,
    tag=TAG,
    summary="Delete an article",
    auth="required",
    params=ArticlePath,
    status=204,
    transaction=True,
    errors=(403, 404),
)
async def delete_article(request: web.Request, params: ArticlePath) -> None:
    me = current_user(request)
    conn = await connection(request)
    row = await _owned_article(conn, params.slug, me.id)
    await conn.execute(_q.delete, row["id"])


@api.route(
    "POST",
    "/api/articles/{slug}/favorite",
    tag="Favorites",
    summary="Favorite an article",
    auth="required",
    params=ArticlePath,
    response=SingleArticleResponse,
    transaction=True,
    errors=(404,),
)
async def favorite_article(request: web.Request, params: ArticlePath) -> web.Response:
    me = current_user(request)
    slug = params.slug
    conn = await connection(request)
    if await conn.fetchval(_q.favorite, me.id, slug) is None:
        raise not_found("article")
    return await _single(conn, me.id, slug)


@api.route(
    "DELETE",
    "/api/articles/{slug}/favorite",
    tag="Favorites",
    summary="Unfavorite an article",
    auth="required",
    params=ArticlePath,
    response=SingleArticleResponse,
    transaction=True,
    errors=(404,),
)
async def unfavorite_article(request: web.Request, params: ArticlePath) -> web.Response:
    me = current_user(request)
    slug = params.slug
    conn = await connection(request)
    if await conn.fetchval(_q.unfavorite, me.id, slug) is None:
        raise not_found("article")
    return await _single(conn, me.id, slug)


# 422: never answered (no input); listed because the official contract lists it for every operation.
@api.route("GET", "/api/tags", tag="Tags", summary="Tags in use", response=TagsResponse, errors=(422,))
async def get_tags(request: web.Request) -> web.Response:
    conn = await connection(request)
    return json_response(await conn.fetchval(_q.tags))
