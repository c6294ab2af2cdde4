"""Migrations: a fresh schema from nothing, a re-run that changes nothing, edits refused, and
concurrent runners that apply each file exactly once."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from service.migrate import MigrationError, apply_migrations, migrate
from service.settings import Settings
from service.sqlfiles import Migration, migrations
from tests.conftest import with_database


@pytest.fixture
async def fresh_database(server_dsn):
    """An empty database of its own, dropped afterwards."""
    name = f"conduit_migrate_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def recorded(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


async def test_files_are_ordered_and_shipped_as_package_data():
    versions = [m.version for m in migrations()]
    assert versions == sorted(versions)
    assert versions[0] == "0001_init"


async def test_from_nothing_then_a_rerun_applies_nothing(fresh_database):
    settings = Settings(database_url=fresh_database)
    everything = [m.version for m in migrations()]
    assert await migrate(settings) == everything
    assert await migrate(settings) == []
    assert await recorded(fresh_database) == everything


async def test_an_applied_file_that_changed_is_a_clear_error(fresh_database):
    conn = await asyncpg.connect(fresh_database)
    try:
        original = Migration("0001_sample", "CREATE TABLE sample (id int)")
        assert await apply_migrations(conn, [original]) == ["0001_sample"]
        edited = Migration("0001_sample", "CREATE TABLE sample (id bigint)")
        with pytest.raises(MigrationError, match="0001_sample was changed"):
            await apply_migrations(conn, [edited])
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(fresh_database):
    conn = await asyncpg.connect(fresh_database)
    try:
        broken = Migration("0001_broken", "CREATE TABLE half (id int); SELECT no_such_function()")
        with pytest.raises(MigrationError, match="0001_broken failed") as failure:
            await apply_migrations(conn, [broken])
        assert isinstance(failure.value.__cause__, asyncpg.UndefinedFunctionError)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        # Not even the bookkeeping table survived: the file's transaction rolled back whole.
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()


async def test_a_broken_file_at_start_up_is_not_retried_forever(fresh_database, caplog):
    """The start-up migrator retries only while the database is unreachable; a file with an SQL
    error stops it (readiness stays off) instead of looping."""
    from unittest.mock import patch

    from service import migrate as migrate_module

    broken = [Migration("0001_broken", "SELECT no_such_function()")]
    done = asyncio.Event()
    with patch.object(migrate_module, "migrations", return_value=broken):
        await asyncio.wait_for(migrate_module.migrate_when_reachable(Settings(database_url=fresh_database), done), 10)
    assert not done.is_set()
    assert "0001_broken failed" in caplog.text


async def test_concurrent_runners_apply_each_file_once(fresh_database):
    settings = Settings(database_url=fresh_database)
    results = await asyncio.gather(*(migrate(settings) for _ in range(4)))
    applied = [version for result in results for version in result]
    everything = [m.version for m in migrations()]
    assert sorted(applied) == everything  # each file applied by exactly one runner
    assert await recorded(fresh_database) == everything


async def test_tag_names_use_byte_order_whatever_the_database_collation(db):
    collation = await db.fetchval(
        "SELECT collation_name FROM information_schema.columns WHERE table_name = 'tags' AND column_name = 'name'"
    )
    assert collation == "C"


async def test_empty_bios_and_images_become_null_and_stay_out(fresh_database):
    """0005: rows written before RealWorld 2.0 with "" are read back as null afterwards, and the
    table refuses "" from then on."""
    everything = migrations()
    before = [m for m in everything if m.version < "0005"]
    conn = await asyncpg.connect(fresh_database)
    try:
        await apply_migrations(conn, before)
        await conn.execute(
            "INSERT INTO users (username, email, password_hash, bio, image) VALUES "
            "('old', 'old@example.com', 'x', '', ''), ('set', 'set@example.com', 'x', 'a bio', 'https://i/a.png')"
        )
        await conn.execute("INSERT INTO users (username, email, password_hash) VALUES ('plain', 'p@example.com', 'x')")
        await apply_migrations(conn, everything)
        rows = await conn.fetch("SELECT username, bio, image FROM users ORDER BY id")
        assert [tuple(r) for r in rows] == [
            ("old", None, None),
            ("set", "a bio", "https://i/a.png"),
            ("plain", None, None),  # the old default '' came in as before, then became null
        ]
        for column in ("bio", "image"):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(f"UPDATE users SET {column} = '' WHERE username = 'set'")
    finally:
        await conn.close()
