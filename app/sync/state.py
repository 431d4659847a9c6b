"""The one owner of sync state: the only module that reads and writes links, room copies and the journal entry of a
change. The flows hand it plain values (`app.core.link.LinkState`, `Note`); it maps them to rows in one short
transaction, so a link, its copies and what the journal says of them always change together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.core.link import LinkState, Pending, RoomCopy, Synced
from app.platform.db import session_scope
from app.platform.metrics import change_written
from app.platform.models import EventCopy, Link, Room, utcnow
from app.sync import journal

ChangeDirection = Literal["outlook_to_booking", "booking_to_outlook"]  # the journal's direction of a change
WRITES = frozenset({"create", "update", "cancel"})  # a note `ok` with one of these: the other side was written


@dataclass(frozen=True)
class Note:
    """What the journal says of one change."""

    direction: ChangeDirection
    action: str  # create | update | cancel | skip | refuse | resolve | ...
    status: str  # ok | skipped | invalid | conflict | error
    message: str
    rule: str | None = None


# --- reading ----------------------------------------------------------------------------------------------------


def by_meeting(engine: Engine, integration_id: str, ical_uid: str) -> LinkState | None:
    with session_scope(engine) as s:
        row = s.exec(select(Link).where(Link.integration_id == integration_id, Link.ical_uid == ical_uid)).first()
        return _state(s, row) if row else None


def by_loan(engine: Engine, integration_id: str, loan_id: str, outlook_ref: str | None = None) -> LinkState | None:
    """The link of a loan; for a loan born in Outlook (`outlook_ref`: its meeting's iCalUId) also by its meeting."""
    with session_scope(engine) as s:
        row = s.exec(select(Link).where(Link.integration_id == integration_id, Link.loan_id == loan_id)).first()
        if row is None and outlook_ref:
            row = s.exec(select(Link).where(Link.integration_id == integration_id,
                                            Link.ical_uid == outlook_ref)).first()
        return _state(s, row) if row else None


def by_copy(engine: Engine, room_id: str, event_id: str) -> LinkState | None:
    """The link a room's copy (its event id in that room's calendar) belongs to."""
    with session_scope(engine) as s:
        copy = s.exec(select(EventCopy).where(EventCopy.room_id == room_id, EventCopy.event_id == event_id)).first()
        row = s.get(Link, copy.link_id) if copy else None
        return _state(s, row) if row else None


def pending_event_creates(engine: Engine, integration_id: str, organizer: str) -> list[LinkState]:
    """Links of loans whose event `organizer` is creating (`Pending` kind `event_create`), not yet confirmed."""
    with session_scope(engine) as s:
        rows = s.exec(select(Link).where(Link.integration_id == integration_id, Link.state == "creating",
                                         Link.origin == "booking")).all()
        found = [_state(s, row) for row in rows]
    return [link for link in found if (p := link.pending_of("event_create")) is not None and p.organizer == organizer]


def _state(s: Session, row: Link) -> LinkState:
    copies = s.exec(select(EventCopy, Room.email).join(Room, col(Room.id) == EventCopy.room_id)
                    .where(EventCopy.link_id == row.id)).all()
    return LinkState(
        ical_uid=row.ical_uid,
        origin="booking" if row.origin == "booking" else "outlook",
        id=row.id,
        loan_id=row.loan_id,
        status=row.state if row.state in ("creating", "cancelled") else "active",  # type: ignore[arg-type]
        organizer_email=row.organizer_email,
        organizer_event_id=row.organizer_event_id,
        synced=Synced.from_json(row.synced),
        outlook_hash=row.outlook_hash,
        outlook_change_key=row.outlook_change_key,
        outlook_modified_at=row.outlook_modified_at,
        booking_hash=row.booking_hash,
        booking_version=row.booking_version,
        booking_updated_at=row.booking_updated_at,
        copies=tuple(sorted((RoomCopy(c.room_id, email, c.event_id, c.change_key) for c, email in copies),
                            key=lambda c: c.room_email)),
        updated_at=_aware(row.updated_at),
        pending=Pending.from_json((row.synced or {}).get("pending")),
    )


def _aware(at: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive: they were stored as UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


# --- writing ----------------------------------------------------------------------------------------------------


def save(engine: Engine, integration_id: str, link: LinkState | None, note: Note | None = None, *,
         ical_uid: str | None = None, loan_id: str | None = None) -> LinkState | None:
    """Store `link` (fields and exactly its room copies) and the journal note, in one transaction.

    Returns the stored state (with its id). `ical_uid` / `loan_id` name the change in the journal when there is no
    link. Callers hold the meeting's lock, so the read-decide-write of one meeting never interleaves.
    """
    with session_scope(engine) as s:
        stored = _write_link(s, integration_id, link) if link is not None else None
        if note is not None:
            journal.record(s, integration_id, note.direction, note.action, note.status, note.message,
                           ical_uid=link.ical_uid if link is not None else ical_uid,
                           loan_id=(link.loan_id if link is not None else None) or loan_id, rule=note.rule)
        result = _state(s, stored) if stored is not None else None
    if note is not None and note.status == "ok" and note.action in WRITES:
        change_written(note.direction)  # the change → other side latency (app/platform/metrics.py)
    return result


def forget(engine: Engine, integration_id: str, link: LinkState) -> None:
    """Delete a link and its copies (a create's placeholder that came to nothing)."""
    with session_scope(engine) as s:
        row = s.get(Link, link.id) if link.id else None
        if row is not None and row.integration_id == integration_id:
            for copy in s.exec(select(EventCopy).where(EventCopy.link_id == row.id)).all():
                s.delete(copy)
            s.delete(row)


def _write_link(s: Session, integration_id: str, link: LinkState) -> Link:
    row = s.get(Link, link.id) if link.id else None
    if row is None:
        row = s.exec(select(Link).where(Link.integration_id == integration_id, Link.ical_uid == link.ical_uid)).first()
    if row is None:
        row = Link(integration_id=integration_id, ical_uid=link.ical_uid, origin=link.origin)
    row.ical_uid = link.ical_uid
    row.loan_id = link.loan_id
    row.state = link.status
    row.organizer_email = link.organizer_email
    row.organizer_event_id = link.organizer_event_id
    # The JSON column holds what was last synced and the write-ahead record of a write in flight (if any).
    row.synced = {**(link.synced.as_json() if link.synced is not None else {}),
                  **({"pending": link.pending.as_json()} if link.pending is not None else {})}
    row.outlook_hash = link.outlook_hash
    row.outlook_change_key = link.outlook_change_key
    row.outlook_modified_at = link.outlook_modified_at
    row.booking_hash = link.booking_hash
    row.booking_version = link.booking_version
    row.booking_updated_at = link.booking_updated_at
    row.updated_at = utcnow()
    s.add(row)
    s.flush()
    existing = {c.room_id: c for c in s.exec(select(EventCopy).where(EventCopy.link_id == row.id)).all()}
    wanted = {c.room_id: c for c in link.copies}
    for room_id, copy_row in existing.items():
        if room_id not in wanted:
            s.delete(copy_row)
    s.flush()
    for room_id, copy in wanted.items():
        copy_row = existing.get(room_id) or EventCopy(link_id=row.id, room_id=room_id, event_id=copy.event_id)
        copy_row.event_id, copy_row.change_key = copy.event_id, copy.change_key
        s.add(copy_row)
    s.flush()
    return row
