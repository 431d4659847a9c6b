"""`GraphTwin`: `GraphGateway`'s methods over the Graph simulator's Exchange model, in-process.

The tenant is a `GraphSimulator` that is never started (no server, no delivery thread): its Python API acts as the
tenant's users (`twin.users.create_meeting(...)`), the twin's methods act as the bridge, and both go through the same
`Exchange` rules. Every change Exchange publishes on a room's calendar is recorded in `notifications` as
(room mailbox id, event id) instead of being delivered.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from app.adapters.graph.errors import GraphConflict, GraphError, GraphGone, GraphNotFound, GraphThrottled
from app.core.graph import Attendee, EventWrite, GraphRoom, GraphSubscription, OutlookEvent
from simulators.graph import GraphSimulator
from simulators.graph.delta import Window
from simulators.graph.errors import GraphError as SimError
from simulators.graph.events import Event
from simulators.graph.state import Change
from tests.twins.clock import TwinClock
from tests.twins.faults import Faults

DOMAIN = "contoso.com"
NO_PAGING = 1_000_000


def to_outlook_event(event: Event, mailbox: str) -> OutlookEvent:
    """The simulator's calendar item as the gateway returns it (UTC times, lower-case addresses)."""
    return OutlookEvent(
        id=event.id,
        mailbox=mailbox,
        ical_uid=event.ical_uid,
        subject=event.subject,
        organizer_email=event.organizer_address.lower(),
        organizer_name=event.organizer_name,
        start=event.start.astimezone(UTC),
        end=event.end.astimezone(UTC),
        attendees=tuple(Attendee(a.address.lower(), a.name, a.type, a.response) for a in event.attendees),
        is_cancelled=event.is_cancelled,
        is_all_day=event.is_all_day,
        response=event.response,
        change_key=event.change_key,
        last_modified=event.last_modified,
        type=event.type,
        series_master_id=event.series_master_id,
        sensitivity=event.sensitivity,
        transaction_id=event.transaction_id,
        show_as=event.show_as,
    )


def _translate(e: SimError) -> GraphError:
    text = f"{e.status} {e.code} {e.message}"
    if e.status in (429, 503, 504):
        return GraphThrottled(text, 1.0, e.status)
    if e.status == 410 or e.code == "syncStateNotFound":
        return GraphGone(text, e.status, e.code)
    if e.status == 404:
        return GraphNotFound(text, e.status, e.code)
    if e.status == 409:
        return GraphConflict(text, e.status, e.code)
    return GraphError(text, e.status, e.code)


def _when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}


def write_payload(write: EventWrite) -> dict[str, Any]:
    """What `GraphGateway._sdk_event` sends, as Graph JSON."""
    return {
        "subject": write.subject,
        "body": {"contentType": "html", "content": write.body_html},
        "start": _when(write.start),
        "end": _when(write.end),
        "showAs": write.show_as,
        "sensitivity": write.sensitivity,
        "attendees": [{"type": "resource", "emailAddress": {"address": e, "name": n}} for e, n in write.rooms],
        "locations": [{"displayName": n, "locationType": "conferenceRoom", "locationEmailAddress": e,
                       "uniqueId": e, "uniqueIdType": "directory"} for e, n in write.rooms],
    }


class GraphTwin:
    def __init__(self, domain: str = DOMAIN, clock: TwinClock | None = None) -> None:
        self.users = GraphSimulator(domain=domain)  # never started: its Python API is the tenant's users
        self.backend = self.users.backend
        self.tenant = self.backend.tenant
        self.clock = clock or TwinClock()
        # Every holder of the simulator's clock reads the logical one (`lastModifiedDateTime`, delta, expiry).
        self.tenant.clock.now = self.clock.now  # type: ignore[method-assign]
        self.tenant.clock.advance = self.clock.advance  # type: ignore[method-assign]
        self.exchange = self.backend.exchange
        self.faults = Faults()
        self.notifications: list[tuple[str, str]] = []  # (room mailbox id, event id), in publication order
        self.writes = 0  # the bridge's event creates, patches and deletes
        self.calls = 0
        self._subscriptions: dict[str, GraphSubscription] = {}
        self._ids = itertools.count(1)
        self.tenant.listeners.append(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.mailbox_id in self.tenant.directory.rooms:
            self.notifications.append((change.mailbox_id, change.event_id))

    def take_notifications(self) -> list[tuple[str, str]]:
        taken, self.notifications = self.notifications, []
        return taken

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _enter(self) -> None:
        self.calls += 1
        self.faults.before_call()

    def _mailbox(self, key: str):  # type: ignore[no-untyped-def]
        try:
            return self.tenant.directory.require(key)
        except SimError as e:
            raise _translate(e) from None

    def _written(self, kind: str) -> None:
        self.writes += 1
        self.faults.after_write(kind)

    async def close(self) -> None:
        pass

    # -- rooms and users -------------------------------------------------------------------------------------------

    async def list_rooms(self) -> list[GraphRoom]:
        self._enter()
        with self.tenant.lock:
            return [GraphRoom(p.id, p.mailbox.email.lower(), p.mailbox.display_name, p.capacity, p.building,
                              p.floor_label or (str(p.floor_number) if p.floor_number is not None else None),
                              tuple(p.tags)) for p in self.tenant.directory.listed_rooms()]

    async def user_id(self, id_or_email: str) -> str:
        self._enter()
        return str(self._mailbox(id_or_email).id)

    async def mailbox_settings(self, mailbox: str) -> dict[str, Any]:
        self._enter()
        box = self._mailbox(mailbox)
        return {"time_zone": box.time_zone, "working_days": [], "working_start": None, "working_end": None,
                "working_time_zone": None}

    # -- events ----------------------------------------------------------------------------------------------------

    async def get_event(self, mailbox: str, event_id: str) -> OutlookEvent | None:
        self._enter()
        box = self._mailbox(mailbox)
        try:
            return to_outlook_event(self.exchange.get(box, event_id), mailbox)
        except SimError as e:
            if e.status == 404:
                return None
            raise _translate(e) from None

    async def find_event_by_ical_uid(self, mailbox: str, ical_uid: str) -> OutlookEvent | None:
        self._enter()
        box = self._mailbox(mailbox)
        found = [e for e in self.exchange.events_of(box) if e.ical_uid == ical_uid]
        return to_outlook_event(found[0], mailbox) if found else None

    async def instances(self, mailbox: str, master_id: str, start: datetime, end: datetime) -> list[OutlookEvent]:
        self._enter()
        box = self._mailbox(mailbox)
        try:
            return [to_outlook_event(e, mailbox) for e in self.exchange.instances(box, master_id, start, end)]
        except SimError as e:
            raise _translate(e) from None

    async def calendar_delta(self, mailbox: str, start: datetime, end: datetime,
                             delta_link: str | None = None) -> tuple[list[OutlookEvent], list[str], str | None]:
        """One delta round on the simulator's delta tokens, in one page; items are converted from the stored events."""
        self._enter()
        box = self._mailbox(mailbox)
        deltas = self.backend.deltas
        try:
            if delta_link:
                page = deltas.follow(box, delta_link, NO_PAGING, None)
            else:
                page = deltas.initial(box, Window(box.id, start, end), NO_PAGING, None)
        except SimError as e:
            raise _translate(e) from None
        changed: list[OutlookEvent] = []
        removed: list[str] = []
        with self.tenant.lock:
            calendar = self.tenant.calendar(box)
            for item in page.items:
                event = None if "@removed" in item else calendar.find(item["id"])
                if event is None:
                    removed.append(item["id"])
                else:
                    changed.append(to_outlook_event(event, mailbox))
        return changed, removed, page.delta_token

    async def create_event(self, mailbox: str, write: EventWrite) -> OutlookEvent:
        self._enter()
        box = self._mailbox(mailbox)
        payload = write_payload(write) | {"transactionId": write.transaction_id}
        try:
            event, created = self.exchange.create(box, payload)
        except SimError as e:
            raise _translate(e) from None
        self._written("create")
        return to_outlook_event(event, mailbox)

    async def patch_event(self, mailbox: str, event_id: str, write: EventWrite) -> OutlookEvent:
        self._enter()
        box = self._mailbox(mailbox)
        try:
            event = self.exchange.update(box, event_id, write_payload(write))
        except SimError as e:
            raise _translate(e) from None
        self._written("update")
        return to_outlook_event(event, mailbox)

    async def delete_event(self, mailbox: str, event_id: str) -> None:
        self._enter()
        box = self._mailbox(mailbox)
        try:
            self.exchange.delete(box, event_id)
        except SimError as e:
            if e.status != 404:
                raise _translate(e) from None
            return
        self._written("delete")

    async def decline_event(self, mailbox: str, event_id: str, comment: str) -> None:
        self._enter()
        box = self._mailbox(mailbox)
        try:
            self.exchange.decline(box, event_id, comment)
        except SimError as e:
            if e.status != 404:
                raise _translate(e) from None
            return
        self._written("decline")

    # -- subscriptions (bookkeeping only: notifications are recorded for every room anyway) -------------------------

    async def create_subscription(self, resource: str, notification_url: str, lifecycle_url: str,
                                  client_state: str, expires_at: datetime) -> GraphSubscription:
        self._enter()
        sub = GraphSubscription(f"sub-{next(self._ids)}", resource, expires_at)
        self._subscriptions[sub.id] = sub
        return sub

    async def renew_subscription(self, subscription_id: str, expires_at: datetime) -> datetime:
        self._enter()
        if subscription_id not in self._subscriptions:
            raise GraphNotFound(f"no subscription {subscription_id}", 404)
        old = self._subscriptions[subscription_id]
        self._subscriptions[subscription_id] = GraphSubscription(old.id, old.resource, expires_at)
        return expires_at

    async def delete_subscription(self, subscription_id: str) -> None:
        self._enter()
        self._subscriptions.pop(subscription_id, None)

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        self._enter()
        return [{"id": s.id, "resource": s.resource, "notification_url": ""} for s in self._subscriptions.values()]

    # -- what tests look at ------------------------------------------------------------------------------------------

    def events(self, mailbox: str) -> list[Event]:
        """Stored items of a calendar (series masters as such)."""
        return self.exchange.events_of(self._mailbox(mailbox))

    def view(self, mailbox: str, days: int = 30) -> list[Event]:
        """calendarView of the next `days` days (occurrences materialised)."""
        now = self.tenant.clock.now()
        return self.exchange.view(self._mailbox(mailbox), now - timedelta(days=1), now + timedelta(days=days))
