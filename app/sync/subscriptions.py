"""Graph subscriptions (SPEC §4): one per imported room, with a per-subscription clientState kept only as a digest.

Everything is decided from the database (a restart loses nothing): renewal at half-life, recreation of subscriptions
that expired or that Graph removed, adoption on `409`, lifecycle events, and the polling fallback for rooms Graph
refuses to subscribe. Whenever a room's notification stream may have had a gap, the room is reconciled.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import select

from app.adapters.graph.errors import GraphConflict, GraphError, GraphNotFound, GraphThrottled
from app.core.followups import FollowUp, ReconcileRoom, RenewLater
from app.platform.crypto import digest, new_token
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import Integration, Room, Subscription, utcnow
from app.sync import alerts, journal
from app.sync.runtime import Runtime

DIRECTION = "subscriptions"
# Just under Graph's 10,080-minute maximum for Outlook resources, so clock skew never makes a create fail.
LIFETIME = timedelta(minutes=10_080 - 60)
# Graph: never a reauthorize and a PATCH for the same subscription within this window.
PATCH_GAP = timedelta(minutes=10)
log = get_logger("roombridge.subscriptions")


# --- pure rules -----------------------------------------------------------------------------------------------------


def renewal_due(started_at: datetime, expires_at: datetime, now: datetime) -> bool:
    """Renew once less than half of the lifetime (since creation or the last renewal) is left."""
    return expires_at - now < (expires_at - started_at) / 2


def patch_wait(renewed_at: datetime | None, reauthorized_at: datetime | None, now: datetime) -> timedelta:
    """How long to wait before this subscription may be PATCHed again (zero: now)."""
    last = max((t for t in (renewed_at, reauthorized_at) if t is not None), default=None)
    if last is None:
        return timedelta(0)
    return max(last + PATCH_GAP - now, timedelta(0))


def refusal_means_polling(error: GraphError) -> bool:
    """A 4xx on create is Graph refusing this room (access policy, 1,000-subscription quota, …) — except a conflict
    (adopted instead), throttling (retried) and 401 (our credentials: every room would fail, polling included)."""
    if isinstance(error, GraphThrottled):
        return False
    return error.status is not None and 400 <= error.status < 500 and error.status not in (401, 409)


def same_resource(a: str, b: str) -> bool:
    """Graph echoes resources in any casing, with or without the leading slash."""
    return a.strip("/").lower() == b.strip("/").lower()


def resource_of(room: Room) -> str:
    return f"/users/{room.mailbox_id}/events"


# --- create, renew, remove ------------------------------------------------------------------------------------------


def ensure_subscription(rt: Runtime, room_id: str) -> tuple[str | None, list[FollowUp]]:
    """Make sure the room has a live subscription: its id (None: not to be subscribed, or polled) and the follow-ups
    (a reconcile when the room's notifications may have had a gap)."""
    out: list[FollowUp] = []
    with rt.locks.hold(f"subscription:{room_id}"):  # concurrent ensures would 409 each other
        return _ensure(rt, room_id, out), out


def _ensure(rt: Runtime, room_id: str, out: list[FollowUp], gap: bool = False) -> str | None:
    """`gap`: the room's notifications may have been lost (its subscription vanished): reconcile once subscribed."""
    now = utcnow()
    with session_scope(rt.engine) as s:
        room = s.get(Room, room_id)
        integration = s.get(Integration, room.integration_id) if room else None
        if room is None or integration is None or not room.active or not integration.enabled:
            return None
        rows = s.exec(select(Subscription).where(Subscription.room_id == room_id,
                                                 Subscription.status == "active")).all()
        live = next((r for r in rows if r.expires_at > now), None)
        if live is not None:
            return live.id
        # Expired rows: Graph has dropped them, and notifications since then are lost. They are marked removed only
        # once the replacement exists, so that a retry after a failed create still knows about the gap.
        expired = [r.id for r in rows]
        gap = gap or bool(expired) or room.polling
    try:
        sub_id, adopted = _create(rt, integration, room)
    except GraphError as e:
        if not refusal_means_polling(e):
            raise
        _fall_back_to_polling(rt, integration, room, str(e), out)
        sub_id, adopted = None, False
    for old_id in expired:
        _mark_removed(rt, old_id, "expired")
    if sub_id is None:
        return None
    if gap or adopted:
        out.append(ReconcileRoom(room_id))
    return sub_id


def _create(rt: Runtime, integration: Integration, room: Room) -> tuple[str, bool]:
    """The new subscription's id, and whether an existing one had to be adopted (409)."""
    try:
        return _create_once(rt, integration, room), False
    except GraphConflict:
        _adopt(rt, integration, room)
        return _create_once(rt, integration, room), True


def _create_once(rt: Runtime, integration: Integration, room: Room) -> str:
    client_state = new_token(48)  # 64 characters, under Graph's 128
    base = rt.settings.public_base_url
    sub = rt.run(rt.graph(integration).create_subscription(
        resource=resource_of(room), notification_url=f"{base}/graph/notifications",
        lifecycle_url=f"{base}/graph/lifecycle", client_state=client_state, expires_at=utcnow() + LIFETIME))
    with session_scope(rt.engine) as s:
        s.add(Subscription(id=sub.id, integration_id=integration.id, room_id=room.id,
                           client_state_digest=digest(client_state), resource=sub.resource, expires_at=sub.expires_at))
        row = s.get(Room, room.id)
        if row is not None and row.polling:
            row.polling = False
            s.add(row)
        journal.record(s, integration.id, DIRECTION, "subscribe", "ok", f"{room.email}: subscription {sub.id}")
    return sub.id


def _adopt(rt: Runtime, integration: Integration, room: Room) -> None:
    """`409`: a subscription on this resource already exists (e.g. we crashed between Graph's answer and our commit,
    or the database was restored). Its clientState is unknown to us and Graph can't change it (PATCH only extends
    the expiry), so notifications for it could never be verified: delete it, then create ours. The gap between the
    two is covered by the reconcile that follows a new subscription."""
    graph = rt.graph(integration)
    for existing in rt.run(graph.list_subscriptions()):
        if same_resource(existing["resource"], resource_of(room)):
            rt.run(graph.delete_subscription(existing["id"]))
            with session_scope(rt.engine) as s:
                journal.record(s, integration.id, DIRECTION, "adopt", "ok",
                               f"{room.email}: replaced subscription {existing['id']} that Graph already had "
                               f"(notification URL {existing['notification_url']})")


def _fall_back_to_polling(rt: Runtime, integration: Integration, room: Room, why: str, out: list[FollowUp]) -> None:
    with session_scope(rt.engine) as s:
        row = s.get(Room, room.id)
        if row is None:
            return
        first_time = not row.polling
        row.polling = True
        s.add(row)
        if first_time:
            journal.record(s, integration.id, DIRECTION, "subscribe", "error",
                           f"{room.email}: Graph refused a subscription ({why}); the room is polled instead")
    if first_time:
        out.append(ReconcileRoom(room.id))
        alerts.rooms_polling(rt.engine, rt.box, integration.id, [room.email], why)  # a person should look (11.8)


def renew(rt: Runtime, subscription_id: str, reauthorize: bool = False) -> list[FollowUp]:
    """PATCH the expiry (which also reauthorizes). One Graph no longer knows, or that expired, is replaced."""
    out: list[FollowUp] = []
    with session_scope(rt.engine) as s:
        sub = s.get(Subscription, subscription_id)
    if sub is None:
        return out
    with rt.locks.hold(f"subscription:{sub.room_id}"):
        if sub.status != "active":
            # Replaced already — or this is a retry after failing half-way: make sure the successor exists.
            _ensure(rt, sub.room_id, out, gap=True)
        else:
            _renew(rt, sub, reauthorize, out)
    return out


def _renew(rt: Runtime, sub: Subscription, reauthorize: bool, out: list[FollowUp]) -> None:
    now = utcnow()
    with session_scope(rt.engine) as s:
        row = s.get(Subscription, sub.id)
        integration = s.get(Integration, sub.integration_id)
    if row is None or row.status != "active" or integration is None:
        return
    if row.expires_at <= now:
        _replace(rt, row, "expired", out)
        return
    wait = patch_wait(row.renewed_at, row.reauthorized_at, now)
    if wait:
        if reauthorize:  # the challenge is honoured as soon as the 10-minute rule allows
            out.append(RenewLater(row.id, wait, reauthorize=True))
        return
    try:
        expires_at = rt.run(rt.graph(integration).renew_subscription(row.id, now + LIFETIME))
    except GraphNotFound:
        _replace(rt, row, "Graph no longer knows it", out)
        return
    with session_scope(rt.engine) as s:
        fresh = s.get(Subscription, row.id)
        if fresh is not None:
            fresh.expires_at, fresh.renewed_at = expires_at, utcnow()
            if reauthorize:
                fresh.reauthorized_at = fresh.renewed_at
            s.add(fresh)


def _replace(rt: Runtime, row: Subscription, why: str, out: list[FollowUp]) -> None:
    """The subscription is gone: a new one, then a reconcile for what happened in between."""
    _mark_removed(rt, row.id, why)
    _ensure(rt, row.room_id, out, gap=True)


def _mark_removed(rt: Runtime, subscription_id: str, why: str) -> Subscription | None:
    with session_scope(rt.engine) as s:
        row = s.get(Subscription, subscription_id)
        if row is None:
            return None
        if row.status != "removed":
            row.status = "removed"
            s.add(row)
            journal.record(s, row.integration_id, DIRECTION, "remove", "ok", f"subscription {subscription_id}: {why}")
        return row


def drop_subscriptions(rt: Runtime, integration: Integration, room_id: str, why: str) -> None:
    """Delete the room's subscriptions in Graph (404 counts as done) and mark them removed."""
    with session_scope(rt.engine) as s:
        ids = [r.id for r in s.exec(select(Subscription).where(Subscription.room_id == room_id,
                                                               Subscription.status == "active")).all()]
    for sub_id in ids:
        rt.run(rt.graph(integration).delete_subscription(sub_id))
        _mark_removed(rt, sub_id, why)


# --- lifecycle events -----------------------------------------------------------------------------------------------


def handle_lifecycle(rt: Runtime, subscription_id: str, event: str) -> list[FollowUp]:
    """SPEC §4 lifecycle events. Unknown ones are logged, never fatal."""
    out: list[FollowUp] = []
    with session_scope(rt.engine) as s:
        row = s.get(Subscription, subscription_id)
    if row is None:
        log.warning("lifecycle event for an unknown subscription", subscription_id=subscription_id,
                    lifecycle_event=event)
        return out
    if event == "reauthorizationRequired":
        return renew(rt, subscription_id, reauthorize=True)
    if event == "subscriptionRemoved":
        with rt.locks.hold(f"subscription:{row.room_id}"):
            if row.status == "active":
                _replace(rt, row, "removed by Graph", out)
            else:  # a retry after failing half-way: the successor may be missing
                _ensure(rt, row.room_id, out, gap=True)
    elif event == "missed":
        out.append(ReconcileRoom(row.room_id))
    else:
        log.warning("unknown lifecycle event ignored", subscription_id=subscription_id, lifecycle_event=event)
    return out
