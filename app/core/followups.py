"""Follow-up work a sync step asks for, as plain values: the domain returns them, the workers enqueue them.

This keeps the flows free of the queue (no flow imports `app.workers`): e.g. a subscription replaced after a gap returns
`ReconcileRoom`, and the actor that ran it sends the reconcile job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class ReconcileRoom:
    """The room's notifications may have had a gap: re-read its calendar (delta)."""

    room_id: str


@dataclass(frozen=True)
class RenewLater:
    """PATCH this subscription once `delay` has passed (Graph's 10-minute rule between PATCHes)."""

    subscription_id: str
    delay: timedelta
    reauthorize: bool = False


@dataclass(frozen=True)
class Subscribe:
    """Make sure this (newly imported or re-activated) room has a live subscription."""

    room_id: str


FollowUp = ReconcileRoom | RenewLater | Subscribe
