"""An integration's sync settings as a plain value the pure rules can take (no database, no secrets).

`app.sync.integrations.policy_of` builds it from the stored integration."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

Direction = Literal["both", "outlook_to_booking", "booking_to_outlook"]
PrivateEvents = Literal["sync_hidden", "skip"]
RefusalFeedback = Literal["decline", "journal_only"]  # a room that gets no loan declines the meeting, or not
SubjectMode = Literal["number_name", "fixed", "loan_title"]  # the subject of events written from loans
EventSensitivity = Literal["normal", "private"]
AllDay = Literal["send", "skip"]  # all-day meetings on rooms: a full-day loan, or not synced
ShowAs = Literal["free", "tentative", "busy", "oof", "workingElsewhere"]

SUBJECT_FIXED_DEFAULT = "Reserved"


def subject_matches(pattern: str, subject: str) -> bool:
    """Seed 004's exclusion patterns, case-insensitive, `*` the only wildcard (`?` and everything else literal):
    no `*` → the subject contains the pattern; `Test*` starts with, `*Test` ends with, `*Test*` contains,
    `Test*Test` starts and ends with (and is long enough for both). Several inner `*` match parts in order."""
    p, s = pattern.casefold(), subject.casefold()
    if "*" not in p:
        return p in s
    parts = p.split("*")
    head, tail, middle = parts[0], parts[-1], [m for m in parts[1:-1] if m]
    if len(s) < len(head) + len(tail) or not s.startswith(head) or not s.endswith(tail):
        return False
    rest = s[len(head):len(s) - len(tail)]
    for m in middle:
        at = rest.find(m)
        if at < 0:
            return False
        rest = rest[at + len(m):]
    return True


def in_buildings(buildings: Collection[str], building: str | None) -> bool:
    """Sites (SPEC §2 `buildings`, seed 003): no building set → every room; else the room's Graph `building` is one
    of them (case-insensitive)."""
    if not buildings:
        return True
    return building is not None and building.strip().casefold() in {b.strip().casefold() for b in buildings}


@dataclass(frozen=True)
class Policy:
    integration_id: str
    domains: frozenset[str]
    default_user_email: str | None
    block_minutes: int = 15
    horizon_days: int = 180
    direction: Direction = "both"
    private_events: PrivateEvents = "sync_hidden"
    exclude_subjects: tuple[str, ...] = ()
    show_pending_as_tentative: bool = True
    refusal_feedback: RefusalFeedback = "decline"
    conflict_note: bool = False  # a room declining a loan's event marks the loan (`POST /v1/loans/{id}/notes`)
    subject_mode: SubjectMode = "number_name"
    subject_label: str = SUBJECT_FIXED_DEFAULT
    show_as: tuple[tuple[str, ShowAs], ...] = ()  # loan status → showAs, over the defaults (see `show_as_of`)
    sensitivity: EventSensitivity = "normal"
    all_day: AllDay = "send"
    buildings: tuple[str, ...] = ()  # buildings the integration is limited to (none: no limit)

    def in_tenant(self, email: str) -> bool:
        return email.rpartition("@")[2].lower() in self.domains

    def excluded_subject(self, subject: str) -> str | None:
        """The first `exclude_subjects` pattern matching `subject` (`subject_matches`)."""
        for pattern in self.exclude_subjects:
            if subject_matches(pattern, subject):
                return pattern
        return None

    def show_as_of(self, status: str) -> str:
        """The `showAs` of an event written from a loan in `status`: the integration's mapping, else tentative for
        `pending` (when `show_pending_as_tentative`), busy otherwise."""
        for mapped, show_as in self.show_as:
            if mapped == status:
                return show_as
        return "tentative" if status == "pending" and self.show_pending_as_tentative else "busy"

    def in_site(self, building: str | None) -> bool:
        return in_buildings(self.buildings, building)

    @property
    def outlook_to_booking(self) -> bool:
        return self.direction in ("both", "outlook_to_booking")

    @property
    def booking_to_outlook(self) -> bool:
        return self.direction in ("both", "booking_to_outlook")
