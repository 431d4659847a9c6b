"""What the bridge remembers of one meeting occurrence ⇄ one loan, as plain values (the pure core's view of a link).

`app.sync.state` loads these from the database and is the only module that writes them back; the decisions and the
transitions here never touch the database.

Echo suppression rests on two records kept by both directions:
- `booking_version`: the loan version the bridge last wrote or read. A loan at that version (or older) is the
  bridge's own write coming back, or a late hook: nothing to do.
- `outlook_hash`: the Outlook-side fingerprint (`DesiredLoan.fingerprint`) of the meeting as last synced. After its
  own event write the bridge records the fingerprint the Outlook side will compute from each room copy, so the
  notifications its write causes change nothing in the booking system.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

Origin = Literal["outlook", "booking"]
# `creating`: a loan create is about to be sent (its body is in `synced`); a job killed after the booking system
# created the loan and before the link recorded it replays that exact body under the same Idempotency-Key.
LinkStatus = Literal["creating", "active", "cancelled"]
# A write recorded before it is sent (write-ahead), so that a job killed after the other side accepted it and before
# the link recorded it is recognised when the write comes back (it is not the other side's change):
# - `loan_update`: a loan PATCH from Outlook; the loan matching `synced` is the bridge's own write.
# - `event_update`: a PATCH of the loan's event; until the booking side's job records it, the Outlook side waits
#   (a copy showing the old slot, or the cancelled copy of a room taken off, is not the organiser's change).
# - `event_create`: a loan's event created (or re-created for another organiser) under `transaction_id`; its room
#   copies may arrive before the link knows the event's iCalUId: the Outlook side recognises them by that id.
PendingKind = Literal["loan_update", "event_update", "event_create"]


@dataclass(frozen=True)
class Synced:
    """The loan as last synced, in the Outlook side's terms: the requester the Outlook side sees (the organiser, or
    the default user standing in), the loan's slot and its rooms (e-mails, sorted)."""

    requester_email: str
    requester_name: str
    start: datetime
    end: datetime
    rooms: tuple[str, ...]

    def holds(self, start: datetime, end: datetime, rooms: tuple[str, ...]) -> bool:
        """Whether a loan with this slot and these rooms (e-mails, sorted) is what this records."""
        return (start, end, rooms) == (self.start, self.end, self.rooms)

    def as_json(self) -> dict[str, Any]:
        return {"requester_email": self.requester_email, "requester_name": self.requester_name,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "rooms": list(self.rooms)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Synced | None:
        if not data or "requester_email" not in data:
            return None
        return cls(str(data["requester_email"]), str(data.get("requester_name") or data["requester_email"]),
                   datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]),
                   tuple(data.get("rooms") or ()))


@dataclass(frozen=True)
class Pending:
    """A write sent (or about to be sent) to the other side and not yet confirmed (see `PendingKind`)."""

    kind: PendingKind
    at: datetime  # when it was recorded (aware UTC)
    synced: Synced | None = None  # the loan as it is once the write lands (loan_update, event_update)
    outlook_hash: str | None = None  # `LinkState.outlook_hash` once it lands (loan_update, event_update)
    version: int | None = None  # event writes: the loan version being written
    transaction_id: str | None = None  # event_create: Graph's idempotency id of the create
    organizer: str | None = None  # event_create: the mailbox the event is created in

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at.isoformat(),
                "synced": self.synced.as_json() if self.synced is not None else None,
                "outlook_hash": self.outlook_hash, "version": self.version, "transaction_id": self.transaction_id,
                "organizer": self.organizer}

    @classmethod
    def from_json(cls, data: Any) -> Pending | None:
        if not isinstance(data, dict) or data.get("kind") not in ("loan_update", "event_update", "event_create"):
            return None
        return cls(data["kind"], datetime.fromisoformat(data["at"]), Synced.from_json(data.get("synced")),
                   data.get("outlook_hash"), data.get("version"), data.get("transaction_id"), data.get("organizer"))

    def stale(self, now: datetime, grace: timedelta) -> bool:
        """Older than `grace`: the job that recorded it is gone for good (it would have been retried by now)."""
        return now - self.at > grace


@dataclass(frozen=True)
class RoomCopy:
    """One room's live copy of the linked meeting: its own event id in that room's calendar."""

    room_id: str
    room_email: str
    event_id: str
    change_key: str | None = None


@dataclass(frozen=True)
class LinkState:
    ical_uid: str
    origin: Origin
    id: str | None = None  # None until stored
    loan_id: str | None = None
    status: LinkStatus = "active"
    organizer_email: str | None = None
    organizer_event_id: str | None = None
    synced: Synced | None = None
    outlook_hash: str | None = None
    outlook_change_key: str | None = None
    outlook_modified_at: datetime | None = None
    booking_hash: str | None = None
    booking_version: int | None = None
    booking_updated_at: datetime | None = None
    copies: tuple[RoomCopy, ...] = ()
    updated_at: datetime | None = None  # when the link was last stored (aware UTC)
    pending: Pending | None = None

    # --- reading ---------------------------------------------------------------------------------------------------

    @property
    def live_loan(self) -> str | None:
        """The loan id while the link is active."""
        return self.loan_id if self.status == "active" else None

    def copy_of(self, room_id: str) -> RoomCopy | None:
        return next((c for c in self.copies if c.room_id == room_id), None)

    def rooms_other_than(self, room_id: str) -> set[str]:
        """E-mails of the rooms other than `room_id` last seen holding a live copy."""
        return {c.room_email for c in self.copies if c.room_id != room_id}

    def changed_since(self, read_at: datetime) -> bool:
        """Stored after `read_at`: something the bridge itself wrote (e.g. the event of a moved loan) may be newer
        than an Outlook read made at `read_at`, so that read must not be believed without reading again."""
        return self.updated_at is not None and self.updated_at > read_at

    def is_own_version(self, version: int) -> bool:
        """A loan at this version was written or read by the bridge already (its own write, or a late hook)."""
        return self.booking_version is not None and version <= self.booking_version

    # --- transitions (each returns the new state) -----------------------------------------------------------------

    def with_copy(self, copy: RoomCopy, modified_at: datetime | None = None) -> LinkState:
        copies = tuple(c for c in self.copies if c.room_id != copy.room_id) + (copy,)
        return replace(self, copies=copies, outlook_change_key=copy.change_key, outlook_modified_at=modified_at)

    def without_copy(self, room_id: str) -> LinkState:
        return replace(self, copies=tuple(c for c in self.copies if c.room_id != room_id))

    def creating(self, synced: Synced) -> LinkState:
        """About to create the loan described by `synced` (a write-ahead record of the create's body)."""
        return replace(self, status="creating", synced=synced)

    @property
    def pending_create(self) -> Synced | None:
        """The body of a create that may have reached the booking system before the job was killed."""
        return self.synced if self.status == "creating" and self.loan_id is None else None

    def loan_written(self, loan_id: str, version: int, updated_at: datetime, outlook_hash: str,
                     synced: Synced) -> LinkState:
        return replace(self, loan_id=loan_id, status="active", booking_version=version, booking_updated_at=updated_at,
                       outlook_hash=outlook_hash, synced=synced, pending=None)

    def writing(self, pending: Pending) -> LinkState:
        """About to send `pending` (a write-ahead record; the write's own transition clears it)."""
        return replace(self, pending=pending)

    def creating_event(self, pending: Pending) -> LinkState:
        """About to create the loan's event (first time, or again for another organiser): see `PendingKind`."""
        return replace(self, status="creating", pending=pending)

    def pending_adopted(self) -> LinkState:
        """The pending write landed (it is the bridge's own): what the Outlook side shows is what it wrote. The loan
        version is left alone, so a newer change of the loan is still seen as one."""
        p = self.pending
        assert p is not None and p.synced is not None and p.outlook_hash is not None
        return replace(self, synced=p.synced, outlook_hash=p.outlook_hash, pending=None)

    def pending_of(self, kind: PendingKind) -> Pending | None:
        return self.pending if self.pending is not None and self.pending.kind == kind else None

    def without_pending(self) -> LinkState:
        return replace(self, pending=None)

    def loan_cancelled(self, loan_id: str, version: int, updated_at: datetime) -> LinkState:
        return replace(self, loan_id=loan_id, status="cancelled", booking_version=version,
                       booking_updated_at=updated_at, pending=None)

    def event_written(self, *, ical_uid: str, loan_id: str, organizer: str, event_id: str, outlook_hash: str,
                      booking_hash: str, version: int, updated_at: datetime, synced: Synced,
                      copies: tuple[RoomCopy, ...]) -> LinkState:
        return replace(self, ical_uid=ical_uid, loan_id=loan_id, status="active", organizer_email=organizer,
                       organizer_event_id=event_id, outlook_hash=outlook_hash, booking_hash=booking_hash,
                       booking_version=version, booking_updated_at=updated_at, synced=synced, copies=copies,
                       pending=None)

    def closed(self, version: int, updated_at: datetime) -> LinkState:
        """The loan's event (or its room copies) removed: the link stays, cancelled, with no copies."""
        return replace(self, status="cancelled", copies=(), booking_version=version, booking_updated_at=updated_at,
                       pending=None)

    def version_seen(self, version: int, updated_at: datetime) -> LinkState:
        return replace(self, booking_version=max(version, self.booking_version or 0), booking_updated_at=updated_at)
