"""Articles, their lists, favorites and tags."""

from __future__ import annotations

from pydantic import MISSING, Field

from schemas.base import MAX_TAGS, Body, Description, Model, Slug, Tag, Timestamp, Title, Username
from schemas.profiles import Profile

MAX_LIMIT = 100


class ArticlePath(Model):
    slug: Slug = Field(description="the article's slug (never `feed`: /api/articles/feed is the feed)")


class NewArticle(Model):
    title: Title
    description: Description
    body: Body
    tag_list: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


class NewArticleRequest(Model):
    article: NewArticle


class UpdateArticle(Model):
    """Only the fields sent change; none of them can be emptied (null is 422). tagList replaces
    the article's tags ([] removes them all)."""

    title: Title | MISSING = MISSING
    description: Description | MISSING = MISSING
    body: Body | MISSING = MISSING
    tag_list: list[Tag] | MISSING = Field(MISSING, max_length=MAX_TAGS)


class UpdateArticleRequest(Model):
    article: UpdateArticle


class ArticleSummary(Model):
    """An article as lists show it: without its body."""

    slug: str
    title: str
    description: str
    tag_list: list[str]
    created_at: Timestamp
    updated_at: Timestamp
    favorited: bool
    favorites_count: int
    author: Profile


class Article(ArticleSummary):
    body: str


class SingleArticleResponse(Model):
    article: Article


class MultipleArticlesResponse(Model):
    articles: list[ArticleSummary]
    articles_count: int


class Page(Model):
    limit: int = Field(20, ge=1, le=MAX_LIMIT, description="page size, at most 100")
    offset: int = Field(0, ge=0, le=2**31 - 1)


class ArticleFilters(Page):
    tag: Tag | None = None
    author: Username | None = None
    favorited: Username | None = None


class TagsResponse(Model):
    tags: list[str]
