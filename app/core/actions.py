"""The action vocabulary both directions speak: what one sync step does to the other side (pure values).

A decision (`app.core.decide`) returns one of these; the flows in `app.sync` perform it and `app.sync.state` records
what was done. Outlook → booking writes loans, booking → Outlook writes events; `Record`, `Nothing` and `Refuse` are
shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.core.desired import DesiredEvent, DesiredLoan

RefusalStatus = Literal["skipped", "invalid"]


@dataclass(frozen=True)
class Refusal:
    """No loan / no event: `skipped` (not ours to sync) or `invalid` (a validity rule failed, named by `rule`)."""

    status: RefusalStatus
    rule: str
    message: str

    @property
    def worth_journaling(self) -> bool:
        # Reconciliation reads every meeting of a room, including past ones and other people's: not news.
        return self.rule not in QUIET_RULES


QUIET_RULES = frozenset({"not_eligible", "past"})


# --- Outlook → booking --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateLoan:
    desired: DesiredLoan


@dataclass(frozen=True)
class UpdateLoan:
    desired: DesiredLoan
    loan_id: str


@dataclass(frozen=True)
class CancelLoan:
    loan_id: str
    reason: str


# --- booking → Outlook --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateEvent:
    desired: DesiredEvent


@dataclass(frozen=True)
class UpdateEvent:
    desired: DesiredEvent
    event_id: str
    conflict: str | None = None  # set when both sides changed and the booking system won (journal text)


@dataclass(frozen=True)
class ReplaceEvent:
    """The organiser changed (a new requester): an event cannot move between mailboxes, so delete + create."""

    desired: DesiredEvent
    old_organizer: str
    old_event_id: str


@dataclass(frozen=True)
class DeleteEvent:
    organizer: str
    event_id: str
    reason: str


@dataclass(frozen=True)
class ReleaseRooms:
    """A loan born in Outlook was closed in the booking system: the rooms drop their copies; the meeting stays."""

    reason: str


# --- both -----------------------------------------------------------------------------------------------------------

JournalStatus = Literal["skipped", "conflict"]


@dataclass(frozen=True)
class Record:
    """Nothing to write on the other side, but remember this loan version (and say why in the journal if `journal`)."""

    why: str
    journal: JournalStatus | None = None


@dataclass(frozen=True)
class Nothing:
    """Nothing to write: the other side already says this (duplicates, the bridge's own writes coming back)."""

    why: str


@dataclass(frozen=True)
class Refuse:
    """Nothing to write, and nothing linked: the journal says which rule failed."""

    refusal: Refusal


LoanAction = CreateLoan | UpdateLoan | CancelLoan | Nothing | Refuse
EventAction = CreateEvent | UpdateEvent | ReplaceEvent | DeleteEvent | ReleaseRooms | Record | Nothing | Refuse
Action = LoanAction | EventAction
