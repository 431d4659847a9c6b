"""A change waiting on another job's write (`WriteInFlight`) runs that loan's job again (app/workers/actors.py): the
writing job may be gone with its retry, and the waiting job would otherwise wait until the record went stale."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.platform.locks import WriteInFlight
from app.workers import actors


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(actors, "current", lambda: SimpleNamespace(hints=SimpleNamespace(release=lambda key: None)))
    monkeypatch.setattr(actors, "send_loan_hint", lambda integration_id, loan_id: calls.append((integration_id,
                                                                                                loan_id)) or True)
    return calls


def test_a_change_waiting_on_a_loans_write_runs_the_loans_job_and_still_waits(monkeypatch: pytest.MonkeyPatch,
                                                                              sent: list[tuple[str, str]]) -> None:
    def in_flight(*args: object) -> None:
        raise WriteInFlight("the event of loan L-1 is being written", loan_id="L-1")

    monkeypatch.setattr(actors.outlook_to_booking, "process_room_event", in_flight)
    with pytest.raises(WriteInFlight):  # the failure policy counts it as a wait: this job comes back after
        actors.process_room_event.fn("int-1", "room-1", "ev-1", "updated")
    assert sent == [("int-1", "L-1")]


def test_a_wait_without_a_loan_runs_nothing_else(monkeypatch: pytest.MonkeyPatch,
                                                 sent: list[tuple[str, str]]) -> None:
    def in_flight(*args: object) -> None:
        raise WriteInFlight("busy")

    monkeypatch.setattr(actors.outlook_to_booking, "process_room_event", in_flight)
    with pytest.raises(WriteInFlight):
        actors.process_room_event.fn("int-1", "room-1", "ev-1", "updated")
    assert sent == []
