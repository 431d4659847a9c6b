"""Rooms (/places, paged, both spellings), users by object id or e-mail, mailbox settings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from simulators.graph import GraphSimulator
from tests.simulators.graph_helpers import ROOMS

PLACES_PATHS = ["/places/microsoft.graph.room", "/places/graph.room"]


def all_pages(graph: httpx.Client, url: str) -> list[list[dict[str, Any]]]:
    pages = []
    while url:
        body = graph.get(url).raise_for_status().json()
        pages.append(body["value"])
        url = body.get("@odata.nextLink")
    return pages


@pytest.mark.parametrize("path", PLACES_PATHS)
def test_rooms_are_listed_in_pages_with_absolute_next_links(
    sim: GraphSimulator, graph: httpx.Client, path: str
) -> None:
    sim.tunables.places_page_size = 2

    pages = all_pages(graph, path)

    assert [len(page) for page in pages] == [2, 1]
    assert [room["emailAddress"] for page in pages for room in page] == list(ROOMS)


@pytest.mark.parametrize("path", PLACES_PATHS)
def test_top_sets_the_page_size(graph: httpx.Client, path: str) -> None:
    assert [len(page) for page in all_pages(graph, f"{path}?$top=1")] == [1, 1, 1]


def test_a_room_has_the_graph_room_shape_and_a_place_id(sim: GraphSimulator, graph: httpx.Client) -> None:
    room = graph.get(PLACES_PATHS[0]).json()["value"][0]

    assert room["@odata.type"] == "#microsoft.graph.room"
    assert room["id"] == sim.place_id("room-a@contoso.com") != sim.user_id("room-a@contoso.com")
    assert (room["displayName"], room["capacity"], room["building"], room["floorNumber"], room["tags"]) == (
        "Room A",
        4,
        "HQ",
        1,
        ["hq"],
    )
    assert set(room["address"]) == {"street", "city", "state", "countryOrRegion", "postalCode"}
    for key in ("floorLabel", "bookingType", "isWheelChairAccessible", "nickname", "label", "phone"):
        assert key in room


def test_hidden_rooms_and_new_tags_show_in_the_listing(sim: GraphSimulator, graph: httpx.Client) -> None:
    sim.remove_room("room-b@contoso.com")
    sim.set_room_tags("room-c@contoso.com", ["vip"])

    rooms = graph.get(PLACES_PATHS[1]).json()["value"]

    assert [(r["emailAddress"], r["tags"]) for r in rooms] == [
        ("room-a@contoso.com", ["hq"]),
        ("room-c@contoso.com", ["vip"]),
    ]


def test_users_are_found_by_object_id_or_email_in_any_case(sim: GraphSimulator, graph: httpx.Client) -> None:
    user_id = sim.user_id("alice@contoso.com")

    by_id = graph.get(f"/users/{user_id}").json()
    by_email = graph.get("/users/Alice@Contoso.COM").json()

    assert by_id["id"] == by_email["id"] == user_id
    assert (by_id["mail"], by_id["userPrincipalName"], by_id["displayName"]) == (
        "alice@contoso.com",
        "alice@contoso.com",
        "Alice Martin",
    )


def test_an_unknown_user_is_404(graph: httpx.Client) -> None:
    response = graph.get("/users/nobody@contoso.com")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "Request_ResourceNotFound"


def test_mailbox_settings_give_the_zone_and_working_hours(sim: GraphSimulator, graph: httpx.Client) -> None:
    sim.add_room(
        "room-d@contoso.com",
        "Room D",
        time_zone="Pacific Standard Time",
        working_hours={"startTime": "07:00:00.0000000", "daysOfWeek": ["monday"]},
    )

    settings = graph.get("/users/room-d@contoso.com/mailboxSettings").json()

    assert settings["timeZone"] == "Pacific Standard Time"
    assert settings["workingHours"]["daysOfWeek"] == ["monday"]
    assert settings["workingHours"]["startTime"] == "07:00:00.0000000"
    assert settings["workingHours"]["timeZone"] == {"name": "Pacific Standard Time"}
    assert settings["userPurpose"] == "room"


def test_unknown_paths_get_a_graph_error(graph: httpx.Client) -> None:
    response = graph.get("/groups")

    assert response.status_code == 400 and response.json()["error"]["code"] == "BadRequest"
