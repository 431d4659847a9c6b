"""A bridge (real processes) on each stack, an integration set up against a fresh sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from simulators.sandbox import Sandbox
from tests.e2e.harness import WAIT, Bridge, run_bridge, wait_for


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


def start_integration(sandbox: Sandbox, bridge: Bridge, **overrides: Any) -> dict[str, Any]:
    r = bridge.api("POST", "/api/integrations", json=sandbox.integration(**overrides))
    assert r.status_code == 201, r.text
    integration = r.json()
    wait_for(lambda: len(bridge.api("GET", f"/api/integrations/{integration['id']}/subscriptions")
                     .json()["items"]) == 2, WAIT, "two subscriptions")
    return integration


@pytest.fixture(params=["embedded", "postgres+redis"])
def setup(request, tmp_path):
    with Sandbox.start() as sandbox:
        if request.param == "embedded":
            ctx = run_bridge(sandbox, tmp_path, f"sqlite:///{tmp_path / 'roombridge.db'}")
        else:
            ctx = run_bridge(sandbox, tmp_path, request.getfixturevalue("pg_url"),
                             request.getfixturevalue("redis_url"), workers=2)
        with ctx as bridge:
            yield Setup(sandbox, bridge, start_integration(sandbox, bridge))


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
