"""Comments on an article."""

from __future__ import annotations

from aiohttp import web

from schemas.comments import MultipleCommentsResponse, NewCommentRequest, SingleCommentResponse
from service.db import connection
from service.errors import ApiError, forbidden, not_found
from service.handlers.common import built_json, comment
from service.routing import Api, current_user, viewer_id
from service.sqlfiles import queries

api = Api()
_q = queries("comments")
TAG = "Comments"


@api.route("GET", "/api/articles/{slug}/comments", tag=TAG, summary="An article's comments, newest first",
           auth="optional", response=MultipleCommentsResponse, errors=(404,), verify_user=False)
async def get_comments(request: web.Request) -> web.Response:
    conn = await connection(request)
    return built_json(await conn.fetchrow(_q.for_article, request.match_info["slug"], viewer_id(request)), "article")


@api.route("POST", "/api/articles/{slug}/comments", tag=TAG, summary="Comment on an article", auth="required",
           body=NewCommentRequest, response=SingleCommentResponse, transaction=True, errors=(404,))
async def create_comment(request: web.Request, body: NewCommentRequest) -> SingleCommentResponse:
    conn = await connection(request)
    row = await conn.fetchrow(_q.insert, request.match_info["slug"], current_user(request).id, body.comment.body)
    if row is None:
        raise not_found("article")
    return SingleCommentResponse(comment=comment(row))


def _comment_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(422, {"id": ["must be a positive integer"]})
    return int(raw)


@api.route("DELETE", "/api/articles/{slug}/comments/{id}", tag=TAG, summary="Delete a comment", auth="required",
           status=204, transaction=True, errors=(403, 404))
async def delete_comment(request: web.Request) -> None:
    comment_id = _comment_id(request)
    conn = await connection(request)
    row = await conn.fetchrow(_q.author, request.match_info["slug"], comment_id)
    if row is None:
        raise not_found("comment")
    if row["author_id"] != current_user(request).id:
        raise forbidden("comment")
    await conn.execute(_q.delete, comment_id)
