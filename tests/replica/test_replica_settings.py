"""DATABASE_REPLICA_URLS and its companions: parsed, validated, and inert when unset."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from service.replicas import WalHistory, replica_label, wal_position
from service.settings import Settings
from tests.replica.conftest import ROOT

pytestmark = pytest.mark.replica

PRIMARY = "postgresql://app@db:5432/conduit"


def test_replica_urls_are_a_comma_separated_list() -> None:
    raw = " postgresql://r1:5432/conduit, postgres://r2/conduit ,"  # as the environment gives it
    settings = Settings(database_url=PRIMARY, database_replica_urls=raw)  # type: ignore[arg-type]
    assert settings.database_replica_urls == ["postgresql://r1:5432/conduit", "postgres://r2/conduit"]
    assert settings.db_replica_max_lag == 1.0
    assert settings.db_replica_pool_max_size == 10
    assert Settings(database_url=PRIMARY).database_replica_urls == []


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DATABASE_REPLICA_URLS": "r1:5432"}, "is not a postgresql:// URL"),
        ({"DATABASE_REPLICA_URLS": "postgresql://r/c,postgresql://r/c"}, "lists a replica twice"),
        ({"DB_REPLICA_MAX_LAG": "0"}, "DB_REPLICA_MAX_LAG"),
        ({"DB_REPLICA_POOL_MAX_SIZE": "0"}, "DB_REPLICA_POOL_MAX_SIZE"),
    ],
)
def test_a_bad_replica_setting_stops_the_process_with_one_line(variables: dict[str, str], message: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": PRIMARY, **variables}
    result = subprocess.run(
        [sys.executable, "-c", "from service.settings import load_settings; load_settings()"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_without_replicas_the_app_has_no_replica_machinery(monkeypatch: pytest.MonkeyPatch) -> None:
    from service import keys
    from service.app import build_app
    from service.replicas import replicas_ctx

    app = build_app(Settings(database_url=PRIMARY))
    assert replicas_ctx not in app.cleanup_ctx
    assert keys.REPLICAS not in app
    app = build_app(Settings(database_url=PRIMARY, database_replica_urls=["postgresql://r/c"]))
    assert replicas_ctx in app.cleanup_ctx


def test_lag_is_the_age_of_the_oldest_position_not_replayed() -> None:
    history = WalHistory()
    history.add(10.0, 100)
    history.add(10.1, 100)  # idle: the time it moved is kept
    history.add(11.0, 200)
    history.add(12.0, 300)
    assert history.lag(300, now=50.0) == 0  # replayed the latest: no lag however long it idles
    assert history.lag(250, now=12.5) == pytest.approx(0.5)  # 300 appeared at 12.0
    assert history.lag(150, now=12.5) == pytest.approx(1.5)  # 200 appeared at 11.0
    assert history.lag(100, now=12.5) == pytest.approx(1.5)  # replayed the oldest only
    assert history.lag(50, now=12.5) == math.inf  # behind the oldest sample kept: how far is unknown


def test_an_insert_position_past_a_page_header_is_the_page_boundary() -> None:
    assert wal_position(8192 * 7 + 24) == 8192 * 7
    assert wal_position(16 * 1024 * 1024 + 40) == 16 * 1024 * 1024
    assert wal_position(8192 * 7 + 48) == 8192 * 7 + 48


def test_a_replica_is_labelled_by_its_place_and_address() -> None:
    assert replica_label("postgresql://u:secret@replica-a:6432/conduit", 1) == "replica1:replica-a:6432"
    assert replica_label("postgresql://replica-b/conduit", 0) == "replica0:replica-b:5432"


def test_gunicorn_waits_for_the_replica_pools_to_close_too() -> None:
    from service.db import POOL_CLOSE_TIMEOUT
    from service.shutdown import graceful_timeout

    alone = Settings(database_url=PRIMARY)
    spread = Settings(database_url=PRIMARY, database_replica_urls="postgresql://r1/conduit")  # type: ignore[arg-type]
    assert graceful_timeout(spread) >= graceful_timeout(alone) + POOL_CLOSE_TIMEOUT
