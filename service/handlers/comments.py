"""Comments on an article."""

from __future__ import annotations

from aiohttp import web

from schemas.articles import ArticlePath
from schemas.comments import CommentPath, MultipleCommentsResponse, NewCommentRequest, SingleCommentResponse
from service.db import connection
from service.errors import forbidden, not_found
from service.handlers.common import built_json, comment
from service.routing import Api, current_user, viewer_id
from service.sqlfiles import queries

api = Api()
_q = queries("comments")
TAG = "Comments"


@api.route(
    "GET",
    "/api/articles/{slug}/comments",
    tag=TAG,
    summary="An article's comments, newest first",
    auth="optional",
    params=ArticlePath,
    response=MultipleCommentsResponse,
    errors=(404,),
    verify_user=False,
)
async def get_comments(request: web.Request, params: ArticlePath) -> web.Response:
    conn = await connection(request)
    return built_json(await conn.fetchrow(_q.for_article, params.slug, viewer_id(request)), "article")


@api.route(
    "POST",
    "/api/articles/{slug}/comments",
    tag=TAG,
    summary="Comment on an article",
    auth="required",
    params=ArticlePath,
    body=NewCommentRequest,
    response=SingleCommentResponse,
    status=201,
    transaction=True,
    errors=(404,),
)
async def create_comment(request: web.Request, params: ArticlePath, body: NewCommentRequest) -> SingleCommentResponse:
    conn = await connection(request)
    row = await conn.fetchrow(_q.insert, params.slug, current_user(request).id, body.comment.body)
    if row is None:
        raise not_found("article")
    return SingleCommentResponse(comment=comment(row))


@api.route(
    "DELETE",
    "/api/articles/{slug}/comments/{id}",
    tag=TAG,
    summary="Delete a comment",
    auth="required",
    params=CommentPath,
    status=204,
    transaction=True,
    errors=(403, 404),
)
async def delete_comment(request: web.Request, params: CommentPath) -> None:
    conn = await connection(request)
    row = await conn.fetchrow(_q.author, params.slug, params.id)
    if row is None:
        raise not_found("article")
    if row["author_id"] is None:
        raise not_found("comment")
    if row["author_id"] != current_user(request).id:
        raise forbidden("comment")
    await conn.execute(_q.delete, params.id)
