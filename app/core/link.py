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
from datetime import datetime
from typing import Any, Literal

Origin = Literal["outlook", "booking"]
# `creating`: a loan create is about to be sent (its body is in `synced`); a job killed after the booking system
# created the loan and before the link recorded it replays that exact body under the same Idempotency-Key.
LinkStatus = Literal["creating", "active", "cancelled"]


@dataclass(frozen=True)
class Synced:
    """The loan as last synced, in the Outlook side's terms: the requester the Outlook side sees (the organiser, or
    the default user standing in), the loan's slot and its rooms (e-mails, sorted)."""

    requester_email: str
    requester_name: str
    start: datetime
    end: datetime
    rooms: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"requester_email": self.requester_email, "requester_name": self.requester_name,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "rooms": list(self.rooms)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Synced | None:
        if not data:
            return None
        return cls(str(data["requester_email"]), str(data.get("requester_name") or data["requester_email"]),
                   datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]),
                   tuple(data.get("rooms") or ()))


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
                       outlook_hash=outlook_hash, synced=synced)

    def loan_cancelled(self, loan_id: str, version: int, updated_at: datetime) -> LinkState:
        return replace(self, loan_id=loan_id, status="cancelled", booking_version=version,
                       booking_updated_at=updated_at)

    def event_written(self, *, ical_uid: str, loan_id: str, organizer: str, event_id: str, outlook_hash: str,
                      booking_hash: str, version: int, updated_at: datetime, synced: Synced,
                      copies: tuple[RoomCopy, ...]) -> LinkState:
        return replace(self, ical_uid=ical_uid, loan_id=loan_id, status="active", organizer_email=organizer,
                       organizer_event_id=event_id, outlook_hash=outlook_hash, booking_hash=booking_hash,
                       booking_version=version, booking_updated_at=updated_at, synced=synced, copies=copies)

    def closed(self, version: int, updated_at: datetime) -> LinkState:
        """The loan's event (or its room copies) removed: the link stays, cancelled, with no copies."""
        return replace(self, status="cancelled", copies=(), booking_version=version, booking_updated_at=updated_at)

    def version_seen(self, version: int, updated_at: datetime) -> LinkState:
        return replace(self, booking_version=max(version, self.booking_version or 0), booking_updated_at=updated_at)
