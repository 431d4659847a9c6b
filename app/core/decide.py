"""The sync decision, pure: what Outlook says the loan should be × what the link remembers → one action."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.outlook_rules import DesiredLoan, Gone, Outcome, Refusal
from app.platform.models import Link


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


@dataclass(frozen=True)
class Nothing:
    """Nothing to write: the booking side already says this (duplicates, our own writes coming back)."""

    why: str


@dataclass(frozen=True)
class Journal:
    """Nothing to write, but the journal must say why (a skipped or invalid meeting)."""

    refusal: Refusal


Action = CreateLoan | UpdateLoan | CancelLoan | Nothing | Journal


def decide_outlook_change(outcome: Outcome, link: Link | None) -> Action:
    live_loan = link.loan_id if link is not None and link.state == "active" else None
    if isinstance(outcome, Gone):
        return CancelLoan(live_loan, outcome.reason) if live_loan else Nothing("no live loan to cancel")
    if isinstance(outcome, Refusal):
        if live_loan and outcome.rule == "rooms":
            return CancelLoan(live_loan, outcome.message)
        return Journal(outcome) if outcome.worth_journaling else Nothing(outcome.message)
    if live_loan is None:
        if link is not None and link.state == "cancelled":
            return Nothing("the loan of this meeting was cancelled")
        return CreateLoan(outcome)
    if link is not None and link.outlook_hash == outcome.fingerprint():
        return Nothing("loan already matches the meeting")
    return UpdateLoan(outcome, live_loan)
