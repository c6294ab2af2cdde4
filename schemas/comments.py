"""Comments on articles."""

from __future__ import annotations

from schemas.base import CommentBody, Model, Timestamp
from schemas.profiles import Profile


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
