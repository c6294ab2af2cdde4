"""Login abuse limits: failed logins counted per account and per client address in PostgreSQL,
so every gunicorn worker and every instance sees the same counts."""

from __future__ import annotations

import ipaddress
import math

import asyncpg
from aiohttp import web

from service import keys
from service.errors import ApiError
from service.sqlfiles import queries

_users = queries("users")


def client_address(request: web.Request) -> str:
    """The connection's peer; X-Forwarded-For is believed only when the peer is a trusted proxy,
    and then the right-most address that is not itself a trusted proxy is the client. An entry
    that is not an IP address ends the chain: the last proxy we trust is all we know."""
    peer = request.remote or "unknown"
    trusted = request.app[keys.SETTINGS].trusted_proxies
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
    client = peer
    for entry in reversed(forwarded):
        address = _ip(entry)
        if address is None:
            break
        client = address
        if not _is_trusted(address, trusted):
            break
    return client


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _is_trusted(address: str, trusted: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def login_keys(request: web.Request, email: str) -> list[str]:
    return [f"account:{email.lower()}", f"address:{client_address(request)}"]


async def begin_login_attempt(conn: asyncpg.Connection, request: web.Request, login_keys: list[str]) -> list[int]:
    """Enter the attempt as a failure of the account and of the address, then count: 429 with
    Retry-After when either has more than LOGIN_MAX_FAILURES in the window. Entering before
    counting (each statement committed on its own) means concurrent attempts see each other, so
    a burst of parallel guesses gets no more tries than a sequence would. The entry stays as the
    failure unless the password turns out right (`login_succeeded`)."""
    settings = request.app[keys.SETTINGS]
    window = float(settings.login_window)
    if conn.is_in_transaction():
        await conn.fetchval(_users.lock_attempt_keys, login_keys)
    entries = [row["id"] for row in await conn.fetch(_users.reserve_attempt, login_keys, window)]
    rows = await conn.fetch(_users.recent_failures, login_keys, window, settings.login_max_failures)
    blocked = [row for row in rows if row["failures"] > settings.login_max_failures]
    if blocked:
        await conn.execute(_users.forget_attempt, entries)  # a refused attempt is not a try
        wait = max(row["retry_in"].total_seconds() for row in blocked)
        raise ApiError(
            429,
            {"login": ["too many failed logins; try again later"]},
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return entries


async def login_succeeded(conn: asyncpg.Connection, login_keys: list[str], entries: list[int]) -> None:
    await conn.execute(_users.clear_failures, login_keys[0], entries)
