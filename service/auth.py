"""Passwords (argon2id, off the event loop), tokens (JWT HS256) and the request's current user."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import lru_cache, partial

import jwt
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service import keys
from service.errors import TOKEN_MISSING, unauthorized
from service.settings import resolved

ALGORITHM = "HS256"
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# A hash to verify against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        _hasher.verify(password_hash or _DUMMY_HASH, password)  # raises unless it matches
        return password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; an unknown user (None) costs one full verification too."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(_verify, password_hash, password))


def issue_token(user_id: int, secret: str, lifetime: int) -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(user_id), "iat": now, "nbf": now, "exp": now + lifetime}, secret, ALGORITHM)


@lru_cache(maxsize=4096)
def _verified_claims(token: str, secret: str) -> tuple[int, int, int, int]:
    """(user id, iat, nbf, exp) of a token whose signature, algorithm and shape are valid; raises
    otherwise. Cached: a client sends the same token on every request, and checking it (base64,
    JSON, HMAC, claims) costs as much as the rest of a small request. Only valid tokens are kept
    (an exception is never cached), so guessing fills nothing; the times are checked on each use."""
    claims = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        options={
            "require": ["exp", "iat", "nbf", "sub"],
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        },
    )
    return int(claims["sub"]), int(claims["iat"]), int(claims["nbf"]), int(claims["exp"])


def decode_token(token: str, secret: str) -> int:
    """The user id a valid token names; any defect (signature, algorithm, time, shape) is a 401."""
    try:
        user_id, issued, not_before, expires = _verified_claims(token, secret)
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        raise unauthorized() from None
    now = time.time()
    if issued > now or not_before > now or expires <= now:  # PyJWT's own rules, with no leeway
        raise unauthorized()
    if not 0 < user_id < 2**63:  # users.id is a bigint; anything else would fail in the query
        raise unauthorized()
    return user_id


def token_from_header(request: web.Request) -> str | None:
    """`Authorization: Token <jwt>` (or `Bearer <jwt>`); None when there is no such header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in ("token", "bearer") or not token.strip():
        raise unauthorized()
    return token.strip()


@dataclass(frozen=True, slots=True)
class CurrentUser:
    id: int
    token: str


def authenticate(request: web.Request, required: bool) -> CurrentUser | None:
    """Decode the token (no database work); store and return the caller, or None if anonymous."""
    token = token_from_header(request)
    if token is None:
        if required:
            raise unauthorized(TOKEN_MISSING)
        user = None
    else:
        user = CurrentUser(decode_token(token, resolved(request.app[keys.SETTINGS].jwt_secret)), token)
    request[keys.USER] = user
    return user
