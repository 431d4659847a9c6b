"""The one settings object, read from environment variables (SPEC §9) and validated at start."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY_HOST = "login.microsoftonline.com"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_https_unless_loopback(url: str) -> str:
    """Plain http is accepted only for simulators on this machine; everything else must be https."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return url.rstrip("/")
    raise ValueError("must be an https:// URL (plain http only for loopback addresses)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field("sqlite:///roombridge.db", description="SQLAlchemy URL; sqlite:///… or postgresql://…")
    redis_url: str | None = Field(None, description="Redis for the queue; unset = in-process queue and worker")
    public_base_url: str = Field("http://127.0.0.1:8000", description="How Graph and the booking system reach us")
    admin_token: SecretStr = Field(..., description="Bearer token of the admin API")
    secret_key: SecretStr = Field(..., description="≥ 32 characters; the key encrypting stored secrets derives from it")
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graph_base_url: str = DEFAULT_GRAPH_BASE_URL
    graph_authority_host: str = DEFAULT_AUTHORITY_HOST
    redis_namespace: str = Field("roombridge", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                 description="prefix of every Redis key: deployments sharing a Redis keep apart")
    worker_threads: int = Field(8, ge=1, le=256)
    graph_mailbox_concurrency: int = Field(4, ge=0, le=4, description="Graph requests in flight per mailbox; "
                                           "0 = no limit (only to measure what the limit buys, in benchmarks)")
    hint_coalesce_ms: int = Field(500, ge=0, le=60_000, description="0 turns coalescing of notifications off")
    retry_limit: int = Field(10, ge=0, le=100, description="automatic retries of a failing job before the "
                             "journal says it gave up (SPEC §2); waits (throttling, outages, busy locks) don't count")
    wait_limit_s: int = Field(6 * 3600, ge=1, le=7 * 86_400, description="how long a job may keep waiting "
                              "(throttling, booking system down, busy lock), from its first wait, before it gives up")
    journal_retention_days: int = Field(90, ge=1, le=3650, description="journal entries older than this are "
                                        "deleted by the scheduler (issue 10)")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        return v.rstrip("/")

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return v

    @field_validator("graph_base_url")
    @classmethod
    def _graph_base_url(cls, v: str) -> str:
        return require_https_unless_loopback(v)

    @field_validator("graph_authority_host")
    @classmethod
    def _authority_host(cls, v: str) -> str:
        host = v.removeprefix("https://").rstrip("/")
        if not host or "/" in host or host.startswith("http:"):
            raise ValueError("must be a host name (optionally with :port), e.g. login.microsoftonline.com")
        return host

    @property
    def embedded_queue(self) -> bool:
        return self.redis_url is None


class SettingsError(SystemExit):
    """Raised at start on a bad environment; its message is one line naming the variable(s)."""


def describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors():
        name = str(e["loc"][0]).upper() if e["loc"] else "settings"
        reason = "is required" if e["type"] == "missing" else e["msg"].removeprefix("Value error, ")
        parts.append(f"{name} {reason}")
    return "invalid configuration: " + "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        raise SettingsError(describe(e)) from None
