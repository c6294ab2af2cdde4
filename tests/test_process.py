"""The process around the app: settings errors, the `python -m service` commands, the wheel."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from service.embedded import free_port
from service.sqlfiles import migrations

ROOT = Path(__file__).resolve().parent.parent


def run_service(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        check=False,  # the tests examine the exit status
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_", "APP_", "JWT_"))}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DB_POOL_MAX_SIZE": "many", "DATABASE_URL": "postgresql://db/conduit"}, "DB_POOL_MAX_SIZE"),
        ({"DB_ACQUIRE_TIMEOUT": "-1", "DATABASE_URL": "postgresql://db/conduit"}, "DB_ACQUIRE_TIMEOUT"),
        ({"APP_ENV": "staging", "DATABASE_URL": "postgresql://db/conduit"}, "APP_ENV"),
        ({"APP_ENV": "production", "JWT_SECRET": "x" * 40}, "DATABASE_URL"),
        ({"APP_ENV": "production", "DATABASE_URL": "postgresql://db/conduit"}, "JWT_SECRET"),
    ],
)
def test_a_bad_setting_stops_the_process_with_one_line_naming_it(variables, named):
    result = run_service("migrate", env=clean_env(**variables))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ") and named in lines[0]
    assert "Traceback" not in result.stderr


def test_migrate_command_applies_then_reports_nothing_to_do(server_dsn, tmp_path):
    import asyncio
    import secrets

    import asyncpg

    from tests.conftest import with_database

    name = f"conduit_cli_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_dsn)
        await conn.execute(sql)
        await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        env = clean_env(DATABASE_URL=with_database(server_dsn, name))
        first = run_service("migrate", env=env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == "applied: " + ", ".join(migration.version for migration in migrations())
        second = run_service("migrate", env=env)
        assert second.stdout.strip() == "applied: nothing (up to date)"
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


def test_migrate_command_with_the_database_down_says_so_in_one_line():
    result = run_service("migrate", env=clean_env(DATABASE_URL=f"postgresql://127.0.0.1:{free_port()}/x"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("migration error: database unreachable")
    assert "Traceback" not in result.stderr


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def pg_tmp_path():
    """A folder the unprivileged `pgserver` user can keep reaching. Not pytest's tmp_path: every
    pytest session that starts (another run as the same user) chmods /tmp/pytest-of-<user> back
    to 0700, which cuts the server off from its data directory in the middle of a test."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="conduit-serve-") as folder:
        yield Path(folder)


def test_serve_with_no_database_url_starts_the_embedded_server_and_becomes_ready(pg_tmp_path):
    """What `make run` does: embedded PostgreSQL in PGDATA_DIR, migrations at start-up, serving."""
    tmp_path = pg_tmp_path
    port = free_port()
    env = clean_env(PORT=str(port), PGDATA_DIR=str(tmp_path / "pgdata"))
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/readyz")
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.1)  # polling a condition with a deadline, not waiting for a guess
        assert status == 200
        assert (tmp_path / "pgdata" / "PG_VERSION").exists()
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()  # the embedded server was stopped


def test_the_wheel_ships_schemas_and_sql(tmp_path):
    # Built from a copy of the tracked sources, so that setuptools' build/ stays out of the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "service", "schemas", "sql"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,  # the assertion below shows pip's output
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "schemas/articles.py" in names
    assert "service/app.py" in names
    assert "sql/migrations/0001_init.sql" in names
    assert "sql/queries/articles.sql" in names
    assert not any(name.startswith("tests/") for name in names)
