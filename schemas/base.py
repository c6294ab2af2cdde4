"""The one base model: camelCase on the wire, snake_case in Python, and the string bounds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

# PostgreSQL text cannot hold NUL; saying so in the schema makes clients (and schemathesis) see it.
NO_NUL = r"^[^\x00]*$"


def text(max_length: int, min_length: int = 1, pattern: str = NO_NUL) -> object:
    return Field(min_length=min_length, max_length=max_length, pattern=pattern)


def _iso(value: datetime) -> str:
    # Always with milliseconds and a zone, as the RealWorld suite checks: 2026-01-01T00:00:00.000Z
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

Title = Annotated[str, text(200)]
Description = Annotated[str, text(1000)]
Body = Annotated[str, text(100_000)]
Bio = Annotated[str, text(1000, min_length=0)]
ImageUrl = Annotated[str, text(2000, min_length=0)]
Username = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]
# No @, and no control or space character of Latin-1 (C0, space, DEL, C1: U+0000-U+0020,
# U+007F-U+009F) in any part. An explicit range rather than \s: pydantic's regex engine (Rust),
# the OpenAPI document's (ECMAScript) and Python's disagree on what \s covers (U+0085, U+001C-1F),
# and a client that validates against the document must accept exactly what the service does.
_EMAIL_PART = r"[^@\x00-\x20\x7f-\x9f]+"
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$")]
# NIST 800-63B: at least 8 characters, at least 64 accepted, no composition rules; the ceiling
# bounds the work of hashing an attacker's input.
Password = Annotated[str, text(128, min_length=8)]
# At login any non-empty password is checked (a wrong one is a 401, never a hint about lengths).
GivenPassword = Annotated[str, text(128)]
Tag = Annotated[str, text(40)]
# /api/articles/feed is the feed: no article may have that slug.
RESERVED_SLUGS = frozenset({"feed"})


def _not_reserved(slug: str) -> str:
    if slug in RESERVED_SLUGS:
        raise ValueError("is reserved (/api/articles/feed is the feed)")
    return slug


# What service.slugs makes: lower-case ASCII letters, digits and hyphens (a base of 80, a suffix).
# The schema does not exclude the reserved slugs: by OpenAPI's own rule a concrete path
# (/api/articles/feed) is matched before a templated one, so such a request is the other
# operation's, and a fuzzer told "feed is invalid here" would send exactly that request.
Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9-]+$"), AfterValidator(_not_reserved)]
CommentBody = Annotated[str, text(10_000)]

MAX_TAGS = 10


class Model(BaseModel):
    # Serialization always writes every field, so the response schemas list fields with defaults
    # as required too.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        json_schema_serialization_defaults_required=True,
    )

    def json_bytes(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self, by_alias=True)
