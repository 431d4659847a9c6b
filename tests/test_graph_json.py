"""The hot Graph reads parse the answer's JSON straight into `OutlookEvent` (`event_from_json`) instead of building
kiota models: for every kind of event the simulated tenant produces, and for sparse answers, the values are exactly
those `to_outlook_event` gives for the SDK's model of the same JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph.generated.models.event import Event as SdkEvent

from app.adapters.graph.gateway import event_from_json, to_outlook_event
from simulators.graph import GraphSimulator

ROOM = "salle-jupiter@contoso.com"
START = datetime(2030, 3, 29, 9, 0, tzinfo=UTC)  # the night Paris moves to summer time is two days later


def _sdk(body: dict[str, Any]) -> Any:
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(body).encode())
    return node.get_object_value(SdkEvent)


def _tenant_events() -> list[dict[str, Any]]:
    graph = GraphSimulator(domain="contoso.com")
    graph.add_user("alice@contoso.com", "Alice Martin", time_zone="Romance Standard Time")
    graph.add_user("bob@contoso.com", "Bob Durand")
    graph.add_room(email=ROOM, display_name="Salle Jupiter", time_zone="Romance Standard Time")
    graph.add_room(email="salle-saturne@contoso.com", display_name="Salle Saturne")
    one = graph.create_meeting("alice@contoso.com", "Revue", START, START + timedelta(hours=1), rooms=[ROOM],
                               attendees=["bob@contoso.com"], time_zone="Romance Standard Time",
                               transaction_id="tx-1")
    graph.create_meeting("alice@contoso.com", "Privé", START + timedelta(days=1), START + timedelta(days=1, hours=2),
                         rooms=[ROOM, "salle-saturne@contoso.com"], sensitivity="private")
    graph.create_meeting("bob@contoso.com", "Journée", datetime(2030, 4, 2, tzinfo=UTC),
                         datetime(2030, 4, 3, tzinfo=UTC), rooms=[ROOM], is_all_day=True)
    series = graph.create_meeting(
        "alice@contoso.com", "Hebdo", START, START + timedelta(minutes=30), rooms=[ROOM],
        time_zone="Romance Standard Time",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["friday"]},
                    "range": {"type": "numbered", "startDate": "2030-03-29", "numberOfOccurrences": 3}})
    graph.cancel_event("alice@contoso.com", one["id"])
    events: list[dict[str, Any]] = []
    for user in ("alice@contoso.com", "bob@contoso.com", ROOM, "salle-saturne@contoso.com"):
        events.extend(graph.events(user))
    events.extend(graph.occurrences("alice@contoso.com", series["id"], START, START + timedelta(days=30)))
    return events


def test_every_event_of_the_simulated_tenant_reads_as_the_sdk_model_does() -> None:
    events = _tenant_events()
    kinds = {(e.get("type"), bool(e.get("isCancelled")), bool(e.get("isAllDay"))) for e in events}
    assert len(events) >= 10 and len(kinds) >= 4  # single, occurrence, series master, cancelled, all-day
    for body in events:
        assert event_from_json(body, ROOM) == to_outlook_event(_sdk(body), ROOM), body.get("subject")


@pytest.mark.parametrize("body", [
    {"id": "AAMk-1"},
    {"id": "AAMk-2", "start": {"dateTime": "2030-03-29T09:00:00.0000000", "timeZone": "UTC"},
     "end": {"dateTime": "2030-03-29T10:00:00.1234567"}, "lastModifiedDateTime": "2030-03-01T08:00:00.1234567Z",
     "attendees": [{"type": "resource"}, {"emailAddress": {"address": "Salle@Contoso.com"}},
                   {"emailAddress": {"name": "X"}, "status": {"response": "accepted"}}],
     "organizer": {"emailAddress": {"address": "Alice@Contoso.COM"}}, "responseStatus": {},
     "showAs": "busy", "type": "exception", "seriesMasterId": "M-1", "changeKey": "ck"},
    {"id": "AAMk-3", "subject": None, "organizer": {}, "start": {"dateTime": "", "timeZone": "UTC"},
     "isCancelled": None, "showAs": None, "attendees": None, "lastModifiedDateTime": "2030-03-01T08:00:00Z"},
])
def test_sparse_answers_read_as_the_sdk_model_does(body: dict[str, Any]) -> None:
    assert event_from_json(body, ROOM) == to_outlook_event(_sdk(body), ROOM)
