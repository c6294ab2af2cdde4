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


async def test_a_repeat_file_runs_a_batch_per_transaction_until_it_returns_false(fresh_database):
    conn = await asyncpg.connect(fresh_database)
    try:
        setup = Migration("0001_queue", "CREATE TABLE queue (n int); INSERT INTO queue SELECT generate_series(1, 5)")
        batches = Migration(
            "0002_drain",
            "-- migrate: repeat\n"
            "WITH gone AS (DELETE FROM queue WHERE n = (SELECT min(n) FROM queue) RETURNING n),"
            " seen AS (INSERT INTO drained SELECT n, txid_current() FROM gone)"
            " SELECT EXISTS (SELECT 1 FROM gone)",
        )
        await conn.execute("CREATE TABLE drained (n int, tx bigint)")
        assert batches.repeated and not setup.repeated
        assert await apply_migrations(conn, [setup, batches]) == ["0001_queue", "0002_drain"]
        assert await conn.fetchval("SELECT count(*) FROM queue") == 0
        # five batches, each committed in a transaction of its own
        assert await conn.fetchval("SELECT count(DISTINCT tx) FROM drained") == 5
        assert await apply_migrations(conn, [setup, batches]) == []
    finally:
        await conn.close()


async def test_counts_backfill_in_batches_while_writers_keep_writing(fresh_database):
    """0006-0008 on a database that already has data, with writers inserting and deleting
    articles, tags, favorites and users all through the migration: afterwards every kept count
    equals COUNT(*) and every copied created_at is the article's (the backfill recounts each
    batch of keys under a short lock of the table it reads, tests/counts.py compares)."""
    from tests.bench.seed import Scale, seed
    from tests.counts import compare_counts

    everything = migrations()
    first_new = next(n for n, m in enumerate(everything) if m.version == "0006_counts")
    conn = await asyncpg.connect(fresh_database)
    writers = [await asyncpg.connect(fresh_database) for _ in range(3)]
    try:
        await apply_migrations(conn, everything[:first_new])
        await seed(conn, Scale(users=60, articles=800, follows=300, favorites=1_500, comments=0), distinct_hashes=False)
        await conn.execute("SET conduit.backfill_width = '25'")  # many batches over 800 articles
        migrating = asyncio.ensure_future(apply_migrations(conn, everything[first_new:]))
        during = [0]

        async def write(w: asyncpg.Connection, n: int) -> None:
            import random

            rng = random.Random(n)
            while not migrating.done() or during[0] < 30:  # and a little after, on the new schema
                during[0] += not migrating.done()
                try:
                    kind = rng.randrange(5)
                    if kind == 0:
                        async with w.transaction():
                            article = await w.fetchval(
                                "INSERT INTO articles (slug, title, description, body, author_id)"
                                " VALUES ($1, 't', 'd', 'b', (SELECT max(id) FROM users)) RETURNING id",
                                f"w{n}-{rng.random()}",
                            )
                            await w.execute(
                                "INSERT INTO article_tags (article_id, tag_id) SELECT $1, id FROM tags"
                                " ORDER BY id LIMIT 2",
                                article,
                            )
                    elif kind == 1:
                        await w.execute(
                            "DELETE FROM articles WHERE id = (SELECT id FROM articles ORDER BY random() LIMIT 1)"
                        )
                    elif kind == 2:
                        await w.execute(
                            "INSERT INTO favorites (user_id, article_id) SELECT u.id, a.id FROM"
                            " (SELECT id FROM users ORDER BY random() LIMIT 2) u,"
                            " (SELECT id FROM articles ORDER BY random() LIMIT 2) a ON CONFLICT DO NOTHING"
                        )
                    elif kind == 3:
                        await w.execute(
                            "DELETE FROM favorites WHERE ctid = (SELECT ctid FROM favorites ORDER BY random() LIMIT 1)"
                        )
                    elif rng.random() < 0.1:
                        await w.execute("DELETE FROM users WHERE id = (SELECT min(id) FROM users)")
                except (asyncpg.ForeignKeyViolationError, asyncpg.DeadlockDetectedError):
                    pass  # raced a delete: that write failed whole
                await asyncio.sleep(0)

        await asyncio.gather(migrating, *(write(w, n) for n, w in enumerate(writers)))
        assert migrating.result() == [m.version for m in everything[first_new:]]
        assert during[0] > 20, "the writers did not overlap the migration"
        compared, wrong = await compare_counts(conn)
        assert compared > 100 and not wrong, "\n".join(wrong)
        for table in ("article_tags", "favorites"):
            stale = await conn.fetchval(
                f"SELECT count(*) FROM {table} x JOIN articles a ON a.id = x.article_id"
                " WHERE x.article_created_at IS DISTINCT FROM a.created_at"
            )
            assert stale == 0, table
    finally:
        for w in writers:
            await w.close()
        await conn.close()
