"""Tokens are verified once and then remembered (service.auth._verified_claims), but time still
counts on every request: a remembered token that expires is refused like any other."""

from __future__ import annotations

import time

import jwt
import pytest

from service import auth
from service.errors import ApiError

SECRET = "test-secret-test-secret-test-secret-0123"


def token(**claims: object) -> str:
    """A token signed with SECRET; integer claims given here are offsets from now."""
    now = int(time.time())
    payload = {"sub": "7", "iat": 0, "nbf": 0, "exp": 60, **claims}
    payload = {k: now + v if isinstance(v, int) else v for k, v in payload.items()}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, "HS256")


def test_a_valid_token_is_remembered_and_names_its_user():
    good = token()
    assert auth.decode_token(good, SECRET) == 7
    hits = auth._verified_claims.cache_info().hits
    assert auth.decode_token(good, SECRET) == 7
    assert auth._verified_claims.cache_info().hits == hits + 1


def test_a_remembered_token_that_expires_is_refused(monkeypatch):
    now = time.time()
    short = token(exp=30)
    assert auth.decode_token(short, SECRET) == 7  # verified and remembered
    monkeypatch.setattr(auth.time, "time", lambda: now + 31)
    with pytest.raises(ApiError) as refused:
        auth.decode_token(short, SECRET)
    assert refused.value.status == 401


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": -1},  # expired
        {"nbf": 60},  # not yet valid
        {"iat": 60},  # issued in the future
        {"exp": None},  # a required claim missing
        {"sub": "not-a-number"},
    ],
)
def test_time_and_shape_defects_are_refused_every_time(claims):
    bad = token(**claims)
    for _ in range(2):  # the second time too: nothing invalid is remembered
        with pytest.raises(ApiError) as refused:
            auth.decode_token(bad, SECRET)
        assert refused.value.status == 401


def test_a_token_signed_with_another_secret_is_refused_even_after_a_valid_use():
    good = token()
    assert auth.decode_token(good, SECRET) == 7
    with pytest.raises(ApiError):
        auth.decode_token(good, "another-secret-another-secret-another-0")
    forged = jwt.encode({"sub": "7", "iat": 0, "nbf": 0, "exp": 2**40}, "x" * 40, "HS256")
    with pytest.raises(ApiError):
        auth.decode_token(forged, SECRET)
