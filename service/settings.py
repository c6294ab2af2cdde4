"""Configuration: the only place that reads the environment."""

from __future__ import annotations

import sys
from typing import Annotated, Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_JWT_SECRET = "development-only-secret-change-me-0123456789"  # noqa: S105 - refused in production
MIN_JWT_SECRET_LENGTH = 32
ASYNCPG_STATEMENT_CACHE_SIZE = 100  # asyncpg's own default


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]

T = TypeVar("T")


def resolved(value: T | None) -> T:
    """A setting declared `X | None` because None means "unset" on input; `Settings` fills in its
    default after validation, so a validated instance never holds None there."""
    if value is None:
        raise RuntimeError("a setting read before Settings filled in its default")
    return value


class Settings(BaseSettings):
    """Every setting, read from the environment (names are the upper-case field names)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    app_env: Literal["development", "production"] = "development"
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    web_concurrency: int = Field(1, ge=1, le=64)
    jwt_secret: str | None = None
    jwt_expiry: int = Field(7 * 24 * 3600, gt=0, description="token lifetime in seconds")

    db_pool_min_size: int = Field(2, ge=0)
    db_pool_max_size: int = Field(10, ge=1)
    db_acquire_timeout: float = Field(2.0, gt=0)
    db_connect_timeout: float = Field(5.0, gt=0)
    db_statement_timeout: float = Field(5.0, gt=0)
    db_lock_timeout: float | None = Field(None, gt=0)
    db_idle_in_transaction_timeout: float = Field(60.0, gt=0)
    db_statement_cache_size: int | None = Field(None, ge=0)
    # "transaction" when DATABASE_URL points at PgBouncer with pool_mode = transaction: the
    # session timeouts are then set per transaction, and the statement cache defaults to off.
    db_pool_mode: Literal["session", "transaction"] = "session"
    db_target_session_attrs: Literal["any", "primary", "standby", "prefer-standby", "read-write", "read-only"] = (
        "read-write"
    )
    # Streaming replicas for reads (service/replicas.py); unset, everything runs on the primary.
    database_replica_urls: CsvList = []
    db_replica_pool_max_size: int = Field(10, ge=1)
    db_replica_max_lag: float = Field(1.0, gt=0, description="seconds a replica may be behind to serve reads")

    shutdown_delay: float | None = Field(None, ge=0)
    shutdown_timeout: float = Field(10.0, ge=0)
    migrate_on_start: bool | None = None

    max_body_size: int = Field(1024 * 1024, ge=1024)
    login_max_failures: int = Field(10, ge=1)
    login_window: int = Field(900, ge=1)
    trusted_proxies: CsvList = []
    cors_origins: CsvList | None = None

    @model_validator(mode="before")
    @classmethod
    def _csv(cls, data: dict[str, object]) -> dict[str, object]:
        for key in ("trusted_proxies", "cors_origins", "database_replica_urls"):
            if key in data:
                data[key] = _split_csv(data[key])
        return data

    @model_validator(mode="after")
    def _environment_defaults(self) -> Settings:
        production = self.app_env == "production"
        if production:
            if not self.database_url:
                raise ValueError("DATABASE_URL must be set when APP_ENV=production")
            if not self.jwt_secret:
                raise ValueError("JWT_SECRET must be set when APP_ENV=production")
            if self.jwt_secret == DEV_JWT_SECRET:
                raise ValueError("JWT_SECRET must not be the development secret when APP_ENV=production")
        if self.jwt_secret is not None and len(self.jwt_secret) < MIN_JWT_SECRET_LENGTH:
            raise ValueError(f"JWT_SECRET must be at least {MIN_JWT_SECRET_LENGTH} characters")
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        for url in self.database_replica_urls:
            if not url.startswith(("postgres://", "postgresql://")):
                raise ValueError(f"DATABASE_REPLICA_URLS: {url!r} is not a postgresql:// URL")
        if self.database_replica_urls and not self.database_url:
            raise ValueError("DATABASE_REPLICA_URLS needs DATABASE_URL (the primary) to be set")
        if len(set(self.database_replica_urls)) != len(self.database_replica_urls):
            raise ValueError("DATABASE_REPLICA_URLS lists a replica twice")
        defaults = {
            "jwt_secret": self.jwt_secret or DEV_JWT_SECRET,
            "db_lock_timeout": self.db_lock_timeout or self.db_statement_timeout,
            "db_statement_cache_size": self.db_statement_cache_size
            if self.db_statement_cache_size is not None
            else (0 if self.db_pool_mode == "transaction" else ASYNCPG_STATEMENT_CACHE_SIZE),
            "shutdown_delay": self.shutdown_delay if self.shutdown_delay is not None else (5.0 if production else 0.0),
            "migrate_on_start": self.migrate_on_start if self.migrate_on_start is not None else not production,
            "cors_origins": self.cors_origins if self.cors_origins is not None else ([] if production else ["*"]),
        }
        for name, value in defaults.items():
            object.__setattr__(self, name, value)
        return self

    @property
    def production(self) -> bool:
        return self.app_env == "production"


class ConfigurationError(SystemExit):
    """Raised with one readable line; as a SystemExit it ends the process without a traceback."""


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]).upper()
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)
    return "configuration error: " + "; ".join(parts)


def load_settings() -> Settings:
    """Settings from the environment, or a ConfigurationError whose text names the variable."""
    try:
        return Settings()
    except ValidationError as error:
        print(describe(error), file=sys.stderr)
        raise ConfigurationError(2) from None
