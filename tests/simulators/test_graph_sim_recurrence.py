"""Recurring meetings: series masters, occurrences expanded in the meeting's zone (DST), per-occurrence iCalUIds,
exceptions, cancelled occurrences, room copies, notifications, calendarView/instances/delta, and the real SDK."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.event_type import EventType
from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import CalendarViewRequestBuilder
from msgraph.graph_service_client import GraphServiceClient

from simulators.graph import GraphSimulator
from simulators.graph.recurrence import Recurrence
from tests.simulators.common import ALICE, BOB, HOUR, ROOM_A, ROOM_B, with_client
from tests.simulators.graph_helpers import WebhookReceiver

PARIS = ZoneInfo("Europe/Paris")
FIRST = datetime(2031, 3, 17, 9, 0, tzinfo=PARIS)  # a Monday; DST starts 2031-03-30 and ends 2031-10-26
WEEK = timedelta(weeks=1)
YEAR_2031 = {"startDateTime": "2031-01-01T00:00:00Z", "endDateTime": "2032-01-01T00:00:00Z"}
MARCH_APRIL = {"startDateTime": "2031-03-01T00:00:00Z", "endDateTime": "2031-04-15T00:00:00Z"}


def weekly(count: int, start: date | None = None, day: str = "monday") -> dict[str, Any]:
    return {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [day]},
        "range": {"type": "numbered", "startDate": (start or FIRST.date()).isoformat(), "numberOfOccurrences": count},
    }


@pytest.fixture
def sim(trust_ca_env: None, sim: GraphSimulator) -> GraphSimulator:
    return sim  # the CA in the environment: for the msgraph-sdk test


def series(sim: GraphSimulator, count: int = 6, rooms: tuple[str, ...] = (ROOM_A,)) -> dict[str, Any]:
    return sim.create_meeting(
        ALICE, "Weekly sync", FIRST, FIRST + HOUR, rooms=rooms, time_zone="Europe/Paris", recurrence=weekly(count)
    )


def subscribe(sim: GraphSimulator, graph: httpx.Client, receiver: WebhookReceiver, room: str = ROOM_A) -> None:
    response = graph.post(
        "/subscriptions",
        json={
            "changeType": "created,updated,deleted",
            "notificationUrl": receiver.notification_url,
            "resource": f"/users/{sim.user_id(room)}/events",
            "expirationDateTime": (sim.now() + timedelta(days=2)).isoformat(),
            "clientState": "state",
        },
    )
    assert response.status_code == 201, response.text


def view(graph: httpx.Client, user: str, window: dict[str, str] = YEAR_2031, **headers: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url: str | None = f"/users/{user}/calendarView"
    params: dict[str, str] | None = window
    while url is not None:
        body = graph.get(url, params=params, headers=headers).raise_for_status().json()
        items += body["value"]
        url, params = body.get("@odata.nextLink"), None
    return items


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)


def sync(graph: httpx.Client, url: str, params: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        body = graph.get(url, params=params).raise_for_status().json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url, params = body["@odata.nextLink"], None


# -- expansion ---------------------------------------------------------------------------------------------------


def test_a_weekly_series_keeps_nine_oclock_in_paris_across_both_dst_changes(
    sim: GraphSimulator, graph: httpx.Client
) -> None:
    master = series(sim, count=35)  # 2031-03-17 .. 2031-11-10

    occurrences = view(graph, ROOM_A)

    assert master["type"] == "seriesMaster" and master["recurrence"]["pattern"]["daysOfWeek"] == ["monday"]
    assert len(occurrences) == 35
    assert {o["type"] for o in occurrences} == {"occurrence"}
    starts = [utc(o["start"]["dateTime"]) for o in occurrences]
    assert all(s.astimezone(PARIS).hour == 9 and s.astimezone(PARIS).weekday() == 0 for s in starts)
    assert all(utc(o["end"]["dateTime"]) - s == HOUR for o, s in zip(occurrences, starts, strict=True))
    by_day = {s.date(): s.hour for s in starts}
    assert by_day[date(2031, 3, 24)] == 8  # winter: UTC+1
    assert by_day[date(2031, 3, 31)] == 7  # summer: UTC+2
    assert by_day[date(2031, 10, 20)] == 7
    assert by_day[date(2031, 10, 27)] == 8  # winter again
    # Asked in Paris time, every occurrence reads 09:00.
    local = view(graph, ROOM_A, Prefer='outlook.timezone="Europe/Paris"')
    assert {o["start"]["dateTime"][11:16] for o in local} == {"09:00"}
    assert {o["start"]["timeZone"] for o in local} == {"Europe/Paris"}


def test_calendar_view_and_instances_expand_a_series_created_over_http(
    sim: GraphSimulator, graph: httpx.Client
) -> None:
    payload = {
        "subject": "Standup",
        "start": {"dateTime": "2031-03-17T09:00:00", "timeZone": "Romance Standard Time"},
        "end": {"dateTime": "2031-03-17T09:30:00", "timeZone": "Romance Standard Time"},
        "attendees": [{"type": "resource", "emailAddress": {"address": ROOM_A}}],
        "recurrence": {
            "pattern": {"type": "daily", "interval": 2},
            "range": {"type": "endDate", "startDate": "2031-03-17", "endDate": "2031-03-25"},
        },
    }
    single = sim.create_meeting(ALICE, "One-off", FIRST + 3 * HOUR, FIRST + 4 * HOUR, rooms=[ROOM_A])
    created = graph.post(f"/users/{ALICE}/events", json=payload)
    assert created.status_code == 201, created.text
    master = created.json()

    organiser_view = view(graph, ALICE, MARCH_APRIL)
    instances = graph.get(f"/users/{ALICE}/events/{master['id']}/instances", params=MARCH_APRIL).json()["value"]

    assert master["type"] == "seriesMaster" and master["recurrence"]["range"]["endDate"] == "2031-03-25"
    days = [o["start"]["dateTime"][:10] for o in instances]
    assert days == ["2031-03-17", "2031-03-19", "2031-03-21", "2031-03-23", "2031-03-25"]
    assert {o["seriesMasterId"] for o in instances} == {master["id"]}
    assert all(o["originalStart"] == o["start"]["dateTime"][:19] + "Z" for o in instances)
    assert [o["id"] for o in organiser_view if o["type"] == "occurrence"] == [o["id"] for o in instances]
    assert [o["id"] for o in organiser_view if o["type"] == "singleInstance"] == [single["id"]]
    assert master["id"] not in {o["id"] for o in organiser_view}
    # /events lists the master (not the occurrences); an occurrence can be read by its id, twice the same.
    types = {e["type"] for e in graph.get(f"/users/{ALICE}/events").json()["value"]}
    assert types == {"seriesMaster", "singleInstance"}
    read = graph.get(f"/users/{ALICE}/events/{instances[2]['id']}").json()
    assert (read["id"], read["type"], read["iCalUId"]) == (instances[2]["id"], "occurrence", instances[2]["iCalUId"])
    again = graph.get(f"/users/{ALICE}/events/{master['id']}/instances", params=MARCH_APRIL).json()["value"]
    assert [o["id"] for o in again] == [o["id"] for o in instances]
    # The room's copy is a series master too, with the same pattern.
    [room_master] = [e for e in sim.events(ROOM_A) if e["type"] == "seriesMaster"]
    assert room_master["recurrence"] == master["recurrence"] and room_master["iCalUId"] == master["iCalUId"]
    assert len([o for o in view(graph, ROOM_A, MARCH_APRIL) if o["type"] == "occurrence"]) == 5


def test_each_occurrence_has_its_own_stable_ical_uid_shared_with_the_room_copies(
    sim: GraphSimulator, graph: httpx.Client
) -> None:
    master = series(sim, count=4, rooms=(ROOM_A, ROOM_B))

    mine = sim.occurrences(ALICE, master["id"], FIRST - WEEK, FIRST + 5 * WEEK)
    room_a, room_b = view(graph, ROOM_A), view(graph, ROOM_B)

    uids = [o["iCalUId"] for o in mine]
    assert len(set(uids)) == 4 and master["iCalUId"] not in uids
    assert {o["uid"] for o in mine} == {master["iCalUId"]}  # uid: the series'
    assert [o["iCalUId"] for o in room_a] == uids == [o["iCalUId"] for o in room_b]
    assert [o["originalStart"] for o in room_a] == [o["originalStart"] for o in mine]
    # Each calendar has its own ids; reading again gives the same ones.
    assert not {o["id"] for o in room_a} & {o["id"] for o in mine}
    assert [o["id"] for o in view(graph, ROOM_A)] == [o["id"] for o in room_a]
    [room_master] = sim.events(ROOM_A)
    assert {o["seriesMasterId"] for o in room_a} == {room_master["id"]}
    assert room_master["iCalUId"] == master["iCalUId"] and room_master["type"] == "seriesMaster"


# -- exceptions and cancelled occurrences ---------------------------------------------------------------------------


def test_an_exception_moves_only_one_occurrence_on_the_room_copy_too_and_notifies_it(
    sim: GraphSimulator, graph: httpx.Client, receiver: WebhookReceiver
) -> None:
    master = series(sim, count=4)
    subscribe(sim, graph, receiver)
    before = view(graph, ROOM_A)
    third = FIRST + 2 * WEEK

    exception = sim.update_occurrence(
        ALICE, master["id"], third.date(), start=third + 5 * HOUR, end=third + 6 * HOUR, time_zone="Europe/Paris"
    )

    after = view(graph, ROOM_A)
    assert exception["type"] == "exception" and exception["seriesMasterId"] == master["id"]
    assert utc(exception["start"]["dateTime"]) == (third + 5 * HOUR).astimezone(UTC)
    assert exception["attendees"][0]["status"]["response"] == "accepted"
    assert [o["type"] for o in after] == ["occurrence", "occurrence", "exception", "occurrence"]
    assert [o["id"] for o in after] == [o["id"] for o in before]  # same ids: keyed by the original start
    assert [o["iCalUId"] for o in after] == [o["iCalUId"] for o in before]
    assert after[2]["originalStart"] == before[2]["originalStart"]
    assert utc(after[2]["start"]["dateTime"]).astimezone(PARIS).hour == 14
    assert [o["start"] for o in after[:2] + after[3:]] == [o["start"] for o in before[:2] + before[3:]]
    assert sim.wait_idle(60)
    notified = [(n["changeType"], n["resourceData"]["id"]) for n in receiver.wait_for(1)]
    assert notified == [("updated", after[2]["id"])]


def test_an_exception_into_a_busy_slot_is_declined_by_that_room(sim: GraphSimulator, graph: httpx.Client) -> None:
    master = series(sim, count=3)
    third = FIRST + 2 * WEEK
    sim.create_meeting(BOB, "Taken", third + 5 * HOUR, third + 6 * HOUR, rooms=[ROOM_A])

    exception = sim.update_occurrence(ALICE, master["id"], third, start=third + 5 * HOUR, end=third + 6 * HOUR)

    assert exception["attendees"][0]["status"]["response"] == "declined"
    room_series = [o for o in view(graph, ROOM_A) if o["seriesMasterId"]]
    assert len(room_series) == 2 and all(o["type"] == "occurrence" for o in room_series)


def test_cancelling_one_occurrence_removes_only_it_and_notifies_deleted(
    sim: GraphSimulator, graph: httpx.Client, receiver: WebhookReceiver
) -> None:
    master = series(sim, count=4)
    subscribe(sim, graph, receiver)
    before = view(graph, ROOM_A)
    second = FIRST + WEEK

    sim.cancel_occurrence(ALICE, master["id"], second)

    after = view(graph, ROOM_A)
    assert [o["id"] for o in after] == [before[0]["id"], before[2]["id"], before[3]["id"]]
    assert len(sim.occurrences(ALICE, master["id"], FIRST - WEEK, FIRST + 5 * WEEK)) == 3
    assert sim.event(ALICE, master["id"])["cancelledOccurrences"] == [f"OID.{master['id']}.{second.date()}"]
    assert graph.get(f"/users/{ROOM_A}/events/{before[1]['id']}").status_code == 404
    [room_master] = sim.events(ROOM_A)
    assert room_master["isCancelled"] is False  # the series lives on
    assert sim.wait_idle(60)
    notified = [(n["changeType"], n["resourceData"]["id"]) for n in receiver.wait_for(1)]
    assert notified == [("deleted", before[1]["id"])]


def test_occurrence_ids_take_patch_cancel_and_delete_over_http(sim: GraphSimulator, graph: httpx.Client) -> None:
    master = series(sim, count=4)
    first, second, third, fourth = sim.occurrences(ALICE, master["id"], FIRST - WEEK, FIRST + 5 * WEEK)
    moved = {
        "start": {"dateTime": "2031-03-17T15:00:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2031-03-17T16:00:00", "timeZone": "Europe/Paris"},
        "subject": "Moved",
    }

    patched = graph.patch(f"/users/{ALICE}/events/{first['id']}", json=moved)
    room_occurrence = view(graph, ROOM_A)[1]
    refused = graph.post(f"/users/{ROOM_A}/events/{room_occurrence['id']}/cancel", json={})
    cancelled = graph.post(f"/users/{ALICE}/events/{second['id']}/cancel", json={"comment": "off"})
    deleted = graph.delete(f"/users/{ALICE}/events/{third['id']}")

    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["type"], body["subject"], body["id"]) == ("exception", "Moved", first["id"])
    assert refused.status_code == 400  # organisers only
    assert (cancelled.status_code, deleted.status_code) == (202, 204)
    assert [o["id"] for o in sim.occurrences(ALICE, master["id"], FIRST - WEEK, FIRST + 5 * WEEK)] == [
        first["id"],
        fourth["id"],
    ]
    room = view(graph, ROOM_A)
    assert [(o["type"], o["start"]["dateTime"][:16]) for o in room] == [
        ("exception", "2031-03-17T14:00"),
        ("occurrence", "2031-04-07T07:00"),
    ]
    assert graph.patch(f"/users/{ALICE}/events/{second['id']}", json=moved).status_code == 404
    assert graph.patch(f"/users/{ALICE}/events/{fourth['id']}", json={"recurrence": None}).status_code == 400


def test_cancelling_the_series_marks_the_room_copy_cancelled(sim: GraphSimulator, graph: httpx.Client) -> None:
    master = series(sim, count=3)

    sim.cancel_event(ALICE, master["id"])

    [room_master] = sim.events(ROOM_A)
    assert room_master["isCancelled"] is True and room_master["type"] == "seriesMaster"
    assert {o["isCancelled"] for o in view(graph, ROOM_A)} == {True}
    assert sim.events(ALICE) == []


def test_a_room_declines_a_series_when_one_occurrence_conflicts(sim: GraphSimulator) -> None:
    sim.create_meeting(BOB, "Taken", FIRST + 3 * WEEK, FIRST + 3 * WEEK + HOUR, rooms=[ROOM_A])

    master = series(sim, count=6, rooms=(ROOM_A, ROOM_B))

    assert {a["emailAddress"]["address"]: a["status"]["response"] for a in master["attendees"]} == {
        ROOM_A: "declined",
        ROOM_B: "accepted",
    }
    assert [e["type"] for e in sim.events(ROOM_A)] == ["singleInstance"]
    # A single meeting on an occurrence of a series the room holds is declined in turn.
    clash = sim.create_meeting(BOB, "Clash", FIRST + 2 * WEEK, FIRST + 2 * WEEK + HOUR, rooms=[ROOM_B])
    assert clash["attendees"][0]["status"]["response"] == "declined"


def test_master_notifications_name_the_master(
    sim: GraphSimulator, graph: httpx.Client, receiver: WebhookReceiver
) -> None:
    subscribe(sim, graph, receiver)

    master = series(sim, count=3)
    sim.update_event(ALICE, master["id"], subject="Renamed")

    assert sim.wait_idle(60)
    [room_master] = sim.events(ROOM_A)
    notified = [(n["changeType"], n["resourceData"]["id"]) for n in receiver.wait_for(2)]
    assert notified == [("created", room_master["id"]), ("updated", room_master["id"])]


# -- delta -------------------------------------------------------------------------------------------------------


def test_delta_returns_occurrences_and_removes_a_cancelled_one(sim: GraphSimulator, graph: httpx.Client) -> None:
    master = series(sim, count=4)
    single = sim.create_meeting(BOB, "One-off", FIRST + 4 * HOUR, FIRST + 5 * HOUR, rooms=[ROOM_A])
    [room_master] = [e for e in sim.events(ROOM_A) if e["type"] == "seriesMaster"]

    initial, delta_link = sync(graph, f"/users/{ROOM_A}/calendarView/delta", MARCH_APRIL)

    assert sorted(o["type"] for o in initial) == ["occurrence"] * 4 + ["singleInstance"]
    assert room_master["id"] not in {o["id"] for o in initial}
    by_start = {o["originalStart"]: o for o in initial if o["type"] == "occurrence"}
    second, third = (FIRST + WEEK).astimezone(UTC), (FIRST + 2 * WEEK).astimezone(UTC)
    second_id = by_start[second.strftime("%Y-%m-%dT%H:%M:%SZ")]["id"]
    third_id = by_start[third.strftime("%Y-%m-%dT%H:%M:%SZ")]["id"]

    sim.cancel_occurrence(ALICE, master["id"], second)
    sim.update_occurrence(ALICE, master["id"], third, start=third + 2 * HOUR, end=third + 3 * HOUR)
    changes, delta_link = sync(graph, delta_link)

    assert {o["id"]: ("@removed" in o, o.get("type")) for o in changes} == {
        second_id: (True, None),
        third_id: (False, "exception"),
    }
    assert room_master["id"] not in {o["id"] for o in changes}
    assert single["id"] not in {o["id"] for o in changes}
    assert sync(graph, delta_link)[0] == []

    # A change to the whole series comes back as its (remaining) occurrences, never the master.
    sim.update_event(ALICE, master["id"], subject="Renamed")
    changes, _ = sync(graph, delta_link)
    assert len(changes) == 3 and {o["type"] for o in changes} == {"occurrence", "exception"}


def test_moving_the_whole_series_keeps_occurrence_ids_and_ical_uids(sim: GraphSimulator, graph: httpx.Client) -> None:
    master = series(sim, count=3)
    before, delta_link = sync(graph, f"/users/{ROOM_A}/calendarView/delta", MARCH_APRIL)

    sim.update_event(ALICE, master["id"], start=FIRST + 2 * HOUR, end=FIRST + 3 * HOUR, time_zone="Europe/Paris")
    changes, _ = sync(graph, delta_link)

    assert {(o["id"], o["iCalUId"]) for o in changes} == {(o["id"], o["iCalUId"]) for o in before}
    assert len(changes) == 3
    assert {utc(o["start"]["dateTime"]).astimezone(PARIS).hour for o in changes} == {11}
    assert all("@removed" not in o for o in changes)


def test_delta_removes_the_occurrences_of_a_series_the_room_no_longer_holds(
    sim: GraphSimulator, graph: httpx.Client
) -> None:
    master = series(sim, count=3)
    initial, delta_link = sync(graph, f"/users/{ROOM_A}/calendarView/delta", MARCH_APRIL)

    sim.update_event(ALICE, master["id"], rooms=[ROOM_B])  # room A is no longer invited: its copy is cancelled
    cancelled, delta_link = sync(graph, delta_link)
    sim.delete_event(ROOM_A, sim.events(ROOM_A)[0]["id"])
    removed, _ = sync(graph, delta_link)

    assert {o["id"] for o in cancelled} == {o["id"] for o in initial}
    assert {o["isCancelled"] for o in cancelled} == {True}
    assert {o["id"] for o in removed} == {o["id"] for o in initial}
    assert all("@removed" in o for o in removed)


# -- patterns ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "rng", "expected"),
    [
        (
            {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
            {"type": "numbered", "startDate": "2031-01-01", "numberOfOccurrences": 4},
            ["2031-01-31", "2031-02-28", "2031-03-31", "2031-04-30"],
        ),
        (
            {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            {"type": "endDate", "startDate": "2031-01-01", "endDate": "2031-03-31"},
            ["2031-01-31", "2031-02-28", "2031-03-28"],
        ),
        (
            {"type": "weekly", "interval": 2, "daysOfWeek": ["tuesday", "thursday"], "firstDayOfWeek": "monday"},
            {"type": "numbered", "startDate": "2031-01-01", "numberOfOccurrences": 4},
            ["2031-01-02", "2031-01-14", "2031-01-16", "2031-01-28"],
        ),
        (
            {"type": "daily", "interval": 3},
            {"type": "noEnd", "startDate": "2031-01-30"},
            ["2031-01-30", "2031-02-02", "2031-02-05", "2031-02-08"],
        ),
    ],
)
def test_patterns(pattern: dict[str, Any], rng: dict[str, Any], expected: list[str]) -> None:
    start = datetime(2031, 1, 1, 9, tzinfo=UTC)
    recurrence = Recurrence.parse({"pattern": pattern, "range": rng}, start, "UTC")

    dates = []
    for day in recurrence.dates():
        dates.append(day.isoformat())
        if len(dates) == 4:
            break

    assert dates == expected
    assert Recurrence.parse(recurrence.json(), start, "UTC") == recurrence


def test_invalid_recurrences_are_refused(graph: httpx.Client) -> None:
    base = {
        "subject": "x",
        "start": {"dateTime": "2031-03-17T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2031-03-17T10:00:00", "timeZone": "UTC"},
    }
    for recurrence in (
        {"pattern": {"type": "hourly"}, "range": {"type": "noEnd", "startDate": "2031-03-17"}},
        {"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2031-03-17"}},
        {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2031-03-17"}},
    ):
        response = graph.post(f"/users/{ALICE}/events", json={**base, "recurrence": recurrence})
        assert response.status_code == 400, recurrence


# -- the real SDK ------------------------------------------------------------------------------------------------


def test_the_sdk_reads_occurrences_from_calendar_view(sim: GraphSimulator) -> None:
    master = series(sim, count=3)
    third = FIRST + 2 * WEEK
    sim.update_occurrence(ALICE, master["id"], third, start=third + HOUR, end=third + 2 * HOUR)
    room_id = sim.user_id(ROOM_A)
    expected = [o["iCalUId"] for o in sim.calendar_view(ROOM_A, FIRST - WEEK, FIRST + 4 * WEEK)]

    async def use(client: GraphServiceClient) -> None:
        query = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
            start_date_time="2031-03-01T00:00:00Z", end_date_time="2031-04-30T00:00:00Z"
        )
        page = await client.users.by_user_id(room_id).calendar_view.get(RequestConfiguration(query_parameters=query))
        assert page is not None and page.value is not None
        events = page.value
        assert [e.type for e in events] == [EventType.Occurrence, EventType.Occurrence, EventType.Exception]
        assert [e.i_cal_u_id for e in events] == expected
        [room_master] = sim.events(ROOM_A)
        assert {e.series_master_id for e in events} == {room_master["id"]}
        assert events[0].original_start == FIRST.astimezone(UTC)
        assert events[2].original_start == third.astimezone(UTC)
        assert events[2].start is not None and events[2].start.date_time == "2031-03-31T08:00:00.0000000"
        assert (events[0].additional_data or {}).get("uid") == master["iCalUId"]

        series_master = await client.users.by_user_id(room_id).events.by_event_id(room_master["id"]).get()
        assert series_master is not None and series_master.type == EventType.SeriesMaster
        assert series_master.recurrence is not None and series_master.recurrence.range is not None
        assert series_master.recurrence.range.number_of_occurrences == 3

    with_client(sim, use)
