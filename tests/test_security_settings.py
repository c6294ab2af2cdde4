"""Production refuses to start without an explicit JWT_SECRET of adequate length: one readable
line on stderr and exit status 2, before anything listens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import DEV_JWT_SECRET, MIN_JWT_SECRET_LENGTH, ConfigurationError, load_settings

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {"APP_ENV": "production", "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
GOOD_SECRET = "s" * MIN_JWT_SECRET_LENGTH

REFUSED = [
    ("unset", None, "JWT_SECRET must be set when APP_ENV=production"),
    ("empty", "", "JWT_SECRET must be set when APP_ENV=production"),
    ("short", "s" * (MIN_JWT_SECRET_LENGTH - 1), f"JWT_SECRET must be at least {MIN_JWT_SECRET_LENGTH} characters"),
    ("development default", DEV_JWT_SECRET, "JWT_SECRET must not be the development secret"),
]


def production_env(monkeypatch: pytest.MonkeyPatch, secret: str | None) -> None:
    for key in list(os.environ):
        if key.startswith(("JWT_", "APP_", "DATABASE_", "CORS_")):
            monkeypatch.delenv(key)
    for key, value in PRODUCTION.items():
        monkeypatch.setenv(key, value)
    if secret is not None:
        monkeypatch.setenv("JWT_SECRET", secret)


@pytest.mark.parametrize(("case", "secret", "message"), REFUSED, ids=[case for case, _, _ in REFUSED])
def test_load_settings_refuses_production_without_an_adequate_secret(monkeypatch, capsys, case, secret, message):
    production_env(monkeypatch, secret)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("configuration error: ") and message in err


def test_an_adequate_secret_is_accepted(monkeypatch):
    production_env(monkeypatch, GOOD_SECRET)
    settings = load_settings()
    assert settings.production and settings.jwt_secret == GOOD_SECRET
    assert settings.cors_origins == []  # and no browser origin is allowed unless configured


@pytest.mark.parametrize(("case", "secret", "message"), REFUSED[:3:2], ids=["unset", "short"])
def test_the_server_process_exits_2_with_one_line(case, secret, message):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JWT_", "APP_", "DATABASE_"))}
    env.update(PRODUCTION, PORT="18110", PYTHONPATH=str(ROOT))
    if secret is not None:
        env["JWT_SECRET"] = secret
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the refusal's exit status is what the test checks
    )
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
