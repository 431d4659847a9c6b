"""Bridges (real processes) shared by the tests of one pytest process, and per test an integration of its own.

Starting a bridge costs seconds of CPU (interpreters importing msgraph-sdk, a migrated database), more than most tests
take. So each pytest process keeps one bridge per kind for its whole session, started when a test first needs it:
the embedded default (SQLite, one `serve`), and PostgreSQL + Redis with one or two `worker` processes. Their Graph is
one `GraphHost`, which serves a tenant per test: every test gets a `Sandbox` of its own (its tenant, rooms,
subscriptions, notification faults and counters; its booking system on its own port) and an integration of its own
on the shared bridge, disabled afterwards. The simulators' counters and the integration's links and journal are thus
the test's alone, as with a bridge of its own. Tests that start, stop or kill processes still run their own bridge
(`run_bridge`: the first path, case 13).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from simulators.sandbox import GraphHost, Sandbox
from tests.e2e.harness import Bridge, Bridges, integration_on


@pytest.fixture(scope="session")
def graph_host() -> Iterator[GraphHost]:
    with GraphHost() as host:
        yield host


@pytest.fixture(scope="session")
def bridges(graph_host: GraphHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bridges]:
    shared = Bridges(graph_host, tmp_path_factory)
    try:
        yield shared
    finally:
        shared.close()


@dataclass
class Setup:
    sandbox: Sandbox
    bridge: Bridge
    integration: dict[str, Any]

    @property
    def graph(self):
        return self.sandbox.graph

    @property
    def booking(self):
        return self.sandbox.booking

    def api(self, method: str, path: str, **kw: Any):
        return self.bridge.api(method, f"/api/integrations/{self.integration['id']}{path}", **kw)

    def journal(self, **params: Any) -> list[dict[str, Any]]:
        return self.api("GET", "/journal", params=params).json()["items"]

    def settle(self) -> None:
        self.sandbox.settle()


@pytest.fixture(params=["embedded", "postgres+redis"])
def setup(request, bridges: Bridges, graph_host: GraphHost) -> Iterator[Setup]:
    """An integration of a fresh sandbox, on the shared embedded bridge, and on the shared PostgreSQL + Redis bridge
    with two worker processes."""
    shared = bridges.get(request, request.param, workers=1 if request.param == "embedded" else 2)
    with Sandbox.start(host=graph_host) as sandbox, integration_on(shared, sandbox) as integration:
        yield Setup(sandbox, shared.bridge, integration)


# The behaviour of the sync flows is tested in-process against the twins (tests/flows, tests/test_convergence.py), on
# SQLite. End to end, these modules run on PostgreSQL + Redis with separate worker processes (what only real
# processes show); a test marked `both_stacks` also runs on the embedded default. The first path, the echo tests and
# the subscriptions tests always run on both.
SCALE_OUT_ONLY = {"test_outlook_to_booking.py", "test_booking_to_outlook.py", "test_conflicts.py", "test_recurring.py"}


def _on_embedded(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "embedded" in (callspec.params.get("setup"), callspec.params.get("stack"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [item for item in items if item.path.name in SCALE_OUT_ONLY and _on_embedded(item)
               and not item.get_closest_marker("both_stacks")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
