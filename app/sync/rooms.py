"""Rooms import (SPEC §3): Graph's room list → places in the booking system, with working hours and time zone;
ignore-tags, deactivation (place and subscription), safety valve."""

from __future__ import annotations

from datetime import time
from typing import Any

from sqlmodel import Session, col, select

from app.adapters.graph.errors import GraphError, GraphThrottled
from app.core.contract import PlaceUpsert, WorkingHours
from app.core.graph import GraphRoom
from app.core.timezones import UnknownTimeZone, zone
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import Integration, Room, utcnow
from app.sync import journal
from app.sync.runtime import Runtime

DIRECTION = "rooms"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
log = get_logger("roombridge.rooms")


def active_rooms(session: Session, integration_id: str) -> list[Room]:
    """The integration's imported rooms that are in use (not deactivated)."""
    return list(session.exec(select(Room).where(Room.integration_id == integration_id,
                                                col(Room.active).is_(True))).all())


def parse_tags(value: str | list[str] | None) -> list[str]:
    """Ignore-tags come as a list or a comma-separated string; compared case-insensitively."""
    items = value.split(",") if isinstance(value, str) else (value or [])
    return sorted({t.strip().lower() for t in items if t and t.strip()})


def ignored(room: GraphRoom, ignore_tags: list[str]) -> bool:
    tags = {t.lower() for t in room.tags}
    return any(t in tags for t in ignore_tags)


def safety_valve_trips(previously_active: int, listed: int) -> bool:
    """Graph suddenly listing none, or under half, of many imported rooms is an outage, not a mass removal."""
    return previously_active >= 4 and listed < previously_active / 2


def iana(name: str | None) -> str | None:
    """A Graph zone name (Windows or IANA) as an IANA name; None when absent or unknown (e.g. a custom zone)."""
    if not name:
        return None
    try:
        return zone(name).key
    except UnknownTimeZone:
        return None


def booking_options(settings: dict[str, Any] | None) -> tuple[WorkingHours | None, str | None]:
    """mailboxSettings → (working hours, IANA zone) for the place.

    The contract reads working hours as wall-clock times in the place's `time_zone`, so when Graph states a zone for
    the working hours that zone is the place's; otherwise the mailbox's. Hours in a zone we cannot name are dropped
    rather than sent with a wrong meaning.
    """
    if not settings:
        return None, None
    hours_zone = iana(settings.get("working_time_zone"))
    time_zone = hours_zone or iana(settings.get("time_zone"))
    days = [d.lower() for d in settings.get("working_days") or [] if d and d.lower() in WEEKDAYS]
    start, end = settings.get("working_start"), settings.get("working_end")
    named = hours_zone is not None or not settings.get("working_time_zone")
    if not (days and isinstance(start, time) and isinstance(end, time) and named and time_zone):
        return None, time_zone
    return WorkingHours(days=days, start=start, end=end), time_zone


def _address(room: GraphRoom) -> str | None:
    a = room.address
    parts = [a.get("street"), " ".join(p for p in (a.get("postal_code"), a.get("city")) if p), a.get("country")]
    text = ", ".join(p for p in parts if p)
    return text or None


def _mailbox_settings(rt: Runtime, integration: Integration, mailbox_id: str, email: str) -> dict[str, Any] | None:
    """Booking options are a bonus: a room whose settings cannot be read (e.g. MailboxSettings.Read not granted) is
    still imported, without them. Throttling is not swallowed: the job retries after Retry-After."""
    try:
        return rt.graph_call(mailbox_id, rt.graph(integration).mailbox_settings(mailbox_id))
    except GraphThrottled:
        raise
    except GraphError as e:
        log.warning("mailbox settings unreadable, room imported without working hours", room=email, error=str(e))
        return None


def import_rooms(rt: Runtime, integration_id: str) -> list[str]:
    """Import the integration's rooms; returns the ids of rooms that are active (to be subscribed)."""
    with session_scope(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        if integration is None or not integration.enabled:
            return []
        known = {r.email: r for r in s.exec(select(Room).where(Room.integration_id == integration_id)).all()}
    listed = rt.run(rt.graph(integration).list_rooms())
    ignore = parse_tags(integration.ignore_tags)
    wanted = [r for r in listed if r.email and not ignored(r, ignore)]
    wanted_emails = {r.email for r in wanted}

    previously_active = sum(1 for r in known.values() if r.active)
    if safety_valve_trips(previously_active, len(wanted)):
        with session_scope(rt.engine) as s:
            journal.record(s, integration_id, DIRECTION, "import", "error",
                           f"Graph lists {len(wanted)} importable rooms where {previously_active} were imported: "
                           "nothing deactivated; check the tenant, then run sync-rooms again")
            _mark_synced(s, integration_id)
        return [r.id for r in known.values() if r.active and r.email in wanted_emails]

    active_ids = [_import_one(rt, integration, groom, known.get(groom.email)) for groom in wanted]
    gone = [r for e, r in known.items() if r.active and e not in wanted_emails]
    for room in gone:
        deactivate(rt, integration, room)
    with session_scope(rt.engine) as s:
        journal.record(s, integration_id, DIRECTION, "import", "ok",
                       f"{len(active_ids)} rooms imported, {len(gone)} deactivated, "
                       f"{len(listed) - len(wanted)} ignored by tag")
        _mark_synced(s, integration_id)
    return active_ids


def _import_one(rt: Runtime, integration: Integration, groom: GraphRoom, known: Room | None) -> str:
    mailbox_id = known.mailbox_id if known else rt.run(rt.graph(integration).user_id(groom.email))
    working_hours, time_zone = booking_options(_mailbox_settings(rt, integration, mailbox_id, groom.email))
    place = rt.booking(integration).upsert_place(PlaceUpsert(
        email=groom.email, name=groom.name, address=_address(groom), capacity=groom.capacity,
        building=groom.building, floor=groom.floor, tags=list(groom.tags), working_hours=working_hours,
        time_zone=time_zone, active=True))
    with session_scope(rt.engine) as s:
        room = s.exec(select(Room).where(Room.integration_id == integration.id, Room.email == groom.email)).first()
        room = room or Room(integration_id=integration.id, email=groom.email, name=groom.name, mailbox_id=mailbox_id)
        room.name, room.mailbox_id, room.place_id, room.active = groom.name, mailbox_id, place.id, True
        room.attributes = {"graph_place_id": groom.place_id, "tags": list(groom.tags), "time_zone": time_zone}
        room.updated_at = utcnow()
        s.add(room)
        s.flush()
        return room.id


def deactivate(rt: Runtime, integration: Integration, room: Room) -> None:
    """A room gone from Graph or newly ignore-tagged: place deactivated, subscription deleted, no more polling."""
    from app.sync.subscriptions import (
        drop_subscriptions,  # subscriptions builds on rooms, not the other way round
    )

    rt.booking(integration).deactivate_place(room.email)
    drop_subscriptions(rt, integration, room.id, "room deactivated")
    with session_scope(rt.engine) as s:
        row = s.get(Room, room.id)
        if row is not None:
            row.active, row.polling, row.updated_at = False, False, utcnow()
            s.add(row)
        journal.record(s, integration.id, DIRECTION, "deactivate", "ok",
                       f"{room.email}: no longer listed by Graph or carries an ignore-tag")


def _mark_synced(s: Any, integration_id: str) -> None:
    row = s.get(Integration, integration_id)
    if row is not None:
        row.rooms_synced_at = utcnow()
        s.add(row)
