"""Events and Exchange's room behaviour: copies on room calendars, accept/decline, updates, cancellation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from simulators.graph import GraphSimulator
from tests.simulators.common import ALICE, BOB, HOUR, NINE, ROOM_A, ROOM_B, ROOM_C


def meeting_payload(
    *rooms: str, start: str = "2031-03-10T10:00:00", zone: str = "Romance Standard Time", **extra: Any
) -> dict[str, Any]:
    end = (datetime.fromisoformat(start) + HOUR).isoformat()
    return {
        "subject": "Budget review",
        "body": {"contentType": "html", "content": "<p>Agenda: numbers</p>"},
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        "attendees": [{"type": "resource", "emailAddress": {"address": room}} for room in rooms],
        **extra,
    }


def statuses(event: dict[str, Any]) -> dict[str, str]:
    return {a["emailAddress"]["address"]: a["status"]["response"] for a in event["attendees"]}


def live(sim: GraphSimulator, room: str) -> list[dict[str, Any]]:
    return [e for e in sim.events(room) if not e["isCancelled"]]


# -- creation and the rooms' booking assistant -------------------------------------------------------------------


def test_a_meeting_puts_a_copy_on_each_room_calendar(sim: GraphSimulator, graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=meeting_payload(ROOM_A, ROOM_B))

    assert created.status_code == 201
    meeting = created.json()
    assert statuses(meeting) == {ROOM_A: "accepted", ROOM_B: "accepted"}
    assert (meeting["isOrganizer"], meeting["responseStatus"]["response"]) == (True, "organizer")
    for room in (ROOM_A, ROOM_B):
        [room_copy] = sim.events(room)
        assert room_copy["id"] != meeting["id"]
        assert room_copy["iCalUId"] == meeting["iCalUId"]
        assert room_copy["subject"] == "Alice Martin"  # AddOrganizerToSubject
        assert room_copy["body"]["content"] == ""  # DeleteComments
        assert (room_copy["isOrganizer"], room_copy["responseStatus"]["response"]) == (False, "accepted")
        assert room_copy["organizer"]["emailAddress"]["address"] == ALICE
        assert room_copy["start"] == meeting["start"]


def test_a_busy_room_declines_and_keeps_no_copy(sim: GraphSimulator, graph: httpx.Client) -> None:
    sim.create_meeting(BOB, "Earlier", NINE, NINE + 2 * HOUR, rooms=[ROOM_A])

    meeting = graph.post(f"/users/{ALICE}/events", json=meeting_payload(ROOM_A, ROOM_B)).json()

    assert statuses(meeting) == {ROOM_A: "declined", ROOM_B: "accepted"}
    assert [e["subject"] for e in sim.events(ROOM_A)] == ["Bob Durand"]
    assert [e["iCalUId"] for e in sim.events(ROOM_B)] == [meeting["iCalUId"]]


def test_a_meeting_that_only_touches_another_one_is_accepted(sim: GraphSimulator) -> None:
    sim.create_meeting(BOB, "Before", NINE - HOUR, NINE, rooms=[ROOM_A])

    meeting = sim.create_meeting(ALICE, "After", NINE, NINE + HOUR, rooms=[ROOM_A])

    assert statuses(meeting) == {ROOM_A: "accepted"}


def test_writing_straight_into_a_room_calendar_allows_double_booking(sim: GraphSimulator, graph: httpx.Client) -> None:
    sim.create_meeting(BOB, "Existing", NINE, NINE + HOUR, rooms=[ROOM_A])

    direct = graph.post(f"/users/{ROOM_A}/events", json=meeting_payload(start="2031-03-10T09:30:00", zone="UTC"))

    assert direct.status_code == 201 and direct.json()["isOrganizer"] is True
    sim.create_event(ROOM_A, meeting_payload(start="2031-03-10T09:45:00", zone="UTC"))  # same, from the Python API
    assert len(live(sim, ROOM_A)) == 3


def test_times_are_returned_in_utc_or_in_the_preferred_zone(sim: GraphSimulator, graph: httpx.Client) -> None:
    # 10:00 Paris is 09:00 UTC in winter (CET) and 08:00 UTC in summer (CEST).
    winter = graph.post(f"/users/{ALICE}/events", json=meeting_payload(start="2031-03-10T10:00:00")).json()
    summer = graph.post(
        f"/users/{ALICE}/events", json=meeting_payload(start="2031-04-07T10:00:00", zone="Europe/Paris")
    ).json()

    assert winter["start"] == {"dateTime": "2031-03-10T09:00:00.0000000", "timeZone": "UTC"}
    assert summer["start"] == {"dateTime": "2031-04-07T08:00:00.0000000", "timeZone": "UTC"}
    assert winter["originalStartTimeZone"] == "Romance Standard Time"
    local = graph.get(
        f"/users/{ALICE}/events/{summer['id']}", headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'}
    )
    assert local.json()["start"] == {"dateTime": "2031-04-07T01:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert "outlook.timezone" in local.headers["Preference-Applied"]


def test_an_unknown_time_zone_is_refused(graph: httpx.Client) -> None:
    response = graph.post(f"/users/{ALICE}/events", json=meeting_payload(zone="Mars Standard Time"))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "TimeZoneNotSupportedException"


def test_an_event_has_the_graph_fields(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A], sensitivity="private")

    read = graph.get(
        f"/users/{sim.user_id(ALICE)}/events/{meeting['id']}", headers={"Prefer": 'IdType="ImmutableId"'}
    ).json()

    for key in (
        "id",
        "iCalUId",
        "subject",
        "body",
        "bodyPreview",
        "start",
        "end",
        "organizer",
        "attendees",
        "isCancelled",
        "isOrganizer",
        "changeKey",
        "lastModifiedDateTime",
        "createdDateTime",
        "type",
        "seriesMasterId",
        "sensitivity",
        "showAs",
        "location",
        "locations",
        "responseStatus",
    ):
        assert key in read, key
    assert (read["type"], read["seriesMasterId"], read["sensitivity"]) == ("singleInstance", None, "private")
    assert read["locations"][0]["locationEmailAddress"] == ROOM_A
    assert "transactionId" not in read  # returned only when set
    assert read["attendees"][0] == {
        "type": "resource",
        "status": {"response": "accepted", "time": read["attendees"][0]["status"]["time"]},
        "emailAddress": {"name": "Room A", "address": ROOM_A},
    }


def test_an_unknown_event_is_404(graph: httpx.Client) -> None:
    response = graph.get(f"/users/{ALICE}/events/AAMkADnothing=")

    assert response.status_code == 404 and response.json()["error"]["code"] == "ErrorItemNotFound"


def test_a_repeated_transaction_id_returns_the_first_event(sim: GraphSimulator, graph: httpx.Client) -> None:
    payload = meeting_payload(ROOM_A, transactionId="loan-42-v1")

    first = graph.post(f"/users/{ALICE}/events", json=payload).json()
    second = graph.post(f"/users/{ALICE}/events", json=payload).json()

    assert second["id"] == first["id"] and first["transactionId"] == "loan-42-v1"
    assert len(sim.events(ALICE)) == 1 and len(sim.events(ROOM_A)) == 1


def test_events_can_be_found_by_ical_uid(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    sim.create_meeting(ALICE, "Other", NINE + HOUR, NINE + 2 * HOUR, rooms=[ROOM_A])

    found = graph.get(f"/users/{ROOM_A}/events", params={"$filter": f"iCalUId eq '{meeting['iCalUId']}'"}).json()

    assert [e["iCalUId"] for e in found["value"]] == [meeting["iCalUId"]]


def test_event_lists_are_paged(sim: GraphSimulator, graph: httpx.Client) -> None:
    for hour in range(3):
        sim.create_meeting(ALICE, f"M{hour}", NINE + hour * HOUR, NINE + (hour + 1) * HOUR)

    first = graph.get(f"/users/{ALICE}/events", params={"$top": 2}).json()
    second = graph.get(first["@odata.nextLink"]).json()

    assert [len(first["value"]), len(second["value"])] == [2, 1]
    assert "@odata.nextLink" not in second


# -- updates -----------------------------------------------------------------------------------------------------


def test_moving_a_meeting_moves_the_room_copies_and_changes_the_change_key(
    sim: GraphSimulator, graph: httpx.Client
) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    [before] = sim.events(ROOM_A)

    moved = graph.patch(
        f"/users/{ALICE}/events/{meeting['id']}",
        json={
            "start": {"dateTime": "2031-03-10T14:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2031-03-10T15:00:00", "timeZone": "UTC"},
        },
    ).json()

    [after] = sim.events(ROOM_A)
    assert moved["id"] == meeting["id"] and moved["changeKey"] != meeting["changeKey"]
    assert after["id"] == before["id"] and after["changeKey"] != before["changeKey"]
    assert after["start"]["dateTime"] == "2031-03-10T14:00:00.0000000"
    assert statuses(moved) == {ROOM_A: "accepted"}


def test_moving_onto_a_busy_slot_is_declined_and_the_copy_removed(sim: GraphSimulator) -> None:
    sim.create_meeting(BOB, "Afternoon", NINE + 5 * HOUR, NINE + 6 * HOUR, rooms=[ROOM_A])
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A, ROOM_B])

    moved = sim.update_event(ALICE, meeting["id"], start=NINE + 5 * HOUR, end=NINE + 6 * HOUR)

    assert statuses(moved) == {ROOM_A: "declined", ROOM_B: "accepted"}
    assert [e["subject"] for e in sim.events(ROOM_A)] == ["Bob Durand"]


def test_changing_rooms_adds_and_cancels_copies(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A, ROOM_B])
    writes_before = sim.stats.http_event_writes

    updated = sim.update_event(ALICE, meeting["id"], rooms=[ROOM_B, ROOM_C])

    assert statuses(updated) == {ROOM_B: "accepted", ROOM_C: "accepted"}
    [room_a_copy] = sim.events(ROOM_A)
    assert room_a_copy["isCancelled"] is True and room_a_copy["subject"].startswith("Canceled: ")
    assert len(live(sim, ROOM_B)) == len(live(sim, ROOM_C)) == 1
    assert sim.stats.http_event_writes == writes_before  # Python API writes are the users', not the bridge's


def test_a_subject_change_keeps_the_room_copy_subject(sim: GraphSimulator) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])

    sim.update_event(ALICE, meeting["id"], subject="Renamed")

    assert sim.event(ALICE, meeting["id"])["subject"] == "Renamed"
    assert [e["subject"] for e in sim.events(ROOM_A)] == ["Alice Martin"]


def test_an_invalid_patch_changes_nothing(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])

    response = graph.patch(
        f"/users/{ALICE}/events/{meeting['id']}", json={"subject": "New", "sensitivity": "top-secret"}
    )

    assert response.status_code == 400
    assert sim.event(ALICE, meeting["id"])["subject"] == "Weekly"


# -- cancellation and deletion -----------------------------------------------------------------------------------


def test_cancelling_marks_room_copies_cancelled_and_removes_the_organiser_copy(
    sim: GraphSimulator, graph: httpx.Client
) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A, ROOM_B])

    response = graph.post(f"/users/{ALICE}/events/{meeting['id']}/cancel", json={"comment": "Sorry"})

    assert response.status_code == 202
    assert sim.events(ALICE) == []
    for room in (ROOM_A, ROOM_B):
        [room_copy] = sim.events(room)
        assert room_copy["isCancelled"] is True and room_copy["iCalUId"] == meeting["iCalUId"]


def test_only_the_organiser_can_cancel(sim: GraphSimulator, graph: httpx.Client) -> None:
    sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    [room_copy] = sim.events(ROOM_A)

    response = graph.post(f"/users/{ROOM_A}/events/{room_copy['id']}/cancel", json={})

    assert response.status_code == 400
    assert live(sim, ROOM_A) != []


def test_deleting_the_organiser_copy_cancels_the_meeting(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])

    assert graph.delete(f"/users/{ALICE}/events/{meeting['id']}").status_code == 204
    assert graph.get(f"/users/{ALICE}/events/{meeting['id']}").status_code == 404
    assert [e["isCancelled"] for e in sim.events(ROOM_A)] == [True]


def test_a_cancelled_copy_frees_the_room(sim: GraphSimulator) -> None:
    first = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    sim.cancel_event(ALICE, first["id"])

    second = sim.create_meeting(BOB, "Takes the slot", NINE, NINE + HOUR, rooms=[ROOM_A])

    assert statuses(second) == {ROOM_A: "accepted"}


def test_deleting_a_room_copy_removes_only_it(sim: GraphSimulator, graph: httpx.Client) -> None:
    meeting = sim.create_meeting(ALICE, "Weekly", NINE, NINE + HOUR, rooms=[ROOM_A])
    [room_copy] = sim.events(ROOM_A)

    assert graph.delete(f"/users/{ROOM_A}/events/{room_copy['id']}").status_code == 204
    assert sim.events(ROOM_A) == [] and sim.event(ALICE, meeting["id"])["isCancelled"] is False


def test_http_event_writes_are_counted_per_mailbox(sim: GraphSimulator, graph: httpx.Client) -> None:
    event = graph.post(f"/users/{ROOM_A}/events", json=meeting_payload()).json()
    graph.patch(f"/users/{ROOM_A}/events/{event['id']}", json={"subject": "x"})
    graph.get(f"/users/{ROOM_A}/events/{event['id']}")
    graph.delete(f"/users/{ROOM_A}/events/{event['id']}")

    room_id = sim.user_id(ROOM_A)
    assert sim.stats.event_writes[room_id] == 3 and sim.stats.event_reads[room_id] == 1
    assert sim.stats.requests[("POST", "events")] == 1
    assert sim.stats.requests[("PATCH", "event")] == sim.stats.requests[("DELETE", "event")] == 1
    sim.stats.reset()
    assert sim.stats.http_event_writes == 0 and not sim.stats.requests
