"""A sandbox wired both ways to a (shared) bridge: integration created, rooms imported and subscribed, reverse hooks
aimed at the bridge. Used by the booking → Outlook, echo and conflict end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulators.sandbox import Sandbox
from tests.e2e.harness import WAIT, Bridge, Bridges, SharedBridge, integration_on, wait_for

JUPITER, SATURNE = "salle-jupiter@contoso.com", "salle-saturne@contoso.com"
ALICE = {"email": "alice@contoso.com", "name": "Alice Martin"}


@dataclass
class TwoWay:
    sandbox: Sandbox
    bridge: Bridge
    integration_id: str
    hook_secret: str

    def links(self) -> list[dict[str, Any]]:
        return self.bridge.api("GET", f"/api/integrations/{self.integration_id}/links?limit=1000").json()["items"]

    def journal(self, **params: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in {"limit": "1000", **params}.items())
        return self.bridge.api("GET", f"/api/integrations/{self.integration_id}/journal?{query}").json()["items"]

    def organiser_events(self, user: str) -> list[dict[str, Any]]:
        return [e for e in self.sandbox.graph.events(user) if e.get("isOrganizer")]

    def quiesce(self, stable_s: float = 2.0, timeout: float = WAIT) -> None:
        """Wait until nothing moves any more, the bridge's journal and links included, and no link holds a write in
        flight: a job between its write and the link's record can be still for more than `stable_s` on a loaded
        machine (a loan's event created, its link still the `roombridge-creating:` placeholder, seen once at load ~10
        with a core kept busy)."""
        deadline = time.monotonic() + timeout
        in_flight_until = time.monotonic() + IN_FLIGHT_S
        while True:
            self.sandbox.settle(stable_s, max(1.0, deadline - time.monotonic()), also=lambda: (
                len(self.journal()), tuple(sorted((link["id"], link["updated_at"]) for link in self.links()))))
            in_flight = [link["ical_uid"] for link in self.links() if _in_flight(link)]
            if not in_flight or time.monotonic() > min(deadline, in_flight_until):
                return  # a record left on purpose (a test's killed write) is for the test's own assertions
            time.sleep(0.2)


IN_FLIGHT_S = 30.0  # how long `quiesce` waits, beyond quiet, for a write in flight to be recorded


def _in_flight(link: dict[str, Any]) -> bool:
    """A write recorded before it was sent and not yet confirmed (`app.core.link.Pending`; an event create's link
    keeps the `roombridge-creating:` placeholder until then)."""
    synced = link.get("synced")
    return str(link.get("ical_uid", "")).startswith("roombridge-creating:") or (
        isinstance(synced, dict) and bool(synced.get("pending")))


@contextmanager
def wired(shared: SharedBridge, sandbox: Sandbox, **settings: Any) -> Iterator[TwoWay]:
    """`sandbox` wired both ways to the shared bridge, through an integration of its own."""
    bridge = shared.bridge
    with integration_on(shared, sandbox, **settings) as integration:
        wait_for(lambda: all(p.id for p in sandbox.booking.places.values()) and len(sandbox.booking.places) == 2,
                 WAIT, "places")
        sandbox.booking.set_hook_target(f"{bridge.base_url}/hooks/booking/{integration['id']}",
                                        integration["hook_secret"])
        yield TwoWay(sandbox, bridge, integration["id"], integration["hook_secret"])


@contextmanager
def two_way(request: pytest.FixtureRequest, stack: str, **settings: Any) -> Iterator[TwoWay]:
    """A fresh sandbox wired both ways to the shared bridge of `stack` (PostgreSQL + Redis: one worker process)."""
    bridges: Bridges = request.getfixturevalue("bridges")
    with Sandbox.start(host=request.getfixturevalue("graph_host")) as sandbox, \
            wired(bridges.get(request, stack), sandbox, **settings) as tw:
        yield tw


@pytest.fixture(params=["embedded", "postgres+redis"], name="stack")
def stack_fixture(request: pytest.FixtureRequest) -> Iterator[TwoWay]:
    """A `TwoWay` on the embedded default, and on PostgreSQL + Redis with a separate worker process."""
    with two_way(request, request.param) as tw:
        yield tw


def slot(days: int = 1, hour: int = 9, minutes: int = 60, minute: int = 0) -> tuple[datetime, datetime]:
    """A slot `days` ahead, in UTC."""
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
    return start, start + timedelta(minutes=minutes)
