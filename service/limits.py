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
    and then the right-most address that is not itself a trusted proxy is the client."""
    peer = request.remote or "unknown"
    trusted = request.app[keys.SETTINGS].trusted_proxies
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _is_trusted(address, trusted):
            return address
    return peer


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


async def check_login_allowed(conn: asyncpg.Connection, request: web.Request, login_keys: list[str]) -> None:
    """429 with Retry-After when the account or the address has used up its failures."""
    settings = request.app[keys.SETTINGS]
    rows = await conn.fetch(_users.recent_failures, login_keys, float(settings.login_window))
    blocked = [row for row in rows if row["failures"] >= settings.login_max_failures]
    if blocked:
        wait = max(row["retry_in"].total_seconds() for row in blocked)
        raise ApiError(
            429,
            {"login": ["too many failed logins; try again later"]},
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )


async def record_login_failure(conn: asyncpg.Connection, request: web.Request, login_keys: list[str]) -> None:
    await conn.execute(_users.record_failure, login_keys, float(request.app[keys.SETTINGS].login_window))


async def clear_login_failures(conn: asyncpg.Connection, login_keys: list[str]) -> None:
    await conn.execute(_users.clear_failures, login_keys[0])
