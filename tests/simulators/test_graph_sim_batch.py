"""JSON `$batch`: items run through the same handlers, the 20-item limit, throttled items inside a 200 batch."""

from __future__ import annotations

import httpx
import pytest

from simulators.graph import GraphSimulator
from tests.simulators.common import ALICE, HOUR, NINE, ROOM_A, ROOM_B


def test_a_batch_of_gets_answers_each_item(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    [room_copy] = sim.events(ROOM_A)
    requests = [
        {"id": "1", "method": "GET", "url": f"/users/{ALICE}/events/{meeting['id']}"},
        {"id": "2", "method": "GET", "url": f"users/{sim.user_id(ROOM_A)}/events/{room_copy['id']}"},
        {
            "id": "3",
            "method": "GET",
            "url": f"/users/{ROOM_A}/calendarView?startDateTime=2031-03-01T00:00:00Z&endDateTime=2031-04-01T00:00:00Z",
            "headers": {"Prefer": 'outlook.timezone="Europe/Paris"'},
        },
        {"id": "4", "method": "GET", "url": f"/users/{ROOM_A}/events/AAMkADnope"},
        {"id": "5", "method": "GET", "url": "/places/microsoft.graph.room"},
    ]

    response = graph.post("/$batch", json={"requests": requests})

    assert response.status_code == 200, response.text
    by_id = {item["id"]: item for item in response.json()["responses"]}
    assert [item["id"] for item in response.json()["responses"]] == ["1", "2", "3", "4", "5"]
    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["iCalUId"] == meeting["iCalUId"]
    assert by_id["1"]["headers"]["Content-Type"].startswith("application/json")
    assert by_id["2"]["body"]["id"] == room_copy["id"]
    [seen] = by_id["3"]["body"]["value"]
    assert seen["start"] == {"dateTime": "2031-03-10T10:00:00.0000000", "timeZone": "Europe/Paris"}
    assert by_id["4"]["status"] == 404 and by_id["4"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert len(by_id["5"]["body"]["value"]) == 3
    assert sim.stats.batch_items == 5
    assert sim.stats.requests[("POST", "batch")] == 1 and sim.stats.requests[("GET", "event")] == 3


def test_batch_writes_and_depends_on(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    requests = [
        {
            "id": "move",
            "method": "PATCH",
            "url": f"/users/{ALICE}/events/{meeting['id']}",
            "headers": {"Content-Type": "application/json"},
            "body": {"subject": "Moved"},
        },
        {"id": "gone", "method": "DELETE", "url": f"/users/{ALICE}/events/AAMkADnope"},
        {"id": "after", "method": "GET", "url": f"/users/{ALICE}/events/{meeting['id']}", "dependsOn": ["move"]},
        {"id": "never", "method": "GET", "url": f"/users/{ALICE}", "dependsOn": ["gone"]},
    ]

    by_id = {r["id"]: r for r in graph.post("/$batch", json={"requests": requests}).json()["responses"]}

    assert by_id["move"]["status"] == 200 and by_id["after"]["body"]["subject"] == "Moved"
    assert by_id["gone"]["status"] == 404
    assert by_id["never"]["status"] == 424
    assert sim.stats.event_writes[sim.user_id(ALICE)] == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"requests": [{"id": str(i), "method": "GET", "url": f"/users/{ALICE}"} for i in range(21)]},
        {"requests": []},
        {"requests": [{"id": "1", "method": "GET", "url": "/me"}, {"id": "1", "method": "GET", "url": "/me"}]},
        {"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}]},
        {"requests": [{"id": "1", "method": "TRACE", "url": "/me"}]},
    ],
)
def test_invalid_batches_are_refused(sim: GraphSimulator, graph: httpx.Client, payload: dict[str, object]) -> None:
    response = graph.post("/$batch", json=payload)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert sim.stats.batch_items == 0


def test_twenty_items_are_accepted(graph: httpx.Client) -> None:
    requests = [{"id": str(i), "method": "GET", "url": f"/users/{ALICE}"} for i in range(20)]

    response = graph.post("/$batch", json={"requests": requests})

    assert response.status_code == 200
    assert {item["status"] for item in response.json()["responses"]} == {200}


def test_a_throttled_item_is_a_429_inside_a_200_batch(sim: GraphSimulator, graph: httpx.Client) -> None:
    sim.inject(429, count=1, retry_after=7, mailbox=ROOM_B)
    requests = [
        {"id": "a", "method": "GET", "url": f"/users/{ROOM_A}"},
        {"id": "b", "method": "GET", "url": f"/users/{ROOM_B}"},
    ]

    response = graph.post("/$batch", json={"requests": requests})

    assert response.status_code == 200
    by_id = {item["id"]: item for item in response.json()["responses"]}
    assert by_id["a"]["status"] == 200
    assert by_id["b"]["status"] == 429 and by_id["b"]["headers"]["Retry-After"] == "7"
    assert by_id["b"]["body"]["error"]["code"] == "TooManyRequests"


def test_the_mailbox_concurrency_limit_applies_per_item(sim: GraphSimulator, graph: httpx.Client) -> None:
    sim.mailbox_concurrency = 2
    sim.latency = 0.3
    requests = [{"id": str(i), "method": "GET", "url": f"/users/{ROOM_A}"} for i in range(4)]

    response = graph.post("/$batch", json={"requests": requests})

    assert response.status_code == 200
    statuses = sorted(item["status"] for item in response.json()["responses"])
    assert statuses == [200, 200, 429, 429]  # four run at once; the mailbox takes two
    throttled = [item for item in response.json()["responses"] if item["status"] == 429]
    assert all(item["headers"]["Retry-After"] == "2" for item in throttled)
    assert sim.stats.max_in_flight[sim.user_id(ROOM_A)] == 2
