"""Shared fixtures. PostgreSQL and Redis are the machine's real servers: under CI=true a missing one fails the run
(instead of skipping), so a green CI always means the real stack was exercised."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import redis

from app.platform.settings import Settings

PG_ADMIN_URL = os.environ.get("ROOMBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("ROOMBRIDGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

ADMIN_TOKEN = "test-admin-token-0123456789"
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); start it (see README) — tests needing it cannot run"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_server() -> str:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as e:  # noqa: BLE001
        _unavailable("PostgreSQL", e)
    return PG_ADMIN_URL


@contextmanager
def fresh_pg_database(pg_server: str) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped on the way out."""
    name = f"rb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_pg_database(pg_server) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'roombridge.db'}"


@pytest.fixture(scope="session")
def redis_server() -> str:
    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=3).ping()
    except Exception as e:  # noqa: BLE001
        _unavailable("Redis", e)
    return REDIS_TEST_URL


@contextmanager
def redis_namespace(redis_server: str) -> Iterator[str]:
    """A REDIS_NAMESPACE of its own, its keys deleted on the way out."""
    namespace = f"rbtest-{uuid.uuid4().hex[:10]}"
    try:
        yield namespace
    finally:
        client = redis.Redis.from_url(redis_server)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)


@pytest.fixture
def redis_url(redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Redis for one test, under a namespace of its own (REDIS_NAMESPACE, inherited by the bridge processes it
    starts), so that tests, benchmarks and developers sharing the machine's Redis never consume each other's jobs."""
    with redis_namespace(redis_server) as namespace:
        monkeypatch.setenv("REDIS_NAMESPACE", namespace)
        yield redis_server


def make_settings(database_url: str, redis_url: str | None = None, **extra: object) -> Settings:
    return Settings(database_url=database_url, redis_url=redis_url, admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
                    secret_key=SECRET_KEY, log_format="console", **extra)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Run a test on the embedded default and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'roombridge.db'}"
    return request.getfixturevalue("pg_url")


def random_guid() -> str:
    return str(uuid.uuid4())


def random_secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(params=["embedded", "postgres+redis"])
def web_client(request: pytest.FixtureRequest, tmp_path):
    """The HTTP app on SQLite + in-process queue, and on PostgreSQL + Redis; its worker is off, so jobs stay queued
    for the test to inspect."""
    from starlette.testclient import TestClient

    from app.platform.migrate import upgrade
    from app.web.app import create_app

    if request.param == "embedded":
        settings = make_settings(f"sqlite:///{tmp_path / 'rb.db'}")
    else:
        settings = make_settings(request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url"))
    upgrade(settings.database_url)
    with TestClient(create_app(settings, run_worker=False), raise_server_exceptions=False) as client:
        yield client


# Longest first, and pytest-xdist hands the tests out one at a time (`--maxschedchunk=1`, unless given) in this order:
# the few long ones start at once on different workers instead of one of them ending the run alone.
LONGEST_FIRST = {"test_convergence.py": 0, "test_echo.py": 1}


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "maxschedchunk", "no xdist") is None:  # xdist loaded, the option not given
        config.option.maxschedchunk = 1


def _duration_rank(item: pytest.Item) -> int:
    if item.path.name in LONGEST_FIRST:
        return LONGEST_FIRST[item.path.name]
    if item.path.parent.name == "faults":
        return 1
    return 2 if item.get_closest_marker("slow") else 3


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_duration_rank)  # stable: the order within each rank is pytest's
