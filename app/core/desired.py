"""What each side should hold, as plain values with their fingerprints (equal fingerprints: nothing to write).

`DesiredLoan` is what Outlook says the loan of a meeting should be (SPEC §6); `DesiredEvent` is what the booking system
says the organiser's event of a loan should be (SPEC §7).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core.graph import EventWrite

EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # blocks are aligned on the UTC hour


def round_slot(start: datetime, end: datetime, block_minutes: int) -> tuple[datetime, datetime]:
    """Start rounded down, end rounded up, to whole blocks."""
    block = timedelta(minutes=block_minutes)
    start_r = start - ((start - EPOCH) % block)
    over = (end - EPOCH) % block
    end_r = end if over == timedelta(0) else end + (block - over)
    return start_r, end_r


@dataclass(frozen=True)
class Requester:
    email: str
    name: str


@dataclass(frozen=True)
class DesiredLoan:
    """What the loan of a meeting occurrence should hold, according to Outlook."""

    ical_uid: str
    requester: Requester
    start: datetime
    end: datetime
    rooms: tuple[str, ...]  # room e-mails, sorted

    def fingerprint(self) -> str:
        """Hash of the synced fields: equal fingerprints mean nothing to write (own writes coming back, duplicates)."""
        data = [self.requester.email, self.start.isoformat(), self.end.isoformat(), list(self.rooms)]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()


@dataclass(frozen=True)
class DesiredEvent:
    """The organiser's event a loan should be, according to the booking system."""

    loan_id: str
    organizer: str  # mailbox the event lives in (lower-case)
    subject: str
    body_html: str
    start: datetime
    end: datetime
    rooms: tuple[tuple[str, str], ...]  # (e-mail, name), sorted by e-mail
    show_as: str  # busy | tentative | free | oof | workingElsewhere (`Policy.show_as_of`)
    transaction_id: str
    sensitivity: str = "normal"  # normal | private (`Policy.sensitivity`)

    @property
    def room_emails(self) -> tuple[str, ...]:
        return tuple(email for email, _ in self.rooms)

    def write(self) -> EventWrite:
        return EventWrite(self.subject, self.body_html, self.start, self.end, self.rooms, self.show_as,
                          self.transaction_id, self.sensitivity)

    def fingerprint(self) -> str:
        """Hash of every field the bridge writes (`link.booking_hash`): equal means no Graph write is needed."""
        data = [self.organizer, self.subject, self.body_html, self.start.isoformat(), self.end.isoformat(),
                [list(r) for r in self.rooms], self.show_as]
        if self.sensitivity != "normal":  # appended only when set: the links synced before it keep their hashes
            data.append(self.sensitivity)
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()

    def outlook_view(self, ical_uid: str, block_minutes: int) -> DesiredLoan:
        """The loan the Outlook side will compute from a room copy of this event.

        Its requester is the organiser (in the tenant, or the default user, which is who we organise as), its slot is
        rounded to blocks, and its rooms are the live room attendees.
        """
        start, end = round_slot(self.start, self.end, block_minutes)
        return DesiredLoan(ical_uid, Requester(self.organizer, self.organizer), start, end, self.room_emails)

    def outlook_fingerprint(self, ical_uid: str, block_minutes: int) -> str:
        """`link.outlook_hash` after writing this event."""
        return self.outlook_view(ical_uid, block_minutes).fingerprint()
