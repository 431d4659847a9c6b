"""Calendar items and their Graph JSON: one `Event` per item on one mailbox's calendar.

Ids look like Exchange immutable ids (opaque, URL-safe base64, never change); the copies of one meeting on several
calendars share the `iCalUId`. Every change bumps a tenant-wide sequence number that delta queries compare against.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .timezones import NULL_TIME, graph_timestamp, to_date_time_time_zone

_TAG = re.compile(r"<[^>]+>")


def new_event_id() -> str:
    return "AAMkAD" + base64.urlsafe_b64encode(secrets.token_bytes(45)).decode()


def new_ical_uid() -> str:
    return "040000008200E00074C5B7101A82E00800000000" + secrets.token_hex(28).upper()


def new_change_key() -> str:
    return "DwAAABYAAA" + base64.b64encode(secrets.token_bytes(12)).decode()


@dataclass
class Attendee:
    address: str
    name: str
    type: str = "required"  # required | optional | resource
    response: str = "none"
    response_time: datetime | None = None

    def json(self) -> dict[str, Any]:
        time = graph_timestamp(self.response_time) if self.response_time else NULL_TIME
        return {
            "type": self.type,
            "status": {"response": self.response, "time": time},
            "emailAddress": {"name": self.name, "address": self.address},
        }


@dataclass
class Event:
    id: str
    ical_uid: str
    owner_id: str  # mailbox object id whose calendar holds this item
    organizer_name: str
    organizer_address: str
    is_organizer: bool
    start: datetime  # aware, UTC
    end: datetime
    start_zone: str  # the zone the organiser wrote the times in (originalStartTimeZone)
    end_zone: str
    created: datetime
    last_modified: datetime
    subject: str = ""
    body_type: str = "html"
    body: str = ""
    attendees: list[Attendee] = field(default_factory=list)
    location: dict[str, Any] = field(default_factory=dict)
    locations: list[dict[str, Any]] = field(default_factory=list)
    is_cancelled: bool = False
    is_all_day: bool = False
    sensitivity: str = "normal"
    show_as: str = "busy"
    importance: str = "normal"
    categories: list[str] = field(default_factory=list)
    transaction_id: str | None = None
    response: str = "organizer"
    response_time: datetime | None = None
    change_key: str = field(default_factory=new_change_key)
    seq: int = 0  # tenant-wide change sequence of the last change (delta)

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end

    def json(self, zone: str | None = None) -> dict[str, Any]:
        """Graph v1.0 `event`; times in UTC unless the caller asked for a zone (Prefer: outlook.timezone)."""
        zone = zone or "UTC"
        data: dict[str, Any] = {
            "@odata.etag": self.etag,
            "id": self.id,
            "createdDateTime": graph_timestamp(self.created),
            "lastModifiedDateTime": graph_timestamp(self.last_modified),
            "changeKey": self.change_key,
            "categories": list(self.categories),
            "originalStartTimeZone": self.start_zone,
            "originalEndTimeZone": self.end_zone,
            "iCalUId": self.ical_uid,
            "uid": self.ical_uid,
            "reminderMinutesBeforeStart": 15,
            "isReminderOn": self.is_organizer,
            "hasAttachments": False,
            "subject": self.subject,
            "bodyPreview": " ".join(_TAG.sub(" ", self.body).split())[:255],
            "importance": self.importance,
            "sensitivity": self.sensitivity,
            "isAllDay": self.is_all_day,
            "isCancelled": self.is_cancelled,
            "isOrganizer": self.is_organizer,
            "responseRequested": True,
            "seriesMasterId": None,
            "showAs": self.show_as,
            "type": "singleInstance",
            "webLink": f"https://outlook.office365.com/owa/?itemid={self.id}&exvsurl=1&path=/calendar/item",
            "onlineMeetingUrl": None,
            "isOnlineMeeting": False,
            "onlineMeetingProvider": "unknown",
            "allowNewTimeProposals": True,
            "isDraft": False,
            "hideAttendees": False,
            "recurrence": None,
            "onlineMeeting": None,
            "responseStatus": {
                "response": self.response,
                "time": graph_timestamp(self.response_time) if self.response_time else NULL_TIME,
            },
            "body": {"contentType": self.body_type, "content": self.body},
            "start": to_date_time_time_zone(self.start, zone),
            "end": to_date_time_time_zone(self.end, zone),
            "location": self.location or {"displayName": "", "locationType": "default", "uniqueIdType": "unknown"},
            "locations": list(self.locations),
            "attendees": [attendee.json() for attendee in self.attendees],
            "organizer": {"emailAddress": {"name": self.organizer_name, "address": self.organizer_address}},
        }
        if self.transaction_id is not None:  # Graph returns it only when it was set
            data["transactionId"] = self.transaction_id
        return data


@dataclass
class Calendar:
    """One mailbox's calendar, plus the sequence numbers of deleted items (for delta `@removed`)."""

    events: dict[str, Event] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)  # event id → seq of its deletion

    def by_ical_uid(self, ical_uid: str) -> Event | None:
        return next((e for e in self.events.values() if e.ical_uid == ical_uid), None)

    def by_transaction_id(self, transaction_id: str) -> Event | None:
        return next((e for e in self.events.values() if e.transaction_id == transaction_id), None)

    def is_free(self, start: datetime, end: datetime, ignore_ical_uid: str) -> bool:
        """What a room's booking assistant checks: no live item overlaps (the meeting's own copy aside)."""
        return not any(
            e.overlaps(start, end) and not e.is_cancelled and e.ical_uid != ignore_ical_uid
            for e in self.events.values()
        )
