"""The end-to-end tests' view of `simulators.processes`, with the test suite's admin token and secret key, and the
bridges the tests of one pytest process share (see conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app.platform.db import make_engine
from simulators.processes import Bridge, wait_for
from simulators.processes import run_bridge as _run_bridge
from simulators.sandbox import GraphHost, Sandbox
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, fresh_pg_database, redis_namespace

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# How long a test waits for the bridge to do something. Generous on purpose: a condition that holds returns at once,
# so only a failing test waits this long, and a loaded machine (CI, other suites running) must not fail a good one.
WAIT = 120.0
__all__ = ["AUTH", "WAIT", "Bridge", "Bridges", "SharedBridge", "integration_on", "run_bridge", "wait_for"]


@contextmanager
def run_bridge(sandbox: Sandbox | GraphHost, tmp_path: Path, database_url: str, redis_url: str | None = None,
               workers: int = 1, **kw: Any) -> Iterator[Bridge]:
    with _run_bridge(sandbox, tmp_path, database_url, redis_url, workers, ADMIN_TOKEN, SECRET_KEY, **kw) as bridge:
        yield bridge


@dataclass
class SharedBridge:
    bridge: Bridge
    database_url: str
    engine: Engine  # the test process's own view of the bridge's database: read-only, for `first_rounds`


class Bridges:
    """The bridges of one pytest process, by (stack, worker processes), started on first use, stopped at the end."""

    def __init__(self, host: GraphHost, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.host = host
        self._tmp = tmp_path_factory
        self._exit = ExitStack()
        self._bridges: dict[tuple[str, int], SharedBridge] = {}

    def get(self, request: pytest.FixtureRequest, stack: str, workers: int = 1) -> SharedBridge:
        key = (stack, workers)
        if key not in self._bridges:
            logs = self._tmp.mktemp(f"bridge-{stack.replace('+', '-')}-{workers}")
            if stack == "embedded":
                database_url = f"sqlite:///{logs / 'roombridge.db'}"
                bridge = self._exit.enter_context(run_bridge(self.host, logs, database_url))
            else:
                # Skipped (failed under CI) here, per test, when PostgreSQL or Redis is missing.
                pg_server, redis_server = request.getfixturevalue("pg_server"), request.getfixturevalue("redis_server")
                database_url = self._exit.enter_context(fresh_pg_database(pg_server))
                namespace = self._exit.enter_context(redis_namespace(redis_server))
                bridge = self._exit.enter_context(run_bridge(self.host, logs, database_url, redis_server, workers,
                                                             extra_env={"REDIS_NAMESPACE": namespace}))
            engine = make_engine(database_url)
            self._exit.callback(engine.dispose)
            self._bridges[key] = SharedBridge(bridge, database_url, engine)
        shared = self._bridges[key]
        dead = [p.args for p in shared.bridge.processes if p.poll() is not None]
        assert not dead, f"a process of the shared {stack} bridge has exited: {dead}; its logs: {shared.bridge.logs}"
        return shared

    def close(self) -> None:
        self._exit.close()


def first_rounds(shared: SharedBridge, integration: dict[str, Any]) -> None:
    """Run the integration's first reconcile rounds (every room's calendar, the booking side) and wait for them.

    A bridge's scheduler enqueues what is due once a minute, and a new integration's rounds are due at once. A bridge
    started for one test met that moment a minute after its start, after most tests; a shared one meets it at any
    moment of a test, where a round would be one more reader of changes the test hides or delays on purpose
    (dropped notifications, held hooks). After this, no periodic round is due for hours (rooms) or 15 minutes
    (loans), as on a bridge of the test's own."""
    integration_id = integration["id"]
    r = shared.bridge.api("POST", f"/api/integrations/{integration_id}/reconcile")
    assert r.status_code == 202, r.text
    wait_for(lambda: all(room["reconciled_at"] for room in shared.bridge.api(
        "GET", f"/api/integrations/{integration_id}/rooms").json()["items"]), WAIT, "the rooms' first reconcile")
    if integration["direction"] != "outlook_to_booking":  # otherwise the booking side has no rounds
        def loans_synced() -> bool:
            with shared.engine.connect() as c:
                return c.execute(text("SELECT loans_synced_at FROM integration WHERE id = :id"),
                                 {"id": integration_id}).scalar() is not None

        wait_for(loans_synced, WAIT, "the booking side's first reconcile")


@contextmanager
def integration_on(shared: SharedBridge, sandbox: Sandbox, **overrides: Any) -> Iterator[dict[str, Any]]:
    """An integration of `sandbox` on the shared bridge: created, rooms imported and subscribed, first rounds done;
    disabled afterwards, so that the bridge does nothing more for it (not deleted: its jobs may still be running,
    and a delete cascading under their writes can be a deadlock's victim)."""
    bridge = shared.bridge
    r = bridge.api("POST", "/api/integrations", json=sandbox.integration(**overrides))
    assert r.status_code == 201, r.text
    integration = r.json()
    try:
        wait_for(lambda: len(bridge.api("GET", f"/api/integrations/{integration['id']}/subscriptions")
                             .json()["items"]) == 2, WAIT, "two subscriptions")
        first_rounds(shared, integration)
        yield integration
    finally:
        # 503 + Retry-After when the database is briefly away: retried, as any admin client would.
        wait_for(lambda: bridge.api("PATCH", f"/api/integrations/{integration['id']}",
                                    json={"enabled": False}).status_code == 200, WAIT, "the integration disabled")
