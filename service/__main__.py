"""python -m service [serve|serve-replica|migrate|embedded]: process concerns only (environment, embedded
database, event loop); the app itself comes from service.app:create_app."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from service.settings import load_settings

if TYPE_CHECKING:
    from service.embedded import EmbeddedPostgres

DEFAULT_PGDATA = ".pgdata"
DEFAULT_REPLICA_PGDATA = ".pgdata-replica"


def _embedded_if_needed() -> EmbeddedPostgres | None:
    """With DATABASE_URL unset in development, start the embedded server on PGDATA_DIR
    (default .pgdata/, kept across runs) and point DATABASE_URL at a `conduit` database in it."""
    if os.environ.get("DATABASE_URL") or os.environ.get("APP_ENV") == "production":
        return None
    from service.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(os.environ.get("PGDATA_DIR", DEFAULT_PGDATA)))
    admin = server.start()
    asyncio.run(_ensure_database(admin, "conduit"))
    os.environ["DATABASE_URL"] = admin.rsplit("/", 1)[0] + "/conduit"
    print(f"embedded PostgreSQL at {os.environ['DATABASE_URL']} (data in {server.pgdata})", flush=True)
    return server


async def _ensure_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _embedded_replica(primary: EmbeddedPostgres | None) -> EmbeddedPostgres:
    """`serve-replica`: beside the embedded primary, a streaming replica of it (pg_basebackup -R)
    in REPLICA_PGDATA_DIR (default .pgdata-replica/, kept across runs), named in
    DATABASE_REPLICA_URLS."""
    if primary is None:
        raise SystemExit("serve-replica: the embedded replica needs the embedded primary (unset DATABASE_URL)")
    replica = primary.replica(Path(os.environ.get("REPLICA_PGDATA_DIR", DEFAULT_REPLICA_PGDATA)))
    admin = replica.start()
    os.environ["DATABASE_REPLICA_URLS"] = admin.rsplit("/", 1)[0] + "/conduit"
    print(f"embedded replica at {os.environ['DATABASE_REPLICA_URLS']} (data in {replica.pgdata})", flush=True)
    return replica


def serve(with_replica: bool = False) -> None:
    from aiohttp import web

    from service.app import create_app

    server = _embedded_if_needed()
    replica = None
    try:
        replica = _embedded_replica(server) if with_replica else None  # inside: a failure stops the primary
        settings = load_settings()
        web.run_app(
            create_app(),
            host=settings.host,
            port=settings.port,
            shutdown_timeout=settings.shutdown_timeout,
            access_log=None,  # our middleware writes one JSON line per request
            handler_cancellation=False,  # as under gunicorn's worker: a hang-up does not cancel work
            print=lambda message: print(message, flush=True),
        )
    finally:
        if replica is not None:
            replica.stop()
        if server is not None:
            server.stop()


def migrate() -> None:
    import asyncpg

    from service.migrate import MigrationError
    from service.migrate import migrate as run_migrations

    server = _embedded_if_needed()
    settings = load_settings()
    try:
        applied = asyncio.run(run_migrations(settings))
    except MigrationError as error:
        print(f"migration error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except (TimeoutError, OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as error:
        print(f"migration error: database unreachable ({error})", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        if server is not None:
            server.stop()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def embedded() -> None:
    """Run only the embedded database in the foreground, until interrupted."""
    os.environ.pop("DATABASE_URL", None)
    server = _embedded_if_needed()
    if server is None:  # APP_ENV=production: there is no embedded server to run
        raise SystemExit("embedded: the embedded PostgreSQL is for development (APP_ENV=production is set)")
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service")
    parser.add_argument(
        "command", choices=["serve", "serve-replica", "migrate", "embedded"], nargs="?", default="serve"
    )
    command = parser.parse_args(argv).command
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if command == "embedded":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    commands = {"serve": serve, "serve-replica": lambda: serve(True), "migrate": migrate, "embedded": embedded}
    commands[command]()


if __name__ == "__main__":
    main()
