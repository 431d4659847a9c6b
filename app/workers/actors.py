"""The jobs. Each is idempotent (at-least-once delivery: a killed worker's job runs again) and short.

What happens when a job raises (waits, retries, the journal) is the broker's failure policy (workers/failures.py):
each actor only says, by its options, which argument identifies its integration and under which direction its
failures are journaled.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

from app.core.followups import FollowUp, ReconcileRoom, RenewLater
from app.core.graph import GraphRoom
from app.platform import hints
from app.platform.locks import WriteInFlight
from app.platform.logging import get_logger
from app.sync import booking_to_outlook, outlook_to_booking, reconcile, rooms, subscriptions
from app.sync.runtime import current
from app.workers import failures

log = get_logger("roombridge.jobs")

# Actors are declared at import on a placeholder broker, so that importing them never connects anywhere;
# `app.workers.broker.bind` moves them to the real one. It has the failure policy, whose actor options they use.
if dramatiq.broker.global_broker is None:
    dramatiq.set_broker(StubBroker(middleware=failures.broker_middleware()))

TIME_LIMIT_MS = 5 * 60_000


def _options(journal_by: str, journal_direction: str) -> dict[str, Any]:
    return dict(journal_by=journal_by, journal_direction=journal_direction, time_limit=TIME_LIMIT_MS,
                throws=failures.EXPECTED)


@dramatiq.actor(queue_name="hints", **_options("integration_id", outlook_to_booking.DIRECTION))
def process_room_event(integration_id: str, room_id: str, event_id: str, change_type: str) -> None:
    # Hints arriving from now on get a job of their own: this one may read Graph before their change.
    current().hints.release(hints.key(room_id, event_id))
    try:
        outlook_to_booking.process_room_event(current(), integration_id, room_id, event_id)
    except WriteInFlight as e:
        if e.loan_id:
            # The loan's job writing this meeting's event may be gone with its retry: run it again (coalesced with
            # one already pending; the write is replayed under its key). This job waits and comes back after it.
            send_loan_hint(integration_id, e.loan_id)
        raise


@dramatiq.actor(queue_name="admin", **_options("integration_id", rooms.DIRECTION))
def import_rooms(integration_id: str) -> None:
    """The listing of a rooms import: one `import_rooms_page` job per page of rooms (SPEC §3, sync/rooms.py)."""
    message = CurrentMessage.get_current_message()
    run_id = message.message_id if message is not None else str(uuid.uuid4())  # a retry is the same run

    def send_page(page: int, listed: list[GraphRoom]) -> None:
        import_rooms_page.send(integration_id, run_id, page, [rooms.room_to_json(r) for r in listed])

    rooms.list_for_import(current(), integration_id, run_id, send_page)


@dramatiq.actor(queue_name="admin", **_options("integration_id", rooms.DIRECTION))
def import_rooms_page(integration_id: str, run_id: str, page: int, listed: list[dict[str, Any]]) -> None:
    _ids, followups = rooms.import_page(current(), integration_id, run_id, page,
                                        [rooms.room_of_json(r) for r in listed])
    dispatch(followups)


@dramatiq.actor(queue_name="admin", **_options("room_id", subscriptions.DIRECTION))
def ensure_subscription(room_id: str) -> None:
    _sub_id, followups = subscriptions.ensure_subscription(current(), room_id)
    dispatch(followups)


@dramatiq.actor(queue_name="admin", **_options("subscription_id", subscriptions.DIRECTION))
def handle_lifecycle(subscription_id: str, event: str) -> None:
    dispatch(subscriptions.handle_lifecycle(current(), subscription_id, event))


@dramatiq.actor(queue_name="hints", **_options("room_id", "reconcile"))
def reconcile_room(room_id: str, full: bool = False, since: str | None = None) -> None:
    reconcile.reconcile_room(current(), room_id, full=full,
                             since=datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None)


@dramatiq.actor(queue_name="admin", **_options("integration_id", "reconcile"))
def reconcile_loans(integration_id: str, since: str | None = None) -> None:
    reconcile.reconcile_loans(current(), integration_id,
                              since=datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None)


def send_event_hint(integration_id: str, room_id: str, event_id: str, change_type: str, tag: str = "") -> bool:
    """Enqueue one read for a burst of hints about the same event (SPEC §6); False if one is already pending or the
    hint repeats the change (`tag`: its `@odata.etag`) a started job reads."""
    return _send_coalesced(process_room_event, hints.key(room_id, event_id),
                           (integration_id, room_id, event_id, change_type), tag)


def _send_coalesced(actor: failures.AnyActor, key: str, args: tuple[str, ...], tag: str = "") -> bool:
    """Enqueue `actor(*args)` unless a job for `key` is pending (platform/hints.py): at once for a tagged hint, after
    the coalescing window otherwise."""
    gate = current().hints
    if not gate.claim(key, tag):
        return False
    try:
        actor.send_with_options(args=args, delay=gate.delay_ms(tag))
    except BaseException:
        gate.forget(key)  # not enqueued: the next hint must not be swallowed by a stale mark
        raise
    return True


@dramatiq.actor(queue_name="admin", **_options("subscription_id", subscriptions.DIRECTION))
def renew_subscription(subscription_id: str, reauthorize: bool = False) -> None:
    dispatch(subscriptions.renew(current(), subscription_id, reauthorize=reauthorize))


@dramatiq.actor(queue_name="hints", **_options("integration_id", booking_to_outlook.DIRECTION))
def process_loan(integration_id: str, loan_id: str) -> None:
    # Hooks arriving from now on get a job of their own: this one may read the loan before their change.
    current().hints.release(booking_to_outlook.hint_key(integration_id, loan_id))
    booking_to_outlook.process_loan(current(), integration_id, loan_id)


def send_loan_hint(integration_id: str, loan_id: str, tag: str = "") -> bool:
    """Enqueue one re-read for a burst of reverse hooks about the same loan (SPEC §7); False if one is pending or
    the hook repeats the loan version (`tag`) a started job reads."""
    return _send_coalesced(process_loan, booking_to_outlook.hint_key(integration_id, loan_id),
                           (integration_id, loan_id), tag)


def dispatch(followups: list[FollowUp]) -> None:
    """Enqueue the follow-up work a sync step asked for."""
    for f in followups:
        if isinstance(f, ReconcileRoom):
            reconcile_room.send(f.room_id)
        elif isinstance(f, RenewLater):
            renew_subscription.send_with_options(args=(f.subscription_id, f.reauthorize),
                                                 delay=int(f.delay.total_seconds() * 1000))
        else:
            ensure_subscription.send(f.room_id)


ALL: list[failures.AnyActor] = [process_room_event, import_rooms, import_rooms_page, ensure_subscription,
                                handle_lifecycle, reconcile_room, renew_subscription, process_loan, reconcile_loans]
