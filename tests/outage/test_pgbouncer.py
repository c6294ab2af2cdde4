"""Behind a real PgBouncer (Debian's pgbouncer, 1.18) in transaction pooling mode: the API works
with DB_POOL_MODE=transaction, the timeouts hold, and migrations run through it."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.embedded import SYSTEM_USER, free_port
from service.migrate import migrate
from service.settings import Settings
from tests.helpers import auth, create_article, register
from tests.outage.conftest import APP_ROLE, OwnPostgres, assert_unavailable, wait_for

pytestmark = pytest.mark.outage

PGBOUNCER = shutil.which("pgbouncer") or next(
    (path for path in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if os.access(path, os.X_OK)), None
)

# What the service expects of PgBouncer (the README shows the same file). No
# ignore_startup_parameters: asyncpg sends only parameters PgBouncer knows, and ignoring
# statement_timeout & co. would silently drop them instead of applying them.
PGBOUNCER_INI = """\
[databases]
* = host=127.0.0.1 port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 100
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


class PgBouncer:
    """A pgbouncer process in front of one server. It refuses to run as root, so as root it runs
    as the embedded server's unprivileged user."""

    def __init__(self, folder: Path, server: OwnPostgres) -> None:
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "userlist.txt").write_text(f'"{APP_ROLE}" ""\n"postgres" ""\n')
        (folder / "pgbouncer.ini").write_text(
            PGBOUNCER_INI.format(server_port=server.port, port=self.port, folder=folder)
        )
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (folder, *folder.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        assert PGBOUNCER is not None  # the fixture skips without it
        with open(folder / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(
                [PGBOUNCER, str(folder / "pgbouncer.ini")],
                user=self.user,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd="/",
            )

    def url(self, database: str = "conduit") -> str:
        return f"postgresql://{APP_ROLE}@127.0.0.1:{self.port}/{database}"

    def wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"pgbouncer exited: {self.log()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # polling the listening socket with a deadline

    def log(self) -> str:
        paths = (self.folder / "pgbouncer.log", self.folder / "stderr.log")
        return "".join(path.read_text() for path in paths if path.exists())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # safe shutdown: wait for clients' transactions
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def pgbouncer(postgres: OwnPostgres, scratch: Path) -> Iterator[PgBouncer]:
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run does it when it can)")
    bouncer = PgBouncer(scratch / "pgbouncer", postgres)
    try:
        bouncer.wait_listening()
        yield bouncer
    finally:
        bouncer.stop()


BEHIND_PGBOUNCER = {"DB_POOL_MODE": "transaction", "DB_POOL_MAX_SIZE": "6"}


async def test_the_api_works_behind_pgbouncer_in_transaction_mode(pgbouncer, serve, postgres, admin_of):
    client = await serve(pgbouncer.url(), **BEHIND_PGBOUNCER)
    assert (await client.get("/readyz")).status == 200
    users = await asyncio.gather(*(register(client) for _ in range(4)))
    articles = await asyncio.gather(
        *(create_article(client, user["token"], title=f"Title {i}", tags=["b", "a"]) for i, user in enumerate(users))
    )
    # More client connections (6) than server connections (2): every transaction may land on a
    # different server connection, which a cached prepared statement would not survive.
    for _ in range(3):
        responses = await asyncio.gather(
            *(client.get("/api/articles", headers=auth(user["token"])) for user in users),
            *(client.post(f"/api/articles/{a['slug']}/favorite", headers=auth(users[0]["token"])) for a in articles),
            *(client.get(f"/api/profiles/{user['username']}") for user in users),
            client.get("/api/tags"),
        )
        for response in responses:
            assert response.status == 200, await response.text()
        for article in articles:
            response = await client.delete(f"/api/articles/{article['slug']}/favorite", headers=auth(users[0]["token"]))
            assert response.status == 200
    # A failed login is recorded even though the answer is an error (its implicit transaction
    # commits), so the limits still count behind PgBouncer.
    wrong = {"user": {"email": users[0]["email"], "password": "wrong-password"}}
    assert (await client.post("/api/users/login", json=wrong)).status == 401
    admin = await admin_of(postgres)
    assert await admin.fetchval("SELECT count(*) FROM login_failures") == 2  # per account and per address
    body = await (await client.get("/api/articles")).json()
    assert body["articlesCount"] == 4 and body["articles"][0]["tagList"] == ["a", "b"]


async def test_the_timeouts_hold_behind_pgbouncer(pgbouncer, serve, routes):
    client = await serve(
        pgbouncer.url(), routes=routes, DB_STATEMENT_TIMEOUT="0.5", DB_LOCK_TIMEOUT="0.25", **BEHIND_PGBOUNCER
    )
    session = await (await client.get("/t/session")).json()
    assert (session["statement_timeout"], session["lock_timeout"]) == ("500ms", "250ms")
    assert session["idle_in_transaction_session_timeout"] == "1min"
    await assert_unavailable(await client.get("/t/sleep/30"), message="the database did not answer in time")
    await assert_unavailable(await client.post("/t/sleep-in-transaction/30"))
    assert (await client.get("/api/tags")).status == 200


async def test_session_mode_settings_behind_pgbouncer_are_refused_loudly_not_silently(pgbouncer, serve):
    """Without DB_POOL_MODE=transaction the timeouts travel as startup parameters, which
    PgBouncer refuses: the service says so (503, readiness off) rather than run without them."""
    client = await serve(pgbouncer.url())
    assert (await client.get("/livez")).status == 200
    assert (await client.get("/readyz")).status == 503
    await assert_unavailable(await client.get("/api/tags"))
    assert "unsupported startup parameter: statement_timeout" in pgbouncer.log()


async def test_migrations_run_through_pgbouncer_each_file_once(pgbouncer, postgres, serve, admin_of):
    """Each file's transaction takes a transaction-level advisory lock, which lives exactly as
    long as the transaction PgBouncer pins to one server connection: concurrent migrators
    through PgBouncer apply each file once."""
    await postgres.create_database("fresh")
    settings = Settings(database_url=pgbouncer.url("fresh"))
    results = await asyncio.gather(*(migrate(settings) for _ in range(3)))
    applied = sorted(version for result in results for version in result)
    admin = await admin_of(postgres, "fresh")
    recorded = await admin.fetchval("SELECT array_agg(version ORDER BY version) FROM schema_migrations")
    assert applied == recorded and len(recorded) >= 2
    assert await admin.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0

    client = await serve(pgbouncer.url("fresh"), MIGRATE_ON_START="true", **BEHIND_PGBOUNCER)
    await wait_for(lambda: _ready(client))
    await register(client)


async def _ready(client) -> bool:
    return (await client.get("/readyz")).status == 200


def test_the_statement_cache_is_off_by_default_in_transaction_mode(monkeypatch):
    monkeypatch.setenv("DB_POOL_MODE", "transaction")
    assert Settings(database_url="postgresql://x/y").db_statement_cache_size == 0
    monkeypatch.setenv("DB_STATEMENT_CACHE_SIZE", "50")  # e.g. PgBouncer >= 1.21 with max_prepared_statements
    assert Settings(database_url="postgresql://x/y").db_statement_cache_size == 50
    monkeypatch.delenv("DB_POOL_MODE")
    monkeypatch.delenv("DB_STATEMENT_CACHE_SIZE")
    assert Settings(database_url="postgresql://x/y").db_statement_cache_size == 100
