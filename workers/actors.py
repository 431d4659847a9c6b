"""The jobs. Each is idempotent (at-least-once delivery: a killed worker's job runs again) and short.

Throttling is waited out by the queue, not by a sleeping worker: a `GraphThrottled`/`BookingUnavailable` becomes
`dramatiq.Retry(delay=Retry-After)`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

from app.adapters.booking.client import BookingConflict, BookingRejected, BookingUnavailable
from app.adapters.graph.errors import GraphAuthError, GraphThrottled
from app.core.followups import FollowUp, ReconcileRoom, RenewLater
from app.platform import hints
from app.platform.db import session_scope
from app.platform.locks import LockTimeout
from app.platform.logging import get_logger
from app.platform.throttle import MailboxBusy
from app.sync import booking_to_outlook, journal, outlook_to_booking, reconcile, rooms, subscriptions
from app.sync.runtime import current

log = get_logger("roombridge.jobs")

# Actors are declared at import on a placeholder broker, so that importing them never connects anywhere;
# `workers.broker.bind` moves them to the real one.
if dramatiq.broker.global_broker is None:
    dramatiq.set_broker(StubBroker())

MAX_RETRIES = 10  # then the journal holds the error (bounded retries, as the seed products do)
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 5 * 60_000
TIME_LIMIT_MS = 5 * 60_000


class _Retryable:
    """Failure policy of a job.

    'Come back later' failures (throttling, an unreachable remote, a busy meeting lock) become a queue retry with the
    delay the remote asked for. Failures that a retry cannot fix (a request the booking system rejects, credentials
    Graph refuses) are written to the journal of `integration_id` and end the job. Anything else is retried with
    backoff by dramatiq, up to MAX_RETRIES.
    """

    def __init__(self, integration_id: str | None = None, what: str = "job") -> None:
        self.integration_id = integration_id
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, GraphThrottled | BookingUnavailable):
            delay_s = exc.retry_after or 2.0
            log.warning("remote busy, job retried", error=str(exc), retry_after_s=delay_s)
            if isinstance(exc, BookingUnavailable) and self.integration_id and _first_attempt():
                # An outage is news for the admin (SPEC case 17); the retries after the first are not.
                with session_scope(current().engine) as s:
                    journal.record(s, self.integration_id, self.what, "wait", "error",
                                   f"{exc}; the change waits and is retried")
            raise dramatiq.Retry(delay=int(delay_s * 1000)) from None
        if isinstance(exc, LockTimeout | MailboxBusy):
            raise dramatiq.Retry(delay=BUSY_RETRY_MS) from None
        if isinstance(exc, BookingRejected | BookingConflict | GraphAuthError) and self.integration_id:
            with session_scope(current().engine) as s:
                journal.record(s, self.integration_id, self.what, "fail", "error", str(exc))
            return True
        return False


def _first_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    return message is None or not message.options.get("retries")


MAX_WAITS = 500  # 'come back later' retries (throttling, busy mailbox) are waits, not failures
BUSY_RETRY_MS = 250


def _should_retry(retries: int, exc: BaseException) -> bool:
    if isinstance(exc, dramatiq.Retry):
        return retries < MAX_WAITS
    return retries < MAX_RETRIES


OPTIONS = dict(retry_when=_should_retry, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS,
               time_limit=TIME_LIMIT_MS)


@dramatiq.actor(queue_name="hints", **OPTIONS)
def process_room_event(integration_id: str, room_id: str, event_id: str, change_type: str) -> None:
    # Hints arriving from now on get a job of their own: this one may read Graph before their change.
    current().hints.release(hints.key(room_id, event_id))
    with _Retryable(integration_id, outlook_to_booking.DIRECTION):
        outlook_to_booking.process_room_event(current(), integration_id, room_id, event_id)


@dramatiq.actor(queue_name="admin", **OPTIONS)
def import_rooms(integration_id: str) -> None:
    room_ids: list[str] = []
    with _Retryable(integration_id, rooms.DIRECTION):
        room_ids = rooms.import_rooms(current(), integration_id)
    for room_id in room_ids:
        ensure_subscription.send(room_id)


@dramatiq.actor(queue_name="admin", **OPTIONS)
def ensure_subscription(room_id: str) -> None:
    with _Retryable():
        _sub_id, followups = subscriptions.ensure_subscription(current(), room_id)
        dispatch(followups)


@dramatiq.actor(queue_name="admin", **OPTIONS)
def handle_lifecycle(subscription_id: str, event: str) -> None:
    with _Retryable():
        dispatch(subscriptions.handle_lifecycle(current(), subscription_id, event))


@dramatiq.actor(queue_name="hints", **OPTIONS)
def reconcile_room(room_id: str, full: bool = False, since: str | None = None) -> None:
    with _Retryable():
        reconcile.reconcile_room(current(), room_id, full=full,
                                 since=datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None)


@dramatiq.actor(queue_name="admin", **OPTIONS)
def reconcile_loans(integration_id: str, since: str | None = None) -> None:
    with _Retryable(integration_id, "reconcile"):
        reconcile.reconcile_loans(current(), integration_id,
                                  since=datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None)


def send_event_hint(integration_id: str, room_id: str, event_id: str, change_type: str) -> bool:
    """Enqueue one read for a burst of hints about the same event (SPEC §6); False if one is already pending."""
    return _send_coalesced(process_room_event, hints.key(room_id, event_id),
                           (integration_id, room_id, event_id, change_type))


def _send_coalesced(actor: dramatiq.Actor, key: str, args: tuple) -> bool:
    """Enqueue `actor(*args)` after the coalescing window, unless a job for `key` is already pending."""
    gate = current().hints
    if not gate.claim(key):
        return False
    try:
        actor.send_with_options(args=args, delay=gate.window_ms or None)
    except BaseException:
        gate.release(key)  # not enqueued: the next hint must not be swallowed by a stale mark
        raise
    return True


@dramatiq.actor(queue_name="admin", **OPTIONS)
def renew_subscription(subscription_id: str, reauthorize: bool = False) -> None:
    with _Retryable():
        dispatch(subscriptions.renew(current(), subscription_id, reauthorize=reauthorize))


@dramatiq.actor(queue_name="hints", **OPTIONS)
def process_loan(integration_id: str, loan_id: str) -> None:
    # Hooks arriving from now on get a job of their own: this one may read the loan before their change.
    current().hints.release(booking_to_outlook.hint_key(integration_id, loan_id))
    with _Retryable(integration_id, booking_to_outlook.DIRECTION):
        booking_to_outlook.process_loan(current(), integration_id, loan_id)


def send_loan_hint(integration_id: str, loan_id: str) -> bool:
    """Enqueue one re-read for a burst of reverse hooks about the same loan (SPEC §7); False if one is pending."""
    return _send_coalesced(process_loan, booking_to_outlook.hint_key(integration_id, loan_id),
                           (integration_id, loan_id))


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


ALL = [process_room_event, import_rooms, ensure_subscription, handle_lifecycle, reconcile_room, renew_subscription,
       process_loan, reconcile_loans]
