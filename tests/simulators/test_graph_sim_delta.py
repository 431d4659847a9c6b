"""calendarView/delta: initial pages, incremental changes, @removed, expired tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from simulators.graph import GraphSimulator
from tests.simulators.common import ALICE, HOUR, NINE, ROOM_A

WINDOW = {"startDateTime": "2031-03-01T00:00:00Z", "endDateTime": "2031-04-01T00:00:00Z"}


def sync(
    graph: httpx.Client, url: str, params: dict[str, str] | None = None, page_size: int | None = None
) -> tuple[list[list[dict[str, Any]]], str]:
    """Follow nextLinks to the deltaLink: (pages, deltaLink)."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    pages = []
    while True:
        body = graph.get(url, params=params, headers=headers).raise_for_status().json()
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"]
        url, params = body["@odata.nextLink"], None


def book(sim: GraphSimulator, hours: int, subject: str = "Meeting") -> dict[str, Any]:
    return sim.create_meeting(ALICE, subject, NINE + hours * HOUR, NINE + (hours + 1) * HOUR, rooms=[ROOM_A])


@pytest.mark.parametrize("spelling", ["delta", "delta()"])
def test_the_initial_sync_is_paged_and_ends_with_a_delta_link(
    sim: GraphSimulator, graph: httpx.Client, spelling: str
) -> None:
    for hours in range(5):
        book(sim, hours)
    sim.create_meeting(ALICE, "Outside", NINE + timedelta(days=60), NINE + timedelta(days=60) + HOUR, rooms=[ROOM_A])

    pages, delta_link = sync(graph, f"/users/{ROOM_A}/calendarView/{spelling}", WINDOW, page_size=2)

    assert [len(page) for page in pages] == [2, 2, 1]
    assert len({event["id"] for page in pages for event in page}) == 5
    assert delta_link.startswith(f"{sim.graph_base_url}/users/{sim.user_id(ROOM_A)}/calendarView/{spelling}?")


def test_a_delta_link_returns_only_the_changes_since(sim: GraphSimulator, graph: httpx.Client) -> None:
    kept, moved, cancelled = book(sim, 0), book(sim, 1), book(sim, 2)
    _, delta_link = sync(graph, f"/users/{ROOM_A}/calendarView/delta", WINDOW)
    room_ids = {e["iCalUId"]: e["id"] for e in sim.events(ROOM_A)}

    sim.update_event(ALICE, moved["id"], start=NINE + 5 * HOUR, end=NINE + 6 * HOUR)
    sim.cancel_event(ALICE, cancelled["id"])
    added = book(sim, 8)
    pages, next_delta_link = sync(graph, delta_link)

    changes = {event["iCalUId"]: event for page in pages for event in page}
    assert kept["iCalUId"] not in changes
    assert changes[moved["iCalUId"]]["start"]["dateTime"] == "2031-03-10T14:00:00.0000000"
    assert changes[cancelled["iCalUId"]]["isCancelled"] is True
    assert changes[added["iCalUId"]]["id"] not in room_ids.values()
    assert sync(graph, next_delta_link)[0] == [[]]


def test_deletions_come_as_removed(sim: GraphSimulator, graph: httpx.Client) -> None:
    book(sim, 0)
    [room_copy] = sim.events(ROOM_A)
    _, delta_link = sync(graph, f"/users/{ROOM_A}/calendarView/delta", WINDOW)

    sim.delete_event(ROOM_A, room_copy["id"])
    [[removed]] = sync(graph, delta_link)[0]

    assert removed == {
        "@odata.type": "#microsoft.graph.event",
        "id": room_copy["id"],
        "@removed": {"reason": "deleted"},
    }


def test_an_event_moved_out_of_the_window_comes_as_removed(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = book(sim, 0)
    [room_copy] = sim.events(ROOM_A)
    _, delta_link = sync(graph, f"/users/{ROOM_A}/calendarView/delta", WINDOW)

    later = NINE + timedelta(days=60)
    sim.update_event(ALICE, meeting["id"], start=later, end=later + HOUR)
    [[removed]] = sync(graph, delta_link)[0]

    assert removed["id"] == room_copy["id"] and "@removed" in removed
    assert sim.events(ROOM_A)[0]["isCancelled"] is False  # still there: only outside the window


def test_expired_tokens_answer_410_sync_state_not_found(sim: GraphSimulator, graph: httpx.Client) -> None:
    book(sim, 0)
    _, delta_link = sync(graph, f"/users/{ROOM_A}/calendarView/delta", WINDOW)

    sim.expire_delta_tokens()
    response = graph.get(delta_link)

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "syncStateNotFound"
    pages, _ = sync(graph, f"/users/{ROOM_A}/calendarView/delta", WINDOW)  # a new initial sync works
    assert len(pages[0]) == 1


def test_a_window_is_required(graph: httpx.Client) -> None:
    assert graph.get(f"/users/{ROOM_A}/calendarView/delta").status_code == 400


def test_calendar_view_lists_the_window(sim: GraphSimulator, graph: httpx.Client) -> None:
    book(sim, 0)
    book(sim, 24 * 40)

    view = graph.get(f"/users/{ROOM_A}/calendarView", params=WINDOW).json()

    assert len(view["value"]) == 1
