"""Graph subscriptions (SPEC §4): one per imported room, with a per-subscription clientState kept only as a digest."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from . import journal
from .crypto import digest, new_token
from .db import session_scope
from .logging import get_logger
from .models import Integration, Room, Subscription, utcnow
from .runtime import Runtime

DIRECTION = "subscriptions"
# Just under Graph's 10,080-minute maximum for Outlook resources, so clock skew never makes a create fail.
LIFETIME = timedelta(minutes=10_080 - 60)
log = get_logger("roombridge.subscriptions")


def resource_of(room: Room) -> str:
    return f"/users/{room.mailbox_id}/events"


def ensure_subscription(rt: Runtime, room_id: str) -> str | None:
    """Make sure the room has a live subscription; returns its id (None if the room is not to be subscribed)."""
    with session_scope(rt.engine) as s:
        room = s.get(Room, room_id)
        if room is None or not room.active:
            return None
        integration = s.get(Integration, room.integration_id)
        if integration is None or not integration.enabled:
            return None
        live = s.exec(select(Subscription).where(
            Subscription.room_id == room_id, Subscription.status == "active",
            Subscription.expires_at > utcnow())).first()
        if live is not None:
            return live.id
    client_state = new_token(48)  # 64 characters, under Graph's 128
    base = rt.settings.public_base_url
    sub = rt.run(rt.graph(integration).create_subscription(
        resource=resource_of(room),
        notification_url=f"{base}/graph/notifications",
        lifecycle_url=f"{base}/graph/lifecycle",
        client_state=client_state,
        expires_at=utcnow() + LIFETIME,
    ))
    with session_scope(rt.engine) as s:
        s.add(Subscription(id=sub.id, integration_id=integration.id, room_id=room.id,
                           client_state_digest=digest(client_state), resource=sub.resource, expires_at=sub.expires_at))
        journal.record(s, integration.id, DIRECTION, "subscribe", "ok", f"{room.email}: subscription {sub.id}")
    return sub.id


def renew(rt: Runtime, subscription_id: str) -> None:
    """Extend a subscription; one that Graph no longer knows is replaced by a new one."""
    from .graph.errors import GraphNotFound

    with session_scope(rt.engine) as s:
        sub = s.get(Subscription, subscription_id)
        integration = s.get(Integration, sub.integration_id) if sub else None
    if sub is None or integration is None or sub.status != "active":
        return
    try:
        expires_at = rt.run(rt.graph(integration).renew_subscription(subscription_id, utcnow() + LIFETIME))
    except GraphNotFound:
        _mark_removed(rt, subscription_id, "Graph no longer knows it")
        ensure_subscription(rt, sub.room_id)
        return
    with session_scope(rt.engine) as s:
        row = s.get(Subscription, subscription_id)
        if row is not None:
            row.expires_at, row.renewed_at = expires_at, utcnow()
            s.add(row)


def _mark_removed(rt: Runtime, subscription_id: str, why: str) -> Subscription | None:
    with session_scope(rt.engine) as s:
        row = s.get(Subscription, subscription_id)
        if row is None:
            return None
        row.status = "removed"
        s.add(row)
        journal.record(s, row.integration_id, DIRECTION, "remove", "ok", f"subscription {subscription_id}: {why}")
        return row


def handle_lifecycle(rt: Runtime, subscription_id: str, event: str) -> None:
    """SPEC §4 lifecycle events. Unknown ones are logged, never fatal."""
    if event == "reauthorizationRequired":
        renew(rt, subscription_id)
    elif event == "subscriptionRemoved":
        row = _mark_removed(rt, subscription_id, "removed by Graph")
        if row is not None:
            ensure_subscription(rt, row.room_id)
    elif event == "missed":
        # Room reconciliation (calendarView delta) is what recovers missed notifications; see docs/operations.md.
        log.warning("notifications missed", subscription_id=subscription_id)
    else:
        log.warning("unknown lifecycle event ignored", subscription_id=subscription_id, lifecycle_event=event)
