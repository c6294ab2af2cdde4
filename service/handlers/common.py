"""Record-to-model helpers shared by the resource handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.articles import Article, ArticleSummary
from schemas.comments import Comment
from schemas.profiles import Profile


def author(row: Mapping[str, Any]) -> Profile:
    return Profile(
        username=row["author_username"], bio=row["author_bio"], image=row["author_image"], following=row["following"]
    )


def article_summary(row: Mapping[str, Any]) -> ArticleSummary:
    return ArticleSummary(
        slug=row["slug"],
        title=row["title"],
        description=row["description"],
        tag_list=row["tag_list"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        favorited=row["favorited"],
        favorites_count=row["favorites_count"],
        author=author(row),
    )


def article(row: Mapping[str, Any]) -> Article:
    return Article(**dict(article_summary(row)), body=row["body"])


def comment(row: Mapping[str, Any]) -> Comment:
    return Comment(
        id=row["id"], created_at=row["created_at"], updated_at=row["updated_at"], body=row["body"], author=author(row)
    )
