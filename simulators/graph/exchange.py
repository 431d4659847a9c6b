"""Exchange's calendar behaviour behind the events API: meetings, room copies, the rooms' booking assistant.

Both the HTTP routes and the Python control API go through `Exchange`, so tests that act "as users" trigger the
same copies and notifications as the bridge's own writes.
"""

from __future__ import annotations

import copy as copying
from datetime import datetime, timedelta
from typing import Any

from simulators.graph.directory import Mailbox
from simulators.graph.errors import GraphError, invalid_request, not_found_item
from simulators.graph.events import (
    OVERRIDABLE,
    Attendee,
    Calendar,
    Event,
    OccurrenceOverride,
    new_change_key,
    new_event_id,
    new_ical_uid,
)
from simulators.graph.recurrence import Recurrence, parse_occurrence_id
from simulators.graph.state import Change, Tenant
from simulators.graph.timezones import parse_date_time_time_zone

SENSITIVITIES = {"normal", "personal", "private", "confidential"}
SHOW_AS = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}
CANCELED_PREFIX = "Canceled: "
# A room's booking assistant checks a series' occurrences this far ahead (Exchange's default BookingWindowInDays),
# counted from the later of now and the series start, and declines the whole series if any of them conflicts.
SERIES_CHECK_WINDOW = timedelta(days=180)
# PATCH on an occurrence can't change who is invited or the pattern (Graph: do that on the series master).
_SERIES_ONLY_FIELDS = {"attendees", "recurrence"}


class Exchange:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        # (attendee's e-mail, iCalUId, comment) of each decline with sendResponse: what the organisers were told.
        self.declines: list[tuple[str, str, str]] = []
        # Real Exchange answers a room's meeting request some seconds after the write: with `defer_room_answers` a
        # room that must decide (a new request, or new times) first holds a tentative copy, not answered
        # (`responseStatus` none, showAs tentative; the organiser sees `none`), until `answer_rooms()` lets the
        # booking assistants decide: accept (the copy becomes busy/accepted) or decline (the copy goes, the organiser
        # sees `declined`).
        self.defer_room_answers = False
        self._unanswered: list[tuple[str, str, str]] = []  # (room mailbox id, organiser mailbox id, iCalUId)

    # Public methods return copies taken under the lock, so callers can render them while other threads write.

    # -- reads ---------------------------------------------------------------------------------------------------

    def get(self, mailbox: Mailbox, event_id: str) -> Event:
        """A stored item (single instance or series master), or an occurrence/exception by its id."""
        with self.tenant.lock:
            event = self.tenant.calendar(mailbox).find(event_id)
            if event is None:
                raise not_found_item()
            return copying.deepcopy(event)

    def view(self, mailbox: Mailbox, start: datetime, end: datetime) -> list[Event]:
        """calendarView: single instances plus the occurrences and exceptions of series, in [start, end)."""
        with self.tenant.lock:
            return copying.deepcopy(self.tenant.calendar(mailbox).view(start, end))

    def instances(self, mailbox: Mailbox, master_id: str, start: datetime, end: datetime) -> list[Event]:
        """GET /events/{masterId}/instances: one series' occurrences and exceptions in [start, end)."""
        with self.tenant.lock:
            master = self._get(mailbox, master_id)
            return copying.deepcopy(master.occurrences(start, end))

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
        """PATCH: an organiser's update is sent to the rooms, which re-decide (see `_sync_rooms`).

        On an occurrence id it makes that occurrence an exception (`update_occurrence`). On a series master,
        changing its times or its recurrence resets the series' exceptions and cancelled occurrences, as Outlook does.
        """
        with self.tenant.lock:
            if (occurrence := self._occurrence_key(mailbox, event_id)) is not None:
                return self.update_occurrence(mailbox, occurrence[0], occurrence[1], patch)
            # Applied to a copy so that a rejected PATCH leaves the stored event untouched.
            before = self._get(mailbox, event_id)
            event = copying.deepcopy(before)
            self._apply(event, patch)
            if not event.is_master or (event.start, event.end, event.recurrence) != (
                before.start,
                before.end,
                before.recurrence,
            ):
                event.overrides, event.cancelled_occurrences = {}, set()
            calendar = self.tenant.calendar(mailbox)
            self._store(calendar, event, "updated")
            if event.is_master and not before.is_master:
                calendar.removed[event.id] = self.tenant.next_seq()  # its single instance leaves calendarView
            if event.is_organizer and not event.is_cancelled:
                self._sync_rooms(event)
            return copying.deepcopy(event)

    def update_occurrence(
        self, mailbox: Mailbox, master_id: str, original_start: datetime, patch: dict[str, Any]
    ) -> Event:
        """PATCH on one occurrence: it becomes an exception with its own times/fields. The organiser's change goes
        to each room that holds the series, which re-checks its calendar for the new slot: free → its copy of the
        occurrence moves too; busy → the room declines that occurrence and its copy of it is deleted."""
        if refused := _SERIES_ONLY_FIELDS & set(patch):
            raise invalid_request(f"Change {', '.join(sorted(refused))} on the series master, not an occurrence.")
        with self.tenant.lock:
            calendar = self.tenant.calendar(mailbox)
            master = self._master(calendar, master_id)
            current = master.occurrence(original_start)
            if current is None:
                raise not_found_item()
            edited = copying.deepcopy(current)
            self._apply(edited, patch)
            now = self.tenant.clock.now()
            override = master.overrides.get(original_start) or OccurrenceOverride(
                start=current.start, end=current.end, change_key=current.change_key, last_modified=now, seq=0
            )
            override.start, override.end = edited.start, edited.end
            override.fields = {
                name: copying.deepcopy(getattr(edited, name))
                for name in OVERRIDABLE
                if getattr(edited, name) != getattr(master, name)
            }
            override.change_key, override.last_modified = new_change_key(), now
            override.seq = self.tenant.next_seq()
            master.overrides[original_start] = override
            self.tenant.publish(
                Change(master.owner_id, master.occurrence_id(original_start), "updated", f'W/"{override.change_key}"')
            )
            if master.is_organizer and not master.is_cancelled:
                self._sync_room_occurrence(master, original_start)
            result = master.occurrence(original_start)
            assert result is not None
            return copying.deepcopy(result)

    def cancel_occurrence(
        self, mailbox: Mailbox, master_id: str, original_start: datetime, organizer_only: bool = True
    ) -> None:
        """Cancel (organiser) or delete one occurrence. The organiser's series lists it in `cancelledOccurrences`
        and no longer returns it; each room's copy of it is deleted. An attendee (DELETE, `organizer_only=False`)
        only removes it from its own calendar."""
        with self.tenant.lock:
            calendar = self.tenant.calendar(mailbox)
            master = self._master(calendar, master_id)
            if not master.has_occurrence(original_start):
                raise not_found_item()
            if organizer_only and not master.is_organizer:
                raise invalid_request(
                    "Your request can't be completed. You need to be an organizer to cancel a meeting."
                )
            self._drop_occurrence(master, original_start)
            if not master.is_organizer:
                return
            for room_id in self.tenant.directory.rooms:
                room_calendar = self.tenant.calendars.get(room_id)
                room_copy = room_calendar.by_ical_uid(master.ical_uid) if room_calendar else None
                if room_copy is not None and room_copy is not master and room_copy.has_occurrence(original_start):
                    self._drop_occurrence(room_copy, original_start)

    def cancel(self, mailbox: Mailbox, event_id: str) -> None:
        """POST .../cancel: organisers only (Graph answers 400 to attendees). On an occurrence id: that occurrence."""
        with self.tenant.lock:
            if (occurrence := self._occurrence_key(mailbox, event_id)) is not None:
                self.cancel_occurrence(mailbox, occurrence[0], occurrence[1])
                return
            event = self._get(mailbox, event_id)
            if not event.is_organizer:
                raise invalid_request(
                    "Your request can't be completed. You need to be an organizer to cancel a meeting."
                )
            self._cancel_meeting(event)

    def delete(self, mailbox: Mailbox, event_id: str) -> None:
        """DELETE: on the organiser's calendar it also cancels the meeting for the attendees (Graph documents it).
        On an occurrence id: that occurrence only (cancelled for everyone if the caller organises the series)."""
        with self.tenant.lock:
            if (occurrence := self._occurrence_key(mailbox, event_id)) is not None:
                self.cancel_occurrence(mailbox, occurrence[0], occurrence[1], organizer_only=False)
                return
            event = self._get(mailbox, event_id)
            if event.is_organizer:
                self._cancel_meeting(event)
            else:
                self._remove(self.tenant.calendar(mailbox), event)

    def decline(self, mailbox: Mailbox, event_id: str, comment: str = "", send_response: bool = True) -> None:
        """POST .../decline by an attendee (a room, on its behalf): the attendee's copy goes, and with `sendResponse`
        the organiser's event shows that attendee `declined` (Exchange delivers the response with its comment).
        Organisers cannot decline their own meeting (Graph answers 400)."""
        with self.tenant.lock:
            if (occurrence := self._occurrence_key(mailbox, event_id)) is not None:
                # One occurrence of a series: the room's copy of it goes (the series stays accepted).
                master = self._master(self.tenant.calendar(mailbox), occurrence[0])
                if master.is_organizer:
                    raise invalid_request("Your request can't be completed. The organizer can't decline the meeting.")
                if send_response:
                    self.declines.append((mailbox.email.lower(), master.ical_uid, comment))
                self._drop_occurrence(master, occurrence[1])
                return
            event = self._get(mailbox, event_id)
            if event.is_organizer:
                raise invalid_request("Your request can't be completed. The organizer can't decline the meeting.")
            address = mailbox.email.lower()
            if send_response:
                organizer = self.tenant.directory.find(event.organizer_address)
                calendar = self.tenant.calendars.get(organizer.id) if organizer is not None else None
                meeting = calendar.by_ical_uid(event.ical_uid) if calendar is not None else None
                if meeting is not None and meeting.is_organizer:
                    for attendee in meeting.attendees:
                        if attendee.address.lower() == address:
                            attendee.response, attendee.response_time = "declined", self.tenant.clock.now()
                    self._store(calendar, meeting, "updated")  # type: ignore[arg-type]
                self.declines.append((address, event.ical_uid, comment))
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
                and room_copy.response == "accepted"
                and (room_copy.start, room_copy.end, room_copy.recurrence)
                == (meeting.start, meeting.end, meeting.recurrence)
            )
            if not holds_slot and self.defer_room_answers:
                attendee.response, attendee.response_time = "none", None
                self._write_room_copy(room, calendar, room_copy, meeting, answered=False)
                key = (room.id, meeting.owner_id, meeting.ical_uid)
                if key not in self._unanswered:
                    self._unanswered.append(key)
                continue
            accepted = holds_slot or self._room_is_free(calendar, meeting)
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

    def answer_rooms(self) -> int:
        """The booking assistants answer the requests `defer_room_answers` held back (see there): how many."""
        with self.tenant.lock:
            waiting, self._unanswered = self._unanswered, []
            for room_id, owner_id, ical_uid in waiting:
                calendar = self.tenant.calendars.get(owner_id)
                meeting = calendar.by_ical_uid(ical_uid) if calendar is not None else None
                room = self.tenant.directory.find(room_id)
                if meeting is None or not meeting.is_organizer or meeting.is_cancelled or room is None:
                    continue
                room_calendar = self.tenant.calendar(room)
                room_copy = room_calendar.by_ical_uid(ical_uid)
                if room_copy is None or room_copy.is_cancelled:
                    continue
                accepted = self._room_is_free(room_calendar, meeting)
                now = self.tenant.clock.now()
                for attendee in meeting.attendees:
                    if attendee.address.lower() == room.email.lower():
                        attendee.response, attendee.response_time = ("accepted" if accepted else "declined"), now
                self._store(calendar, meeting, "updated")
                if accepted:
                    self._write_room_copy(room, room_calendar, room_copy, meeting)
                else:
                    # The item is answered (declined: a change of its own), then removed from the room's calendar.
                    room_copy.response, room_copy.response_time = "declined", now
                    self._store(room_calendar, room_copy, "updated")
                    self._remove(room_calendar, room_copy)
            return len(waiting)

    def _room_is_free(self, calendar: Calendar, meeting: Event) -> bool:
        """A single meeting: its slot is free. A series: every occurrence within SERIES_CHECK_WINDOW is free."""
        if not meeting.is_master:
            return calendar.is_free(meeting.start, meeting.end, meeting.ical_uid)
        horizon_start = max(self.tenant.clock.now(), meeting.start)
        horizon_end = horizon_start + SERIES_CHECK_WINDOW
        for original, start, end in meeting.occurrence_slots():
            if original >= horizon_end and start >= horizon_end:
                break
            if end > horizon_start and start < horizon_end and not calendar.is_free(start, end, meeting.ical_uid):
                return False
        return True

    def _sync_room_occurrence(self, meeting: Event, original_start: datetime) -> None:
        """The rooms' booking assistants process an exception: each room holding the series re-decides that
        occurrence (accept → its copy becomes the same exception; busy → declined, its copy of it deleted)."""
        tenant, now = self.tenant, self.tenant.clock.now()
        override = meeting.overrides[original_start]
        for attendee in meeting.attendees:
            room = tenant.directory.is_room(attendee.address)
            if room is None or room.id == meeting.owner_id:
                continue
            calendar = tenant.calendar(room)
            room_copy = calendar.by_ical_uid(meeting.ical_uid)
            if room_copy is None or room_copy.is_cancelled or not room_copy.is_master:
                continue  # the room declined (or never got) the series
            held = room_copy.occurrence(original_start)
            holds_slot = held is not None and (held.start, held.end) == (override.start, override.end)
            accepted = holds_slot or calendar.is_free(override.start, override.end, meeting.ical_uid)
            override.responses[attendee.address.lower()] = ("accepted" if accepted else "declined"), now
            if accepted:
                room_override = copying.deepcopy(override)
                room_override.response = ("accepted", now)
                room_override.change_key, room_override.seq = new_change_key(), tenant.next_seq()
                room_copy.overrides[original_start] = room_override
                room_copy.cancelled_occurrences.discard(original_start)
                tenant.publish(
                    Change(
                        room.id,
                        room_copy.occurrence_id(original_start),
                        "updated" if held is not None else "created",
                        f'W/"{room_override.change_key}"',
                    )
                )
            elif held is not None:
                self._drop_occurrence(room_copy, original_start)

    def _drop_occurrence(self, master: Event, original_start: datetime) -> None:
        held = master.occurrence(original_start)
        master.cancelled_occurrences.add(original_start)
        master.overrides.pop(original_start, None)
        if held is not None:
            self.tenant.publish(Change(master.owner_id, held.id, "deleted", held.etag))

    def _write_room_copy(self, room: Mailbox, calendar: Calendar, room_copy: Event | None, meeting: Event,
                         answered: bool = True) -> None:
        now = self.tenant.clock.now()
        change = "updated"
        was_single = room_copy is not None and not room_copy.is_master
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
        room_copy.is_cancelled, room_copy.show_as = False, "busy" if answered else "tentative"
        room_copy.response, room_copy.response_time = ("accepted", now) if answered else ("none", None)
        # A series: the room's copy follows the organiser's pattern, cancellations and exceptions, except the
        # exceptions this room declined (deleted from its copy).
        room_copy.recurrence = meeting.recurrence
        address = room.email.lower()
        declined = {
            original
            for original, override in meeting.overrides.items()
            if override.responses.get(address, ("", None))[0] == "declined"
        }
        room_copy.cancelled_occurrences = set(meeting.cancelled_occurrences) | declined
        room_copy.overrides = {}
        for original, override in meeting.overrides.items():
            if original not in declined:
                room_copy.overrides[original] = copying.deepcopy(override)
                room_copy.overrides[original].response = ("accepted", now)
        self._store(calendar, room_copy, change)
        if room_copy.is_master and was_single:
            calendar.removed[room_copy.id] = self.tenant.next_seq()

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

    def _master(self, calendar: Calendar, master_id: str) -> Event:
        master = calendar.events.get(master_id)
        if master is None or not master.is_master:
            raise not_found_item()
        return master

    def _occurrence_key(self, mailbox: Mailbox, event_id: str) -> tuple[str, datetime] | None:
        """(master id, original start) when `event_id` names an occurrence on this calendar, else None."""
        calendar = self.tenant.calendar(mailbox)
        parsed = None if event_id in calendar.events else parse_occurrence_id(event_id)
        master = calendar.events.get(parsed[0]) if parsed else None
        if parsed is None or master is None or not master.is_master:
            return None
        original = master.original_start_on(parsed[1])
        if original is None:
            raise not_found_item()
        return master.id, original

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
        seq = self.tenant.next_seq()
        if not event.is_master:  # a series' occurrences leave delta as @removed; the master never appears there
            calendar.removed[event.id] = seq
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
        if "recurrence" in payload:
            value = payload["recurrence"]
            event.recurrence = None if value is None else Recurrence.parse(value, event.start, event.start_zone)


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
