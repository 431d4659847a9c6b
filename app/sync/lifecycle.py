"""An integration's lifecycle (issue 10.9): disabling stops its sync and deletes its Graph subscriptions; deleting
it deactivates nothing in the booking system unless asked. Each says what it did."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from app.adapters.booking.client import BookingError
from app.adapters.graph.errors import GraphError
from app.platform.logging import get_logger
from app.platform.models import Integration, Room, Subscription
from app.sync.runtime import Runtime
from app.sync.subscriptions import drop_subscriptions

log = get_logger("roombridge.lifecycle")


def drop_all_subscriptions(rt: Runtime, integration: Integration, why: str) -> dict[str, int]:
    """Delete every active Graph subscription of the integration (404 counts as done) and mark them removed. A room
    whose deletion fails keeps its row (Graph lets it expire within 3 days; its notifications are ignored meanwhile:
    the flows do nothing for a disabled integration)."""
    with Session(rt.engine) as s:
        rows = s.exec(select(Subscription.room_id).where(col(Subscription.integration_id) == integration.id,
                                                         col(Subscription.status) == "active")).all()
    room_ids = sorted(set(rows))
    deleted = failed = 0
    for room_id in room_ids:
        with Session(rt.engine) as s:
            count = len(s.exec(select(Subscription.id).where(col(Subscription.room_id) == room_id,
                                                             col(Subscription.status) == "active")).all())
        try:
            drop_subscriptions(rt, integration, room_id, why)
            deleted += count
        except GraphError as e:
            failed += count
            log.warning("subscription not deleted", integration_id=integration.id, room_id=room_id,
                        error=type(e).__name__)
    return {"subscriptions_deleted": deleted, "subscriptions_not_deleted": failed}


def deactivate_places(rt: Runtime, integration: Integration) -> dict[str, int]:
    """Deactivate, in the booking system, the places of the integration's active rooms (only when the admin asks)."""
    with Session(rt.engine) as s:
        emails = sorted(r.email for r in s.exec(select(Room).where(col(Room.integration_id) == integration.id,
                                                                    col(Room.active))).all())
    done = failed = 0
    client = rt.booking(integration)
    for email in emails:
        try:
            client.deactivate_place(email)
            done += 1
        except BookingError as e:
            failed += 1
            log.warning("place not deactivated", integration_id=integration.id, error=type(e).__name__)
    return {"places_deactivated": done, "places_not_deactivated": failed}


def summary(what: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in what.items())
