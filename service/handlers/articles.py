"""Articles: lists, the feed, one article, its writes, favorites, and tags."""

from __future__ import annotations

import asyncpg
from aiohttp import web

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
from service.handlers.common import article, article_summary
from service.routing import Api, current_user, viewer_id
from service.slugs import candidates
from service.sqlfiles import queries

api = Api()
_q = queries("articles")
TAG = "Articles"
# One article; the template excludes "feed" so that /api/articles/feed is only the feed's and
# answers 405 (Allow: GET) to other methods instead of reaching the article handlers.
ARTICLE = "/api/articles/{slug:(?!feed$)[^/]+}"


async def _single(conn: asyncpg.Connection, viewer: int | None, slug: str) -> SingleArticleResponse:
    row = await conn.fetchrow(_q.by_slug, viewer, slug)
    if row is None:
        raise not_found("article")
    return SingleArticleResponse(article=article(row))


@api.route("GET", "/api/articles", tag=TAG, summary="Recent articles, filtered", auth="optional",
           query=ArticleFilters, response=MultipleArticlesResponse)
async def list_articles(request: web.Request, query: ArticleFilters) -> MultipleArticlesResponse:
    conn = await connection(request)
    filters = (query.tag, query.author, query.favorited)
    rows = await conn.fetch(_q.list, viewer_id(request), query.limit, query.offset, *filters)
    total = await conn.fetchval(_q.count, *filters)
    return MultipleArticlesResponse(articles=[article_summary(r) for r in rows], articles_count=total)


@api.route("GET", "/api/articles/feed", tag=TAG, summary="Recent articles by followed users", auth="required",
           query=Page, response=MultipleArticlesResponse)
async def get_feed(request: web.Request, query: Page) -> MultipleArticlesResponse:
    me = current_user(request)
    conn = await connection(request)
    rows = await conn.fetch(_q.feed, me.id, query.limit, query.offset)
    total = await conn.fetchval(_q.count_feed, me.id)
    return MultipleArticlesResponse(articles=[article_summary(r) for r in rows], articles_count=total)


@api.route("GET", ARTICLE, tag=TAG, summary="One article", auth="optional",
           params=ArticlePath, response=SingleArticleResponse, errors=(404,))
async def get_article(request: web.Request, params: ArticlePath) -> SingleArticleResponse:
    conn = await connection(request)
    return await _single(conn, viewer_id(request), params.slug)


@api.route("POST", "/api/articles", tag=TAG, summary="Create an article", auth="required",
           body=NewArticleRequest, response=SingleArticleResponse, status=201, transaction=True, errors=(409,))
async def create_article(request: web.Request, body: NewArticleRequest) -> SingleArticleResponse:
    me = current_user(request)
    new = body.article
    conn = await connection(request)
    for slug in candidates(new.title):
        article_id = await conn.fetchval(_q.insert, slug, new.title, new.description, new.body, me.id)
        if article_id is not None:
            break
    else:
        raise ApiError(409, {"slug": ["could not find a free slug; retry"]})
    if new.tag_list:
        await conn.execute(_q.create_tags, new.tag_list)
        await conn.execute(_q.link_tags, article_id, new.tag_list)
    return await _single(conn, me.id, slug)


async def _owned_article(conn: asyncpg.Connection, slug: str, user_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(_q.owner, slug)
    if row is None:
        raise not_found("article")
    if row["author_id"] != user_id:
        raise forbidden("article")
    return row


@api.route("PUT", ARTICLE, tag=TAG, summary="Update an article", auth="required",
           params=ArticlePath, body=UpdateArticleRequest, response=SingleArticleResponse, transaction=True,
           errors=(403, 404, 409))
async def update_article(
    request: web.Request, params: ArticlePath, body: UpdateArticleRequest
) -> SingleArticleResponse:
    me = current_user(request)
    changes = body.article
    conn = await connection(request)
    row = await _owned_article(conn, params.slug, me.id)
    fields = (changes.title, changes.description, changes.body)
    if changes.title is None or changes.title == row["title"]:
        slug = await conn.fetchval(_q.update, row["id"], None, *fields)
    else:
        for candidate in candidates(changes.title):
            try:
                async with conn.transaction():  # a savepoint: a taken slug must not end the request
                    slug = await conn.fetchval(_q.update, row["id"], candidate, *fields)
                break
            except asyncpg.UniqueViolationError:
                continue
        else:
            raise ApiError(409, {"slug": ["could not find a free slug; retry"]})
    return await _single(conn, me.id, slug)


@api.route("DELETE", ARTICLE, tag=TAG, summary="Delete an article", auth="required",
           params=ArticlePath, status=204, transaction=True, errors=(403, 404))
async def delete_article(request: web.Request, params: ArticlePath) -> None:
    me = current_user(request)
    conn = await connection(request)
    row = await _owned_article(conn, params.slug, me.id)
    await conn.execute(_q.delete, row["id"])


@api.route("POST", "/api/articles/{slug}/favorite", tag="Favorites", summary="Favorite an article",
           auth="required", params=ArticlePath, response=SingleArticleResponse, transaction=True, errors=(404,))
async def favorite_article(request: web.Request, params: ArticlePath) -> SingleArticleResponse:
    me = current_user(request)
    slug = params.slug
    conn = await connection(request)
    if await conn.fetchval(_q.favorite, me.id, slug) is None:
        raise not_found("article")
    return await _single(conn, me.id, slug)


@api.route("DELETE", "/api/articles/{slug}/favorite", tag="Favorites", summary="Unfavorite an article",
           auth="required", params=ArticlePath, response=SingleArticleResponse, transaction=True, errors=(404,))
async def unfavorite_article(request: web.Request, params: ArticlePath) -> SingleArticleResponse:
    me = current_user(request)
    slug = params.slug
    conn = await connection(request)
    if await conn.fetchval(_q.unfavorite, me.id, slug) is None:
        raise not_found("article")
    return await _single(conn, me.id, slug)


# 422: never answered (no input); listed because the official contract lists it for every operation.
@api.route("GET", "/api/tags", tag="Tags", summary="Tags in use", response=TagsResponse, errors=(422,))
async def get_tags(request: web.Request) -> TagsResponse:
    conn = await connection(request)
    return TagsResponse(tags=[row["name"] for row in await conn.fetch(_q.tags)])
