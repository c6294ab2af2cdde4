"""Applies sql/migrations in order, once each, recorded with a checksum.

Each file runs in its own transaction that first takes a transaction-level advisory lock, so
several workers or instances starting together apply every file exactly once, and the lock is
released with the transaction (a session-level lock would leak through PgBouncer). A file that
begins `-- migrate: repeat` is a batched backfill: its statement runs in one such transaction per
batch until it returns false, so no lock outlives a batch."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import asyncpg

from service.db import UNREACHABLE, connect_options
from service.settings import Settings
from service.sqlfiles import Migration, migrations

log = logging.getLogger("service.migrate")

LOCK_KEY = 0x636F6E64  # "cond": one key for the whole schema
RETRY_MAX_DELAY = 5.0

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


# Errors that say "the server cannot run this now" rather than "this SQL is wrong".
# A deadlock with the service's writers (a migration that locks tables) is worth another try too.
_TRANSIENT = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.DeadlockDetectedError,
)


class MigrationError(Exception):
    """A migration cannot be applied safely (for example an applied file was edited)."""


def checksum(migration: Migration) -> str:
    return hashlib.sha256(migration.sql.encode("utf-8")).hexdigest()


async def apply_migrations(conn: asyncpg.Connection, files: list[Migration] | None = None) -> list[str]:
    """Apply what is missing; return the versions applied by this call.

    A `repeat` file (a batched backfill) runs as many transactions as it takes, each under the
    lock: several runners share its batches, and it is recorded by the one that sees it finish."""
    applied: list[str] = []
    for migration in files if files is not None else migrations():
        while True:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
                await conn.execute("SET LOCAL statement_timeout = 0")
                await conn.execute("SET LOCAL lock_timeout = 0")
                await conn.execute(_CREATE_TABLE)
                if await _recorded(conn, migration):
                    break
                more = await _run(conn, migration)
                if more:
                    continue  # this batch commits; the next runs in a transaction of its own
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    migration.version,
                    checksum(migration),
                )
                applied.append(migration.version)
                log.info("applied migration %s", migration.version)
                break
    return applied


async def _recorded(conn: asyncpg.Connection, migration: Migration) -> bool:
    recorded = await conn.fetchval("SELECT checksum FROM schema_migrations WHERE version = $1", migration.version)
    if recorded is None:
        return False
    if recorded != checksum(migration):
        raise MigrationError(
            f"migration {migration.version} was changed after it was applied "
            "(checksum mismatch); add a new migration instead of editing it"
        )
    return True


async def _run(conn: asyncpg.Connection, migration: Migration) -> bool:
    """Run the file (once, or one batch of a `repeat` file); whether a `repeat` file has more."""
    try:
        if migration.repeated:
            more = await conn.fetchval(migration.sql)
            if not isinstance(more, bool):
                raise MigrationError(f"migration {migration.version} repeats a statement that returned {more!r}")
            return more
        await conn.execute(migration.sql)
        return False
    except _TRANSIENT:
        raise
    except asyncpg.PostgresError as error:
        # An error in the file itself: retrying cannot help, a person must fix it.
        raise MigrationError(f"migration {migration.version} failed: {error!r}") from error


async def migrate(settings: Settings) -> list[str]:
    """Apply migrations over a connection of their own (never one of the pool's)."""
    conn = await asyncpg.connect(**connect_options(settings), statement_cache_size=0)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def migrate_when_reachable(settings: Settings, done: asyncio.Event) -> None:
    """Retry until the database answers, then migrate and set `done` (readiness waits on it).

    A MigrationError is not retried: it needs a person, so readiness stays off and it is logged."""
    delay = 0.2
    while True:
        try:
            applied = await migrate(settings)
        except MigrationError:
            log.exception("migrations failed; the service stays unready")
            return
        except UNREACHABLE as error:
            log.warning("database not reachable for migrations (%r); retrying in %.1fs", error, delay)
        except Exception:  # never end silently: readiness waits on this task
            log.exception("migrations failed unexpectedly; retrying in %.1fs", delay)
        else:
            log.info("migrations done (applied here: %s)", ", ".join(applied) or "none")
            done.set()
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_DELAY)
