"""Exchange's calendar behaviour behind the events API: meetings, room copies, the rooms' booking assistant.

Both the HTTP routes and the Python control API go through `Exchange`, so tests that act "as users" trigger the
same copies and notifications as the bridge's own writes.
"""

from __future__ import annotations

import copy as copying
from typing import Any

from .directory import Mailbox
from .errors import GraphError, invalid_request, not_found_item
from .events import Attendee, Calendar, Event, new_change_key, new_event_id, new_ical_uid
from .state import Change, Tenant
from .timezones import parse_date_time_time_zone

SENSITIVITIES = {"normal", "personal", "private", "confidential"}
SHOW_AS = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}
CANCELED_PREFIX = "Canceled: "


class Exchange:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant

    # Public methods return copies taken under the lock, so callers can render them while other threads write.

    # -- reads ---------------------------------------------------------------------------------------------------

    def get(self, mailbox: Mailbox, event_id: str) -> Event:
        with self.tenant.lock:
            return copying.deepcopy(self._get(mailbox, event_id))

    def events_of(self, mailbox: Mailbox) -> list[Event]:
        with self.tenant.lock:
            return copying.deepcopy(list(self.tenant.calendar(mailbox).events.values()))

    # -- writes --------------------------------------------------------------------------------------------------

    def create(self, mailbox: Mailbox, payload: dict[str, Any]) -> tuple[Event, bool]:
        """POST /users/{mailbox}/events. Returns (event, created); a repeated transactionId returns the first one."""
        with self.tenant.lock:
            calendar = self.tenant.calendar(mailbox)
            transaction_id = payload.get("transactionId")
            if transaction_id and (existing := calendar.by_transaction_id(transaction_id)) is not None:
                return copying.deepcopy(existing), False
            if "start" not in payload or "end" not in payload:
                raise invalid_request("An event needs start and end.")
            start, start_zone = parse_date_time_time_zone(payload["start"])
            end, end_zone = parse_date_time_time_zone(payload["end"])
            now = self.tenant.clock.now()
            event = Event(
                id=new_event_id(),
                ical_uid=new_ical_uid(),
                owner_id=mailbox.id,
                organizer_name=mailbox.display_name,
                organizer_address=mailbox.email,
                is_organizer=True,
                start=start,
                end=end,
                start_zone=start_zone,
                end_zone=end_zone,
                created=now,
                last_modified=now,
                transaction_id=transaction_id,
            )
            self._apply(event, payload)
            self._store(calendar, event, "created")
            self._sync_rooms(event)
            return copying.deepcopy(event), True

    def update(self, mailbox: Mailbox, event_id: str, patch: dict[str, Any]) -> Event:
        """PATCH: an organiser's update is sent to the rooms, which re-decide (see `_sync_rooms`)."""
        with self.tenant.lock:
            # Applied to a copy so that a rejected PATCH leaves the stored event untouched.
            event = copying.deepcopy(self._get(mailbox, event_id))
            self._apply(event, patch)
            self._store(self.tenant.calendar(mailbox), event, "updated")
            if event.is_organizer and not event.is_cancelled:
                self._sync_rooms(event)
            return copying.deepcopy(event)

    def cancel(self, mailbox: Mailbox, event_id: str) -> None:
        """POST .../cancel: organisers only (Graph answers 400 to attendees)."""
        with self.tenant.lock:
            event = self._get(mailbox, event_id)
            if not event.is_organizer:
                raise invalid_request(
                    "Your request can't be completed. You need to be an organizer to cancel a meeting."
                )
            self._cancel_meeting(event)

    def delete(self, mailbox: Mailbox, event_id: str) -> None:
        """DELETE: on the organiser's calendar it also cancels the meeting for the attendees (Graph documents it)."""
        with self.tenant.lock:
            event = self._get(mailbox, event_id)
            if event.is_organizer:
                self._cancel_meeting(event)
            else:
                self._remove(self.tenant.calendar(mailbox), event)

    # -- Exchange rules ------------------------------------------------------------------------------------------

    def _sync_rooms(self, meeting: Event) -> None:
        """Each room attendee's booking assistant: accept if free, decline (keep no copy) if busy.

        A room keeps its accepted copy without re-checking while the times don't change. Rooms no longer invited
        get their copy cancelled. Any attendee whose address is a room mailbox counts, whatever its `type`, as in
        Exchange (the booking assistant processes every request it receives).
        """
        tenant = self.tenant
        now = tenant.clock.now()
        invited: set[str] = set()
        for attendee in meeting.attendees:
            room = tenant.directory.is_room(attendee.address)
            if room is None or room.id == meeting.owner_id:
                continue
            invited.add(room.id)
            calendar = tenant.calendar(room)
            room_copy = calendar.by_ical_uid(meeting.ical_uid)
            holds_slot = (
                room_copy is not None
                and not room_copy.is_cancelled
                and (room_copy.start, room_copy.end) == (meeting.start, meeting.end)
            )
            accepted = holds_slot or calendar.is_free(meeting.start, meeting.end, meeting.ical_uid)
            attendee.response, attendee.response_time = ("accepted" if accepted else "declined"), now
            if accepted:
                self._write_room_copy(room, calendar, room_copy, meeting)
            elif room_copy is not None and not room_copy.is_cancelled:
                self._remove(calendar, room_copy)
        for room_id in tenant.directory.rooms:
            if room_id in invited or room_id == meeting.owner_id or room_id not in tenant.calendars:
                continue
            calendar = tenant.calendars[room_id]
            room_copy = calendar.by_ical_uid(meeting.ical_uid)
            if room_copy is not None and not room_copy.is_cancelled:
                self._cancel_copy(calendar, room_copy)

    def _write_room_copy(self, room: Mailbox, calendar: Calendar, room_copy: Event | None, meeting: Event) -> None:
        now = self.tenant.clock.now()
        change = "updated"
        if room_copy is None:
            change = "created"
            room_copy = Event(
                id=new_event_id(),
                ical_uid=meeting.ical_uid,
                owner_id=room.id,
                organizer_name=meeting.organizer_name,
                organizer_address=meeting.organizer_address,
                is_organizer=False,
                start=meeting.start,
                end=meeting.end,
                start_zone=meeting.start_zone,
                end_zone=meeting.end_zone,
                created=now,
                last_modified=now,
            )
        # AddOrganizerToSubject and DeleteComments, Exchange's defaults for room mailboxes.
        room_copy.subject = meeting.organizer_name
        room_copy.body = ""
        room_copy.start, room_copy.end = meeting.start, meeting.end
        room_copy.start_zone, room_copy.end_zone = meeting.start_zone, meeting.end_zone
        room_copy.attendees = copying.deepcopy(meeting.attendees)  # a snapshot: other rooms' answers may go stale
        room_copy.location, room_copy.locations = dict(meeting.location), list(meeting.locations)
        room_copy.sensitivity, room_copy.is_all_day = meeting.sensitivity, meeting.is_all_day
        room_copy.is_cancelled, room_copy.show_as = False, "busy"
        room_copy.response, room_copy.response_time = "accepted", now
        self._store(calendar, room_copy, change)

    def _cancel_meeting(self, meeting: Event) -> None:
        """Attendees' copies stay, marked cancelled (RemoveCanceledMeetings=false); the organiser's goes away."""
        for room_id in self.tenant.directory.rooms:
            calendar = self.tenant.calendars.get(room_id)
            room_copy = calendar.by_ical_uid(meeting.ical_uid) if calendar else None
            if calendar and room_copy and not room_copy.is_organizer and not room_copy.is_cancelled:
                self._cancel_copy(calendar, room_copy)
        self._remove(self.tenant.calendars[meeting.owner_id], meeting)

    def _cancel_copy(self, calendar: Calendar, room_copy: Event) -> None:
        room_copy.is_cancelled = True
        room_copy.subject = CANCELED_PREFIX + room_copy.subject
        self._store(calendar, room_copy, "updated")

    # -- storage and change publication --------------------------------------------------------------------------

    def _get(self, mailbox: Mailbox, event_id: str) -> Event:
        event = self.tenant.calendar(mailbox).events.get(event_id)
        if event is None:
            raise not_found_item()
        return event

    def _store(self, calendar: Calendar, event: Event, change_type: str) -> None:
        event.seq = self.tenant.next_seq()
        if change_type != "created":
            event.change_key = new_change_key()
            event.last_modified = self.tenant.clock.now()
        calendar.events[event.id] = event
        calendar.removed.pop(event.id, None)
        self.tenant.publish(Change(event.owner_id, event.id, change_type, event.etag))

    def _remove(self, calendar: Calendar, event: Event) -> None:
        del calendar.events[event.id]
        calendar.removed[event.id] = self.tenant.next_seq()
        self.tenant.publish(Change(event.owner_id, event.id, "deleted", event.etag))

    def _apply(self, event: Event, payload: dict[str, Any]) -> None:
        """Copy the writable fields Graph accepts on create/PATCH; ignore the read-only ones, as Graph does."""
        if "subject" in payload:
            event.subject = str(payload["subject"] or "")
        if "body" in payload:
            body = payload["body"] or {}
            event.body_type = str(body.get("contentType") or "html").lower()
            event.body = str(body.get("content") or "")
        if "start" in payload:
            event.start, event.start_zone = parse_date_time_time_zone(payload["start"])
        if "end" in payload:
            event.end, event.end_zone = parse_date_time_time_zone(payload["end"])
        if event.end < event.start:
            raise invalid_request("The end of the event must not be before its start.")
        if "attendees" in payload:
            event.attendees = _attendees(payload["attendees"] or [], event.attendees)
        if "location" in payload:
            event.location = dict(payload["location"] or {})
        if "locations" in payload:
            event.locations = [dict(location) for location in payload["locations"] or []]
        if "sensitivity" in payload:
            event.sensitivity = _choice(payload["sensitivity"], SENSITIVITIES, "sensitivity")
        if "showAs" in payload:
            event.show_as = _choice(payload["showAs"], SHOW_AS, "showAs")
        if "isAllDay" in payload:
            event.is_all_day = bool(payload["isAllDay"])
        if "categories" in payload:
            event.categories = [str(c) for c in payload["categories"] or []]
        if "importance" in payload:
            event.importance = str(payload["importance"])


def _attendees(items: list[dict[str, Any]], previous: list[Attendee]) -> list[Attendee]:
    """Input statuses are ignored (Graph does too); known attendees keep theirs."""
    known = {a.address.lower(): a for a in previous}
    result = []
    for item in items:
        email = (item or {}).get("emailAddress") or {}
        address = email.get("address")
        if not isinstance(address, str) or "@" not in address:
            raise invalid_request("An attendee needs emailAddress.address.")
        before = known.get(address.lower())
        result.append(
            Attendee(
                address=address,
                name=str(email.get("name") or address),
                type=str(item.get("type") or "required"),
                response=before.response if before else "none",
                response_time=before.response_time if before else None,
            )
        )
    return result


def _choice(value: object, allowed: set[str], name: str) -> str:
    if value not in allowed:
        raise GraphError(400, "ErrorInvalidRequest", f"Invalid value '{value}' for {name}.")
    return str(value)
