"""The one owner of sync state: the only module that reads and writes links, room copies and the journal entry of a
change. The flows hand it plain values (`app.core.link.LinkState`, `Note`); it maps them to rows in one short
transaction, so a link, its copies and what the journal says of them always change together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import select as orm_select

from app.core.link import LinkState, Pending, RoomCopy, Synced
from app.platform.db import reader, session_scope
from app.platform.metrics import change_written
from app.platform.models import EventCopy, Link, Room, new_id, utcnow
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
# SQLAlchemy Core, not ORM objects: a link and its copies are one query (building ORM instances and the extra
# round trips were most of a worker's database CPU, issue 9.2). The values are those the ORM rows gave.

_LINK = Link.__table__  # type: ignore[attr-defined]
_COPY = EventCopy.__table__  # type: ignore[attr-defined]
_ROOM = Room.__table__  # type: ignore[attr-defined]
# A link with its copies and their rooms' e-mails: one row per copy (one row of NULLs for a link without copies).
_WITH_COPIES = select(_LINK, _COPY.c.room_id.label("copy_room_id"), _COPY.c.event_id.label("copy_event_id"),
                      _COPY.c.change_key.label("copy_change_key"), _ROOM.c.email.label("copy_room_email")) \
    .select_from(_LINK.outerjoin(_COPY.join(_ROOM, _ROOM.c.id == _COPY.c.room_id), _COPY.c.link_id == _LINK.c.id))


# Built once (statements built per call were a good part of a worker's SQL cost: construction and cache keys).
_BY_ID = _WITH_COPIES.where(_LINK.c.id == bindparam("link_id"))
_BY_MEETING = _WITH_COPIES.where(_LINK.c.integration_id == bindparam("integration_id"),
                                 _LINK.c.ical_uid == bindparam("ical_uid"))
_UPDATE_LINK = update(_LINK).where(_LINK.c.id == bindparam("link_id"))
_INSERT_COPY = insert(_COPY)
_UPDATE_COPY = update(_COPY).where(_COPY.c.id == bindparam("copy_id"))
_COPIES_OF = select(_COPY.c.id, _COPY.c.room_id, _COPY.c.event_id, _COPY.c.change_key) \
    .where(_COPY.c.link_id == bindparam("link_id"))


def by_meeting(engine: Engine, integration_id: str, ical_uid: str) -> LinkState | None:
    with reader(engine).connect() as conn:
        return _first(_links_of(conn, _BY_MEETING, {"integration_id": integration_id, "ical_uid": ical_uid}))


def by_loan(engine: Engine, integration_id: str, loan_id: str, outlook_ref: str | None = None) -> LinkState | None:
    """The link of a loan; for a loan born in Outlook (`outlook_ref`: its meeting's iCalUId) also by its meeting."""
    with reader(engine).connect() as conn:
        found = _first(_links(conn, _LINK.c.integration_id == integration_id, _LINK.c.loan_id == loan_id))
        if found is None and outlook_ref:
            found = _first(_links(conn, _LINK.c.integration_id == integration_id, _LINK.c.ical_uid == outlook_ref))
        return found


def by_copy(engine: Engine, room_id: str, event_id: str) -> LinkState | None:
    """The link a room's copy (its event id in that room's calendar) belongs to."""
    owner = select(_COPY.c.link_id).where(_COPY.c.room_id == room_id, _COPY.c.event_id == event_id) \
        .limit(1).scalar_subquery()
    with reader(engine).connect() as conn:
        return _first(_links(conn, _LINK.c.id == owner))


def pending_event_creates(engine: Engine, integration_id: str, organizer: str) -> list[LinkState]:
    """Links of loans whose event `organizer` is creating (`Pending` kind `event_create`), not yet confirmed."""
    with reader(engine).connect() as conn:
        found = _links(conn, _LINK.c.integration_id == integration_id, _LINK.c.state == "creating",
                       _LINK.c.origin == "booking")
    return [link for link in found if (p := link.pending_of("event_create")) is not None and p.organizer == organizer]


def _first(links: list[LinkState]) -> LinkState | None:
    return links[0] if links else None


def _links(conn: Connection, *where: Any) -> list[LinkState]:
    """The links matching `where`, each with its copies (sorted by room e-mail), in one query."""
    return _links_of(conn, _WITH_COPIES.where(*where))


def _links_of(conn: Connection, statement: Any, params: dict[str, Any] | None = None) -> list[LinkState]:
    rows: dict[str, list[Any]] = {}
    for row in conn.execute(statement, params):
        rows.setdefault(row.id, []).append(row)
    return [_state(group) for group in rows.values()]


def _state(rows: list[Any]) -> LinkState:
    row = rows[0]
    return LinkState(
        ical_uid=row.ical_uid,
        origin="booking" if row.origin == "booking" else "outlook",
        id=row.id,
        loan_id=row.loan_id,
        status=row.state if row.state in ("creating", "cancelled") else "active",
        organizer_email=row.organizer_email,
        organizer_event_id=row.organizer_event_id,
        synced=Synced.from_json(row.synced),
        outlook_hash=row.outlook_hash,
        outlook_change_key=row.outlook_change_key,
        outlook_modified_at=row.outlook_modified_at,
        booking_hash=row.booking_hash,
        booking_version=row.booking_version,
        booking_updated_at=row.booking_updated_at,
        copies=tuple(sorted((RoomCopy(r.copy_room_id, r.copy_room_email, r.copy_event_id, r.copy_change_key)
                             for r in rows if r.copy_room_id is not None), key=lambda c: c.room_email)),
        updated_at=_aware(row.updated_at),
        pending=Pending.from_json((row.synced or {}).get("pending")),
    )


def _aware(at: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive: they were stored as UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


# --- writing ----------------------------------------------------------------------------------------------------


def save(engine: Engine, integration_id: str, link: LinkState | None, note: Note | None = None, *,
         ical_uid: str | None = None, loan_id: str | None = None, reread: bool = True) -> LinkState | None:
    """Store `link` (fields and exactly its room copies) and the journal note, in one transaction.

    Returns the stored state (with its id), read back in the same transaction; `reread=False` when the caller does
    not use it (None is returned: one round trip less). `ical_uid` / `loan_id` name the change in the journal when
    there is no link. Callers hold the meeting's lock, so the read-decide-write of one meeting never interleaves.
    """
    journal_ical_uid = link.ical_uid if link is not None else ical_uid
    journal_loan_id = (link.loan_id if link is not None else None) or loan_id
    if note is not None and note.status == "error":
        # An error merges with the change's open error entry (journal.record, through the ORM): rare, kept as it was.
        with session_scope(engine) as s:
            stored = _write_link(s.connection(), integration_id, link) if link is not None else None
            journal.record(s, integration_id, note.direction, note.action, note.status, note.message,
                           ical_uid=journal_ical_uid, loan_id=journal_loan_id, rule=note.rule)
            result = _by_id(s.connection(), stored) if stored is not None and reread else None
        return result
    # The usual path, with SQLAlchemy Core in one transaction (no ORM session: issue 9.2).
    with engine.begin() as conn:
        stored = _write_link(conn, integration_id, link) if link is not None else None
        if note is not None:
            journal.record_written(conn, integration_id, note.direction, note.action, note.status, note.message,
                                   ical_uid=journal_ical_uid, loan_id=journal_loan_id, rule=note.rule)
        result = _by_id(conn, stored) if stored is not None and reread else None
    if note is not None and note.status == "ok" and note.action in WRITES:
        change_written(note.direction)  # the change → other side latency (app/platform/metrics.py)
    return result


def _by_id(conn: Connection, link_id: str) -> LinkState | None:
    return _first(_links_of(conn, _BY_ID, {"link_id": link_id}))


def forget(engine: Engine, integration_id: str, link: LinkState) -> None:
    """Delete a link and its copies (a create's placeholder that came to nothing)."""
    with session_scope(engine) as s:
        row = s.get(Link, link.id) if link.id else None
        if row is not None and row.integration_id == integration_id:
            for copy in s.exec(orm_select(EventCopy).where(EventCopy.link_id == row.id)).all():
                s.delete(copy)
            s.delete(row)


def _write_link(conn: Connection, integration_id: str, link: LinkState) -> str:
    """Update (or insert) the link's row and make its copies exactly `link.copies`; the link's id."""
    now = utcnow()
    values = dict(
        ical_uid=link.ical_uid,
        loan_id=link.loan_id,
        state=link.status,
        organizer_email=link.organizer_email,
        organizer_event_id=link.organizer_event_id,
        # The JSON column holds what was last synced and the write-ahead record of a write in flight (if any).
        synced={**(link.synced.as_json() if link.synced is not None else {}),
                **({"pending": link.pending.as_json()} if link.pending is not None else {})},
        outlook_hash=link.outlook_hash,
        outlook_change_key=link.outlook_change_key,
        outlook_modified_at=link.outlook_modified_at,
        booking_hash=link.booking_hash,
        booking_version=link.booking_version,
        booking_updated_at=link.booking_updated_at,
        updated_at=now,
    )
    link_id = link.id
    if link_id and not conn.execute(_UPDATE_LINK, {"link_id": link_id, **values}).rowcount:
        link_id = None  # deleted meanwhile: found by its meeting, or stored anew
    new = False
    if not link_id:
        link_id = conn.execute(select(_LINK.c.id).where(_LINK.c.integration_id == integration_id,
                                                        _LINK.c.ical_uid == link.ical_uid)).scalar()
        if link_id:
            conn.execute(update(_LINK).where(_LINK.c.id == link_id).values(**values))
        else:
            link_id, new = new_id(), True
            conn.execute(insert(_LINK).values(id=link_id, integration_id=integration_id, origin=link.origin,
                                              created_at=now, **values))
    existing = {} if new else {r.room_id: r for r in conn.execute(_COPIES_OF, {"link_id": link_id})}
    wanted = {c.room_id: c for c in link.copies}
    gone = [r.id for room_id, r in existing.items() if room_id not in wanted]
    if gone:  # first: a copy's event id may move to another room's row of this link
        conn.execute(delete(_COPY).where(_COPY.c.id.in_(gone)))
    for room_id, copy in wanted.items():
        had = existing.get(room_id)
        if had is None:
            conn.execute(_INSERT_COPY, {"id": new_id(), "link_id": link_id, "room_id": room_id,
                                        "event_id": copy.event_id, "change_key": copy.change_key})
        elif (had.event_id, had.change_key) != (copy.event_id, copy.change_key):
            conn.execute(_UPDATE_COPY, {"copy_id": had.id, "event_id": copy.event_id, "change_key": copy.change_key})
    return str(link_id)
