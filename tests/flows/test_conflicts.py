"""Both sides changed since the last sync: the most recent change wins (SPEC §7), whichever side syncs first."""

from __future__ import annotations

import time

import pytest

from tests.flows.conftest import assert_quiet, at
from tests.twins import World


def linked_loan(world: World) -> tuple[str, str]:
    loan_id = world.loan("alice", ["atlas"], at(9), at(10))
    world.settle()
    [event] = world.graph.events("alice@contoso.com")
    return loan_id, event.id


@pytest.mark.parametrize("hook_first", [True, False], ids=["hook-first", "notification-first"])
@pytest.mark.parametrize("newer", ["outlook", "booking"])
def test_the_newest_change_wins(world: World, newer: str, hook_first: bool) -> None:
    loan_id, event_id = linked_loan(world)
    changes = {
        "outlook": lambda: world.graph.users.update_event("alice@contoso.com", event_id, start=at(11), end=at(12)),
        "booking": lambda: world.booking.user_update_loan(loan_id, start=at(14), end=at(15)),
    }
    older = "booking" if newer == "outlook" else "outlook"
    changes[older]()
    time.sleep(0.005)  # distinct timestamps
    changes[newer]()
    jobs = world.collect()
    jobs.sort(key=lambda job: (job.kind == "hook") != hook_first)
    world.settle()
    expected = (at(11), at(12)) if newer == "outlook" else (at(14), at(15))
    loan = world.booking.store.loan(loan_id)
    [event] = world.graph.events("alice@contoso.com")
    assert (loan.start, loan.end) == expected
    assert (event.start, event.end) == expected
    assert any(entry.status == "conflict" for entry in world.journal())
    assert_quiet(world)
