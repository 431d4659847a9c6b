"""`GraphSimulator`: the simulated Microsoft Graph (SPEC §10) and the Python API that tests and the demo drive.

One TLS server on one loopback port serves both the Entra token endpoint and `/v1.0`. Python API writes act as the
tenant's users: they follow the same Exchange rules and notify subscribers, but are not counted as HTTP writes.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.applications import Starlette

from simulators.graph.auth import auth_routes
from simulators.graph.backend import GraphBackend, Tunables
from simulators.graph.delivery import DeliveryFaults
from simulators.graph.directory import Mailbox, RoomList, RoomPlace
from simulators.graph.errors import GraphError
from simulators.graph.routes import graph_routes
from simulators.graph.stats import GraphStats
from simulators.graph.timezones import resolve_zone
from simulators.server import ServerThread, TestCA


class GraphSimulator:
    def __init__(self, tenant_id: str | None = None, domain: str = "contoso.com") -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.domain = domain
        self.backend = GraphBackend.create(self.tenant_id, domain)
        self._server: ServerThread | None = None

    # -- server --------------------------------------------------------------------------------------------------

    def start(self, ca: TestCA) -> GraphSimulator:
        trust = ssl.create_default_context()
        trust.load_verify_locations(cafile=str(ca.ca_file))  # webhook receivers may use the same test CA
        self.backend.delivery.verify = trust
        self.backend.subscriptions.verify = trust

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self.backend.delivery.start()
            try:
                yield
            finally:
                self.backend.delivery.stop()

        app = Starlette(routes=[*auth_routes(self.backend.issuer), *graph_routes(self.backend)], lifespan=lifespan)
        self._server = ServerThread(app, tls=ca).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> GraphSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.base_url

    @property
    def graph_base_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def authority_host(self) -> str:
        return self.base_url.removeprefix("https://")

    # -- tenant --------------------------------------------------------------------------------------------------

    def register_app(self, client_id: str, client_secret: str) -> None:
        self.backend.issuer.register(client_id, client_secret)

    def revoke_tokens(self) -> None:
        """Every issued access token becomes unknown (401), as after a secret rotation."""
        self.backend.issuer.revoke_all()

    def add_user(self, email: str, display_name: str, time_zone: str = "UTC") -> str:
        resolve_zone(time_zone)
        with self.backend.tenant.lock:
            mailbox = Mailbox(str(uuid.uuid4()), email, display_name, time_zone=time_zone)
            return self.backend.tenant.directory.add(mailbox).id

    def add_room(
        self,
        email: str,
        display_name: str,
        capacity: int | None = None,
        building: str | None = None,
        floor_number: int | None = None,
        tags: list[str] | None = None,
        address: dict[str, str] | None = None,
        time_zone: str = "UTC",
        working_hours: dict[str, Any] | None = None,
        floor_label: str | None = None,
        phone: str | None = None,
        nickname: str | None = None,
        label: str | None = None,
        booking_type: str = "standard",
        is_wheel_chair_accessible: bool = False,
    ) -> str:
        """Returns the room mailbox's user object id (its /places id is another GUID)."""
        resolve_zone(time_zone)
        mailbox = Mailbox(str(uuid.uuid4()), email, display_name, True, time_zone, dict(working_hours or {}))
        place = RoomPlace(
            mailbox,
            capacity=capacity,
            building=building,
            floor_number=floor_number,
            floor_label=floor_label,
            tags=list(tags or []),
            address=dict(address or {}),
            phone=phone,
            nickname=nickname,
            label=label,
            booking_type=booking_type,
            is_wheel_chair_accessible=is_wheel_chair_accessible,
        )
        with self.backend.tenant.lock:
            return self.backend.tenant.directory.add_room(place).mailbox.id

    def add_room_list(self, email: str, display_name: str, rooms: Sequence[str] = ()) -> str:
        """A room list (`/places/microsoft.graph.roomlist`) holding these rooms (e-mails); returns its place id."""
        with self.backend.tenant.lock:
            directory = self.backend.tenant.directory
            members = [directory.room(r).mailbox.id for r in rooms]
            room_list = directory.room_lists[email.lower()] = RoomList(email, display_name, members)
            return room_list.id

    def set_secret_end(self, client_id: str, end: datetime) -> None:
        """When the app's client secret ends, as Graph reports it in the application's `passwordCredentials`."""
        self.backend.issuer.change(client_id, secret_end=end)

    def remove_room(self, email: str) -> None:
        """Hide the room from /places (as a room hidden from the address list); its mailbox keeps working."""
        with self.backend.tenant.lock:
            self.backend.tenant.directory.room(email).listed = False

    def set_room_tags(self, email: str, tags: list[str]) -> None:
        with self.backend.tenant.lock:
            self.backend.tenant.directory.room(email).tags = list(tags)

    def place_id(self, email: str) -> str:
        with self.backend.tenant.lock:
            return self.backend.tenant.directory.room(email).id

    def user_id(self, email: str) -> str:
        return self._mailbox(email).id

    # -- calendars (acting as the tenant's users) ------------------------------------------------------------------

    def create_meeting(
        self,
        organizer: str,
        subject: str,
        start: datetime,
        end: datetime,
        rooms: Sequence[str] = (),
        time_zone: str = "UTC",
        sensitivity: str = "normal",
        body: str = "",
        attendees: Sequence[str] = (),
        transaction_id: str | None = None,
        recurrence: dict[str, Any] | None = None,
        is_all_day: bool = False,
    ) -> dict[str, Any]:
        """Like Outlook: POST /users/{organizer}/events with the rooms as `resource` attendees and locations.
        `is_all_day`: `start`/`end` are midnights in `time_zone`.

        `recurrence` (a Graph patternedRecurrence, e.g. `{"pattern": {"type": "weekly", "interval": 1, "daysOfWeek":
        ["monday"]}, "range": {"type": "numbered", "startDate": "2026-11-23", "numberOfOccurrences": 10}}`) makes it
        a series: `start`/`end` give the first occurrence's times, kept as wall-clock times in `time_zone`.
        """
        payload: dict[str, Any] = {
            "subject": subject,
            "body": {"contentType": "html", "content": body},
            "start": _date_time_time_zone(start, time_zone),
            "end": _date_time_time_zone(end, time_zone),
            "sensitivity": sensitivity,
            "attendees": [self._attendee(a, "required") for a in attendees]
            + [self._attendee(r, "resource") for r in rooms],
            "locations": [self._location(room) for room in rooms],
        }
        if rooms:
            payload["location"] = {
                **payload["locations"][0],
                "displayName": "; ".join(location["displayName"] for location in payload["locations"]),
            }
        if transaction_id is not None:
            payload["transactionId"] = transaction_id
        if recurrence is not None:
            payload["recurrence"] = recurrence
        if is_all_day:
            payload["isAllDay"] = True
        event, _ = self.backend.exchange.create(self._mailbox(organizer), payload)
        return event.json()

    def create_event(self, user: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A raw Graph event payload, as POST /users/{user}/events (e.g. a direct write into a room calendar)."""
        event, _ = self.backend.exchange.create(self._mailbox(user), payload)
        return event.json()

    def update_event(
        self,
        user: str,
        event_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        rooms: Sequence[str] | None = None,
        subject: str | None = None,
        time_zone: str = "UTC",
        patch: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """As PATCH; `rooms` replaces the room attendees (and locations), other attendees stay."""
        mailbox = self._mailbox(user)
        changes: dict[str, Any] = dict(patch or {})
        if start is not None:
            changes["start"] = _date_time_time_zone(start, time_zone)
        if end is not None:
            changes["end"] = _date_time_time_zone(end, time_zone)
        if subject is not None:
            changes["subject"] = subject
        if rooms is not None:
            directory = self.backend.tenant.directory
            current = self.backend.exchange.get(mailbox, event_id).json()["attendees"]
            people = [a for a in current if directory.is_room(a["emailAddress"]["address"]) is None]
            changes["attendees"] = people + [self._attendee(room, "resource") for room in rooms]
            changes["locations"] = [self._location(room) for room in rooms]
        return self.backend.exchange.update(mailbox, event_id, changes).json()

    # -- recurring meetings ----------------------------------------------------------------------------------------

    def calendar_view(self, user: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """As GET /users/{user}/calendarView: single instances, occurrences and exceptions (never masters)."""
        return [event.json() for event in self.backend.exchange.view(self._mailbox(user), start, end)]

    def occurrences(self, user: str, master_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """As GET /users/{user}/events/{master_id}/instances?startDateTime&endDateTime."""
        return [event.json() for event in self.backend.exchange.instances(self._mailbox(user), master_id, start, end)]

    def occurrence(self, user: str, master_id: str, occurrence_start: datetime | date) -> dict[str, Any]:
        """One occurrence/exception of a series (see `update_occurrence` for `occurrence_start`)."""
        occurrence_id = self.occurrence_id(user, master_id, occurrence_start)
        return self.backend.exchange.get(self._mailbox(user), occurrence_id).json()

    def update_occurrence(
        self,
        user: str,
        master_id: str,
        occurrence_start: datetime | date,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        subject: str | None = None,
        time_zone: str = "UTC",
        patch: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """As PATCH on one occurrence: it becomes an exception; the organiser's change goes to the rooms.

        `occurrence_start` names the occurrence: its original start (aware datetime), or its local date in the
        series' recurrence time zone. Returns the exception's JSON.
        """
        mailbox = self._mailbox(user)
        original = self._original_start(mailbox, master_id, occurrence_start)
        changes: dict[str, Any] = dict(patch or {})
        if start is not None:
            changes["start"] = _date_time_time_zone(start, time_zone)
        if end is not None:
            changes["end"] = _date_time_time_zone(end, time_zone)
        if subject is not None:
            changes["subject"] = subject
        return self.backend.exchange.update_occurrence(mailbox, master_id, original, changes).json()

    def cancel_occurrence(self, user: str, master_id: str, occurrence_start: datetime | date) -> None:
        """As POST /events/{occurrenceId}/cancel by the organiser: only that occurrence goes (rooms' copies too)."""
        mailbox = self._mailbox(user)
        original = self._original_start(mailbox, master_id, occurrence_start)
        self.backend.exchange.cancel_occurrence(mailbox, master_id, original)

    def occurrence_id(self, user: str, master_id: str, occurrence_start: datetime | date) -> str:
        """The id of one occurrence of the series `master_id` on `user`'s calendar (stable: keyed by the master and
        the occurrence's original local date)."""
        mailbox = self._mailbox(user)
        original = self._original_start(mailbox, master_id, occurrence_start)
        return self.backend.exchange.get(mailbox, master_id).occurrence_id(original)

    def _original_start(self, mailbox: Mailbox, master_id: str, occurrence_start: datetime | date) -> datetime:
        if isinstance(occurrence_start, datetime):
            if occurrence_start.tzinfo is None:
                raise ValueError("datetimes given to the simulator must be timezone-aware")
            return occurrence_start.astimezone(UTC)
        master = self.backend.exchange.get(mailbox, master_id)
        if master.recurrence is None:
            raise GraphError(400, "ErrorInvalidRequest", "Not a series master.")
        zone = resolve_zone(master.recurrence.zone)
        for original, _, _ in master.occurrence_slots():
            local_day = original.astimezone(zone).date()
            if local_day == occurrence_start:
                return original
            if local_day > occurrence_start:
                break
        raise GraphError(404, "ErrorItemNotFound", f"The series has no occurrence on {occurrence_start}.")

    def cancel_event(self, user: str, event_id: str) -> None:
        self.backend.exchange.cancel(self._mailbox(user), event_id)

    def delete_event(self, user: str, event_id: str) -> None:
        self.backend.exchange.delete(self._mailbox(user), event_id)

    def events(self, user: str) -> list[dict[str, Any]]:
        return [event.json() for event in self.backend.exchange.events_of(self._mailbox(user))]

    def event(self, user: str, event_id: str) -> dict[str, Any]:
        return self.backend.exchange.get(self._mailbox(user), event_id).json()

    # -- subscriptions, notifications, delta ---------------------------------------------------------------------

    @property
    def subscriptions(self) -> dict[str, dict[str, Any]]:
        """Active (unexpired) subscriptions as Graph JSON, by id."""
        return {sid: sub.json() for sid, sub in self.backend.subscriptions.active().items()}

    def expire_subscription(self, subscription_id: str) -> None:
        self.backend.subscriptions.expire(subscription_id)

    def send_lifecycle(self, subscription_id: str, lifecycle_event: str) -> None:
        self.backend.subscriptions.send_lifecycle(subscription_id, lifecycle_event)

    @property
    def delivery(self) -> DeliveryFaults:
        """Notification faults, mutable at run time: `sim.delivery.duplicates = 3`, `.drop_next = 1`, …"""
        return self.backend.delivery.faults

    def set_delivery_senders(self, count: int) -> None:
        """Deliver up to `count` notifications at once (default 1: one after the other, in order)."""
        self.backend.delivery.set_senders(count)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.backend.delivery.wait_idle(timeout)

    def expire_delta_tokens(self) -> None:
        self.backend.deltas.expire_all()

    def now(self) -> datetime:
        return self.backend.tenant.clock.now()

    def advance(self, delta: timedelta) -> None:
        """Move the simulator clock (subscription expiry); tokens issued to MSAL are not affected."""
        self.backend.tenant.clock.advance(delta)

    # -- throttling and faults -----------------------------------------------------------------------------------

    def inject(self, status: int, count: int = 1, retry_after: int | None = None, mailbox: str | None = None) -> None:
        """The next `count` /v1.0 requests (to `mailbox` if given) get `status` (429 or 503) with Retry-After."""
        self.backend.throttle.inject(status, count, retry_after, self._mailbox(mailbox).id if mailbox else None)

    def clear_injections(self) -> None:
        self.backend.throttle.clear_injections()

    @property
    def tunables(self) -> Tunables:
        return self.backend.tunables

    @property
    def latency(self) -> float:
        return self.backend.tunables.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.backend.tunables.latency = seconds

    @property
    def retry_after(self) -> int:
        return self.backend.throttle.retry_after

    @retry_after.setter
    def retry_after(self, seconds: int) -> None:
        self.backend.throttle.retry_after = seconds

    @property
    def mailbox_concurrency(self) -> int:
        return self.backend.throttle.limit

    @mailbox_concurrency.setter
    def mailbox_concurrency(self, limit: int) -> None:
        self.backend.throttle.limit = limit

    @property
    def stats(self) -> GraphStats:
        return self.backend.stats

    # -- helpers -------------------------------------------------------------------------------------------------

    def _mailbox(self, key: str) -> Mailbox:
        try:
            return self.backend.tenant.directory.require(key)
        except GraphError:
            raise KeyError(f"no mailbox {key}") from None

    def _attendee(self, address: str, kind: str) -> dict[str, Any]:
        mailbox = self.backend.tenant.directory.find(address)
        name = mailbox.display_name if mailbox else address
        return {"type": kind, "emailAddress": {"address": mailbox.email if mailbox else address, "name": name}}

    def _location(self, room: str) -> dict[str, Any]:
        mailbox = self._mailbox(room)
        return {
            "displayName": mailbox.display_name,
            "locationType": "conferenceRoom",
            "locationEmailAddress": mailbox.email,
            "uniqueId": mailbox.email,
            "uniqueIdType": "directory",
        }


def _date_time_time_zone(moment: datetime, time_zone: str) -> dict[str, str]:
    if moment.tzinfo is None:
        raise ValueError("datetimes given to the simulator must be timezone-aware")
    local = moment.astimezone(resolve_zone(time_zone))
    return {"dateTime": local.replace(tzinfo=None).isoformat(), "timeZone": time_zone}
