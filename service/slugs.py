"""Slugs: readable, URL-safe (ASCII letters, digits, hyphens), unique through a suffix."""

from __future__ import annotations

import re
import secrets
import unicodedata

from schemas.base import RESERVED_SLUGS

MAX_BASE = 80
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# Latin letters that NFKD does not decompose into a base letter and an accent.
_LATIN_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "ð": "d"})


def slugify(title: str) -> str:
    """'Héllo, Wörld!' -> 'hello-world'; a title with no Latin letters or digits -> 'article'.

    Accents are dropped (é -> e); any other character outside a-z0-9 separates words, so
    '½' (NFKD: 1, fraction slash, 2) gives '1-2', not '12'."""
    decomposed = unicodedata.normalize("NFKD", title.lower()).translate(_LATIN_LETTERS)
    unaccented = "".join(char for char in decomposed if not unicodedata.combining(char))
    slug = _NOT_SLUG.sub("-", unaccented).strip("-")[:MAX_BASE].strip("-")
    return slug or "article"


def candidates(title: str, attempts: int = 8) -> list[str]:
    """The plain slug first (unless reserved), then the same with random suffixes for titles that
    repeat."""
    base = slugify(title)
    plain = [base] if base not in RESERVED_SLUGS else []
    return plain + [f"{base}-{secrets.token_hex(3)}" for _ in range(attempts - len(plain))]
