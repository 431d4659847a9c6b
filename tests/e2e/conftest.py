"""A bridge (real processes) on each stack, an integration set up against a fresh sandbox."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from app.simulators.sandbox import Sandbox

from .harness import Bridge, run_bridge, wait_for


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

    def settle(self, quiet_s: float = 1.5, timeout: float = 60) -> None:
        """Wait until nothing moves any more: notifications and hooks delivered, and neither simulator has seen a
        request for `quiet_s` (longer than the bridge's coalescing window)."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            self.graph.wait_idle(5)
            self.booking.wait_idle(5)
            now = (sum(self.graph.stats.requests.values()), self.booking.stats.requests,
                   self.graph.stats.notifications_delivered, self.booking.stats.hooks_sent)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.1)
        raise AssertionError("the bridge did not settle")


def start_integration(sandbox: Sandbox, bridge: Bridge, **overrides: Any) -> dict[str, Any]:
    r = bridge.api("POST", "/api/integrations", json=sandbox.integration(**overrides))
    assert r.status_code == 201, r.text
    integration = r.json()
    wait_for(lambda: len(bridge.api("GET", f"/api/integrations/{integration['id']}/subscriptions")
                     .json()["items"]) == 2, 60, "two subscriptions")
    return integration


@pytest.fixture(params=["embedded", "postgres+redis"])
def setup(request, tmp_path):
    overrides = getattr(request, "param_overrides", {})
    with Sandbox.start() as sandbox:
        if request.param == "embedded":
            ctx = run_bridge(sandbox, tmp_path, f"sqlite:///{tmp_path / 'roombridge.db'}")
        else:
            ctx = run_bridge(sandbox, tmp_path, request.getfixturevalue("pg_url"),
                             request.getfixturevalue("redis_url"), workers=2)
        with ctx as bridge:
            yield Setup(sandbox, bridge, start_integration(sandbox, bridge, **overrides))
