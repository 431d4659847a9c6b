"""Pure rules of SPEC §6: from one Outlook copy of a meeting to the loan it should be (or why there is none).

No I/O here: availability (rule 4) is asked by the caller and applied with `apply_availability`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from app.core.graph import OutlookEvent
from app.core.policy import Policy

EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # blocks are aligned on the UTC hour


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
class Refusal:
    """No loan: `status` is `skipped` (not ours to sync) or `invalid` (a validity rule failed, named by `rule`)."""

    status: str
    rule: str
    message: str

    @property
    def worth_journaling(self) -> bool:
        # Reconciliation reads every meeting of a room, including past ones and other people's: not news.
        return self.rule not in QUIET_RULES


QUIET_RULES = frozenset({"not_eligible", "past"})


@dataclass(frozen=True)
class Gone:
    """The meeting occurrence no longer exists, or is cancelled: its loan (if any) is cancelled."""

    reason: str


Outcome = DesiredLoan | Refusal | Gone


def round_slot(start: datetime, end: datetime, block_minutes: int) -> tuple[datetime, datetime]:
    """Start rounded down, end rounded up, to whole blocks."""
    block = timedelta(minutes=block_minutes)
    start_r = start - ((start - EPOCH) % block)
    over = (end - EPOCH) % block
    end_r = end if over == timedelta(0) else end + (block - over)
    return start_r, end_r


def holds_live_copy(event: OutlookEvent) -> bool:
    """Whether the room whose calendar `event` was read from still holds the meeting (GRAPH-NOTES: a room belongs to
    a loan when its own calendar holds a live copy; the statuses of other rooms inside a copy can be stale)."""
    return not event.is_cancelled and event.response != "declined"


def evaluate(event: OutlookEvent, policy: Policy, live_rooms: Collection[str], now: datetime) -> Outcome:
    """Apply eligibility and validity rules 1–3 to one copy of a meeting, read from a room's calendar.

    `event.mailbox` is that room's e-mail; `live_rooms` are the imported rooms whose own calendars hold a live copy
    of this meeting, this room included if it does (rule 3: rooms that declined or left are not part of the loan).
    """
    if event.type == "seriesMaster":
        return Refusal("skipped", "series_master", "a series master is never a loan; its occurrences are")
    if event.mailbox.lower() not in {a.email for a in event.attendees}:
        # An entry written straight into the room's calendar, not a meeting the room was invited to.
        return Refusal("skipped", "not_eligible", "the room is not an attendee of this event")
    rooms = tuple(sorted(live_rooms))
    if not rooms:
        if event.is_cancelled:
            return Gone("cancelled in Outlook")
        return Refusal("invalid", "rooms", "every imported room declined or left the meeting")
    pattern = policy.excluded_subject(event.subject)
    if pattern is not None:
        return Refusal("skipped", "exclude_subjects", f"subject matches exclusion pattern {pattern!r}")
    if event.sensitivity in ("private", "confidential") and policy.private_events == "skip":
        return Refusal("skipped", "private_events", "private event and private_events=skip")

    # Rule 1: organiser.
    if event.organizer_email and policy.in_tenant(event.organizer_email):
        requester = Requester(event.organizer_email, event.organizer_name or event.organizer_email)
    elif policy.default_user_email:
        requester = Requester(policy.default_user_email, policy.default_user_email)
    else:
        return Refusal(
            "invalid", "organizer", f"organiser {event.organizer_email or '(none)'} is outside the tenant "
            "and no default user is set"
        )

    # Rule 2: dates.
    if event.start is None or event.end is None:
        return Refusal("invalid", "dates", "start or end missing")
    if event.start >= event.end:
        return Refusal("invalid", "dates", "start is not before end")
    if event.end <= now:
        return Refusal("skipped", "past", "the meeting is over")
    if event.start > now + timedelta(days=policy.horizon_days):
        return Refusal("invalid", "dates", f"starts beyond the {policy.horizon_days}-day horizon")

    start, end = round_slot(event.start, event.end, policy.block_minutes)
    return DesiredLoan(event.ical_uid, requester, start, end, rooms)


def apply_availability(
    desired: DesiredLoan, available: dict[str, bool], updating: bool
) -> DesiredLoan | Refusal | Gone:
    """Rule 4. At create every room must be free; at update the rooms no longer free are dropped (none left: cancel)."""
    busy = [r for r in desired.rooms if not available.get(r, False)]
    if not busy:
        return desired
    if not updating:
        return Refusal("invalid", "availability", "not available in the booking system: " + ", ".join(busy))
    remaining = tuple(r for r in desired.rooms if r not in busy)
    if not remaining:
        return Gone("no room remains available: " + ", ".join(busy))
    return replace(desired, rooms=remaining)
