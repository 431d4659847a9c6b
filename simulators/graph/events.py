"""Calendar items and their Graph JSON: one `Event` per item on one mailbox's calendar.

Ids look like Exchange immutable ids (opaque, URL-safe base64, never change); the copies of one meeting on several
calendars share the `iCalUId`. Every change bumps a tenant-wide sequence number that delta queries compare against.

A recurring meeting is stored as one `seriesMaster` item (with its recurrence, its cancelled occurrences and its
exceptions as `OccurrenceOverride`s); occurrences and exceptions are materialized on read (`Event.occurrences`), with
deterministic ids and per-occurrence iCalUIds (see recurrence.py).
"""

from __future__ import annotations

import base64
import copy as copying
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from simulators.graph.recurrence import Recurrence, occurrence_ical_uid, occurrence_id, parse_occurrence_id
from simulators.graph.timezones import NULL_TIME, graph_timestamp, resolve_zone, to_date_time_time_zone

# Fields an exception may change besides its times (PATCH on an occurrence), as Event attribute names.
OVERRIDABLE = (
    "subject",
    "body_type",
    "body",
    "show_as",
    "importance",
    "categories",
    "sensitivity",
    "is_all_day",
    "location",
    "locations",
)

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
class OccurrenceOverride:
    """What makes one occurrence an exception: its own times and fields, attendees' answers for it, its version."""

    start: datetime
    end: datetime
    change_key: str
    last_modified: datetime
    seq: int
    fields: dict[str, Any] = field(default_factory=dict)  # OVERRIDABLE attribute → value
    responses: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)  # attendee address (lower) → answer
    response: tuple[str, datetime | None] | None = None  # this calendar's own answer (a room copy's)


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
    # Recurring meetings. A stored item with `recurrence` is a series master; materialized occurrences carry
    # `kind`, `series_master_id`, `original_start` and the series' `uid`.
    recurrence: Recurrence | None = None
    cancelled_occurrences: set[datetime] = field(default_factory=set)  # original starts (UTC)
    overrides: dict[datetime, OccurrenceOverride] = field(default_factory=dict)  # original start → exception
    kind: str | None = None  # None: derived (singleInstance or seriesMaster); else occurrence | exception
    series_master_id: str | None = None
    original_start: datetime | None = None
    uid: str | None = None  # the series' iCalUId (occurrences); None: same as ical_uid

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    @property
    def type(self) -> str:
        if self.kind is not None:
            return self.kind
        return "seriesMaster" if self.recurrence is not None else "singleInstance"

    @property
    def is_master(self) -> bool:
        return self.recurrence is not None and self.kind is None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end

    # -- recurring meetings --------------------------------------------------------------------------------------

    def occurrence_slots(self) -> Iterator[tuple[datetime, datetime, datetime]]:
        """Every (original start, start, end) of the series, exceptions' own times applied, cancelled ones left out.

        Endless for a noEnd series (up to recurrence.MAX_EXPANSION): callers stop iterating.
        """
        assert self.recurrence is not None
        for original, end in self.recurrence.slots(self.start, self.end):
            if original in self.cancelled_occurrences:
                continue
            override = self.overrides.get(original)
            yield (original, override.start, override.end) if override else (original, original, end)

    def occurrences(self, start: datetime, end: datetime) -> list[Event]:
        """The materialized occurrences and exceptions that overlap [start, end), by start time."""
        if not self.is_master:
            return []
        found = []
        # Exceptions can be moved anywhere: look at all of them, and at plain occurrences up to the window's end.
        for original, override in self.overrides.items():
            if original not in self.cancelled_occurrences and override.start < end and start < override.end:
                found.append(original)
        for original, slot_start, slot_end in self.occurrence_slots():
            if original >= end:
                break
            if original not in self.overrides and slot_start < end and start < slot_end:
                found.append(original)
        result = [self.occurrence(original) for original in found]
        return sorted((o for o in result if o is not None), key=lambda o: o.start)

    def busy_between(self, start: datetime, end: datetime) -> bool:
        """This item (any occurrence of it, for a series) overlaps [start, end)."""
        if not self.is_master:
            return self.overlaps(start, end)
        for original, override in self.overrides.items():
            if original not in self.cancelled_occurrences and override.start < end and start < override.end:
                return True
        for original, slot_start, slot_end in self.occurrence_slots():
            if original >= end:
                return False
            if original not in self.overrides and slot_start < end and start < slot_end:
                return True
        return False

    def has_occurrence(self, original_start: datetime) -> bool:
        """True if the series has a (not cancelled) occurrence that originally starts then."""
        return self._plain_end(original_start) is not None

    def occurrence(self, original_start: datetime) -> Event | None:
        """One occurrence (or exception) of this series master by its original start, materialized."""
        plain_end = self._plain_end(original_start)
        if plain_end is None:
            return None
        assert self.recurrence is not None
        override = self.overrides.get(original_start)
        local_date = original_start.astimezone(resolve_zone(self.recurrence.zone)).date()
        occurrence = copying.deepcopy(self)
        occurrence.recurrence = None
        occurrence.cancelled_occurrences, occurrence.overrides = set(), {}
        occurrence.id = occurrence_id(self.id, local_date)
        occurrence.kind = "exception" if override else "occurrence"
        occurrence.series_master_id = self.id
        occurrence.original_start = original_start
        occurrence.uid = self.ical_uid
        occurrence.ical_uid = occurrence_ical_uid(self.ical_uid, local_date)
        occurrence.transaction_id = None
        occurrence.start, occurrence.end = original_start, plain_end
        if override is not None:
            occurrence.start, occurrence.end = override.start, override.end
            for name, value in override.fields.items():
                setattr(occurrence, name, copying.deepcopy(value))
            for attendee in occurrence.attendees:
                if (answer := override.responses.get(attendee.address.lower())) is not None:
                    attendee.response, attendee.response_time = answer
            if override.response is not None:
                occurrence.response, occurrence.response_time = override.response
            occurrence.change_key, occurrence.last_modified = override.change_key, override.last_modified
            occurrence.seq = max(self.seq, override.seq)
        return occurrence

    def occurrence_id(self, original_start: datetime) -> str:
        """The id of this series' occurrence that originally starts then."""
        assert self.recurrence is not None
        return occurrence_id(self.id, original_start.astimezone(resolve_zone(self.recurrence.zone)).date())

    def original_start_on(self, day: date) -> datetime | None:
        """The original start of the (not cancelled) occurrence on that local date, if any."""
        if not self.is_master:
            return None
        assert self.recurrence is not None
        zone = resolve_zone(self.recurrence.zone)
        for original, _, _ in self.occurrence_slots():
            local_day = original.astimezone(zone).date()
            if local_day >= day:
                return original if local_day == day else None
        return None

    def _plain_end(self, original_start: datetime) -> datetime | None:
        """The pattern's end of the occurrence that originally starts then; None if there is none (or cancelled)."""
        if not self.is_master or original_start in self.cancelled_occurrences:
            return None
        assert self.recurrence is not None
        for original, end in self.recurrence.slots(self.start, self.end):
            if original >= original_start:
                return end if original == original_start else None
        return None

    def json(self, zone: str | None = None) -> dict[str, Any]:
        """Graph v1.0 `event`; times in UTC unless the caller asked for a zone (Prefer: outlook.timezone)."""
        data = self._json(zone)
        if self.original_start is not None:
            data["originalStart"] = self.original_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.is_master:
            assert self.recurrence is not None
            local = resolve_zone(self.recurrence.zone)
            data["cancelledOccurrences"] = [
                f"OID.{self.id}.{original.astimezone(local).date().isoformat()}"
                for original in sorted(self.cancelled_occurrences)
            ]
        return data

    def _json(self, zone: str | None) -> dict[str, Any]:
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
            "uid": self.uid or self.ical_uid,
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
            "seriesMasterId": self.series_master_id,
            "showAs": self.show_as,
            "type": self.type,
            "webLink": f"https://outlook.office365.com/owa/?itemid={self.id}&exvsurl=1&path=/calendar/item",
            "onlineMeetingUrl": None,
            "isOnlineMeeting": False,
            "onlineMeetingProvider": "unknown",
            "allowNewTimeProposals": True,
            "isDraft": False,
            "hideAttendees": False,
            "recurrence": self.recurrence.json() if self.is_master and self.recurrence else None,
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

    def find(self, event_id: str) -> Event | None:
        """A stored item, or a materialized occurrence/exception of a stored series master."""
        event = self.events.get(event_id)
        if event is not None:
            return event
        parsed = parse_occurrence_id(event_id)
        if parsed is None:
            return None
        master = self.events.get(parsed[0])
        original = master.original_start_on(parsed[1]) if master is not None else None
        return master.occurrence(original) if master is not None and original is not None else None

    def view(self, start: datetime, end: datetime) -> list[Event]:
        """calendarView: single instances, occurrences and exceptions overlapping [start, end) — never masters."""
        found: list[Event] = []
        for event in self.events.values():
            if event.is_master:
                found.extend(event.occurrences(start, end))
            elif event.overlaps(start, end):
                found.append(event)
        return sorted(found, key=lambda e: e.start)

    def is_free(self, start: datetime, end: datetime, ignore_ical_uid: str) -> bool:
        """What a room's booking assistant checks: no live item overlaps (the meeting's own copy aside)."""
        return not any(
            not e.is_cancelled
            and e.ical_uid != ignore_ical_uid
            and e.busy_between(start, end)
            for e in self.events.values()
        )
