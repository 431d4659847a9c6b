"""Rooms import (SPEC §3): Graph's room list → places in the booking system, ignore-tags, deactivation, safety valve."""

from __future__ import annotations

from sqlmodel import select

from . import journal
from .booking.contract import PlaceUpsert
from .db import session_scope
from .graph.types import GraphRoom
from .logging import get_logger
from .models import Integration, Room, utcnow
from .runtime import Runtime

DIRECTION = "rooms"
log = get_logger("roombridge.rooms")


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


def _address(room: GraphRoom) -> str | None:
    a = room.address
    parts = [a.get("street"), " ".join(p for p in (a.get("postal_code"), a.get("city")) if p), a.get("country")]
    text = ", ".join(p for p in parts if p)
    return text or None


def import_rooms(rt: Runtime, integration_id: str) -> list[str]:
    """Import the integration's rooms; returns the ids of rooms that are active (to be subscribed)."""
    with session_scope(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        if integration is None or not integration.enabled:
            return []
        known = {r.email: r for r in s.exec(select(Room).where(Room.integration_id == integration_id)).all()}
    graph = rt.graph(integration)
    booking = rt.booking(integration)
    listed = rt.run(graph.list_rooms())
    ignore = parse_tags(integration.ignore_tags)
    wanted = [r for r in listed if r.email and not ignored(r, ignore)]

    previously_active = sum(1 for r in known.values() if r.active)
    if safety_valve_trips(previously_active, len(wanted)):
        with session_scope(rt.engine) as s:
            journal.record(s, integration_id, DIRECTION, "import", "error",
                           f"Graph lists {len(wanted)} importable rooms where {previously_active} were imported: "
                           "nothing deactivated; check the tenant, then run sync-rooms again")
        wanted_emails = {r.email for r in wanted}
        return [r.id for r in known.values() if r.active and r.email in wanted_emails]

    active_ids: list[str] = []
    for groom in wanted:
        mailbox_id = known[groom.email].mailbox_id if groom.email in known else rt.run(graph.user_id(groom.email))
        place = booking.upsert_place(PlaceUpsert(
            email=groom.email, name=groom.name, address=_address(groom), capacity=groom.capacity,
            building=groom.building, floor=groom.floor, tags=list(groom.tags), active=True))
        with session_scope(rt.engine) as s:
            room = s.exec(select(Room).where(Room.integration_id == integration_id, Room.email == groom.email)).first()
            room = room or Room(integration_id=integration_id, email=groom.email, name=groom.name, mailbox_id=mailbox_id)
            room.name, room.mailbox_id, room.place_id, room.active = groom.name, mailbox_id, place.id, True
            room.attributes = {"graph_place_id": groom.place_id, "tags": list(groom.tags)}
            room.updated_at = utcnow()
            s.add(room)
            s.flush()
            active_ids.append(room.id)

    gone = [r for e, r in known.items() if r.active and e not in {g.email for g in wanted}]
    for room in gone:
        booking.deactivate_place(room.email)
        with session_scope(rt.engine) as s:
            row = s.get(Room, room.id)
            if row is not None:
                row.active = False
                row.updated_at = utcnow()
                s.add(row)
    with session_scope(rt.engine) as s:
        journal.record(s, integration_id, DIRECTION, "import", "ok",
                       f"{len(active_ids)} rooms imported, {len(gone)} deactivated, "
                       f"{len(listed) - len(wanted)} ignored by tag")
    return active_ids
