"""Slugs: readable, URL-safe (ASCII letters, digits, hyphens), unique through a suffix."""

from __future__ import annotations

import re
import secrets
import unicodedata

from schemas.base import RESERVED_SLUGS

MAX_BASE = 80
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(title: str) -> str:
    """'Héllo, Wörld!' -> 'hello-world'; a title with no Latin letters or digits -> 'article'."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_title.lower()).strip("-")[:MAX_BASE].strip("-")
    return slug or "article"


def candidates(title: str, attempts: int = 8) -> list[str]:
    """The plain slug first (unless reserved), then the same with random suffixes for titles that
    repeat."""
    base = slugify(title)
    plain = [base] if base not in RESERVED_SLUGS else []
    return plain + [f"{base}-{secrets.token_hex(3)}" for _ in range(attempts - len(plain))]
