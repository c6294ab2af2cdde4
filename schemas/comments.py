"""Comments on articles."""

from __future__ import annotations

from pydantic import Field

from schemas.articles import ArticlePath
from schemas.base import CommentBody, Model, Timestamp
from schemas.profiles import Profile


class CommentPath(ArticlePath):
    id: int = Field(ge=1, le=2**63 - 1, description="the comment's id")


class NewComment(Model):
    body: CommentBody


class NewCommentRequest(Model):
    comment: NewComment


class Comment(Model):
    id: int
    created_at: Timestamp
    updated_at: Timestamp
    body: str
    author: Profile


class SingleCommentResponse(Model):
    comment: Comment


class MultipleCommentsResponse(Model):
    comments: list[Comment]
