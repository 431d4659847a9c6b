"""The failure policy of every job, as a dramatiq middleware (it replaces dramatiq's `Retries`).

A job that raises is, by the kind of error:
- **waiting** — throttling with Retry-After (`GraphThrottled`), the booking system unreachable (`BookingUnavailable`),
  a busy mailbox slot (`MailboxBusy`), a busy or lost meeting lock (`LockTimeout`, `LockLost`), an explicit
  `dramatiq.Retry`: enqueued again after the delay asked for. Waits don't use the retry budget; they are bounded in
  time instead (`wait_limit_s` from the first wait of the message). The first outage of the booking system per
  change is journaled (SPEC case 17).
- **final** — the booking system rejects the request (`BookingRejected`, `BookingConflict`), Graph refuses our
  credentials (`GraphAuthError`): journaled once, the message fails, no retry.
- **failing** — anything else: retried with exponential backoff (`min_backoff`..`max_backoff`), up to `retry_limit`
  times (the message's option, else its integration's `retry_limit`, else the setting); then the journal says the
  job gave up.

The journal entry goes to the job's integration, found from the argument named by the actor option `journal_by`
(`integration_id`, or `room_id` / `subscription_id`, looked up in the database), under the direction named by
`journal_direction`.
"""

from __future__ import annotations

import inspect
import re
import time
from typing import Any, TypeAlias

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.common import compute_backoff
from dramatiq.middleware import Middleware, Retries
from dramatiq.middleware import default_middleware as dramatiq_middleware
from sqlmodel import Session

from app.adapters.booking.client import BookingConflict, BookingRejected, BookingUnavailable
from app.adapters.graph.errors import GraphAuthError, GraphThrottled
from app.platform.db import session_scope
from app.platform.locks import LockTimeout
from app.platform.logging import get_logger
from app.platform.models import Integration, Room, Subscription
from app.platform.throttle import MailboxBusy
from app.sync import alerts, journal
from app.sync.runtime import current

log = get_logger("roombridge.jobs")

AnyActor: TypeAlias = dramatiq.Actor[..., Any]  # the policy serves every actor, whatever its parameters and result

RETRY_LIMIT = 10  # defaults of the settings `retry_limit` and `wait_limit_s` (the real values come from make_broker)
WAIT_LIMIT_S = 6 * 3600
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 5 * 60_000
BUSY_RETRY_MS = 250  # a busy mailbox slot or meeting lock frees up soon
REMOTE_RETRY_MS = 2_000  # throttled or unreachable without a Retry-After

WAITS = (GraphThrottled, BookingUnavailable, LockTimeout, MailboxBusy, dramatiq.Retry)
FINAL = (BookingRejected, BookingConflict, GraphAuthError)
# The worker logs these without a traceback when the actor declares them as `throws` (only the worker reads that
# option now: what happens to the message is decided here).
EXPECTED = (GraphThrottled, BookingUnavailable, LockTimeout, MailboxBusy, *FINAL)

GAVE_UP = "gave_up"
_SECRETISH = re.compile(r"(?i)\b(authorization|bearer|api[_-]?key|token|secret|password|client_secret)"
                        r"(\s*[=:]\s*|\s+)(?:(?:bearer|basic)\s+)?[^\s,;&\"']+")


def wait_delay_ms(exc: BaseException) -> int | None:
    """How long a waiting job waits before its next run; None if `exc` is not a wait."""
    if isinstance(exc, GraphThrottled | BookingUnavailable):
        return int((exc.retry_after or REMOTE_RETRY_MS / 1000) * 1000)
    if isinstance(exc, LockTimeout | MailboxBusy):
        return BUSY_RETRY_MS
    if isinstance(exc, dramatiq.Retry):
        return exc.delay if exc.delay is not None else MIN_BACKOFF_MS
    return None


def describe(exc: BaseException, limit: int = 300) -> str:
    """The error as the journal shows it: its type and message, credentials masked, bounded length."""
    text = _SECRETISH.sub(lambda m: f"{m.group(1)}{m.group(2)}***", str(exc)) or "(no message)"
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FailurePolicy(Middleware):
    """Waits, final errors and bounded retries of failures, each visible in the journal when it ends a job."""

    def __init__(self, *, retry_limit: int = RETRY_LIMIT, wait_limit_s: float = WAIT_LIMIT_S,
                 min_backoff_ms: int = MIN_BACKOFF_MS, max_backoff_ms: int = MAX_BACKOFF_MS) -> None:
        self.retry_limit = retry_limit
        self.wait_limit_s = wait_limit_s
        self.min_backoff_ms = min_backoff_ms
        self.max_backoff_ms = max_backoff_ms

    @property
    def actor_options(self) -> set[str]:
        # retry_limit/wait_limit_s/min_backoff/max_backoff may also be given per message (send_with_options).
        return {"journal_by", "journal_direction", "retry_limit", "wait_limit_s", "min_backoff", "max_backoff",
                "throws"}

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        if exception is None:
            if message.options.get("journaled"):
                self._resolve(message)
            return
        actor = broker.get_actor(message.actor_name)
        options = message.options

        def option(name: str, default: Any) -> Any:
            return options.get(name, actor.options.get(name, default))

        if isinstance(exception, FINAL):
            log.warning("job failed, not retried", job=actor.actor_name, error=describe(exception))
            self._journal(actor, message, "fail", describe(exception),
                          alert="graph_credentials" if isinstance(exception, GraphAuthError) else None)
            message.fail()
            return

        delay = wait_delay_ms(exception)
        if delay is not None:
            now_ms = int(time.time() * 1000)
            first = options.setdefault("first_wait_at", now_ms)
            options["waits"] = options.get("waits", 0) + 1
            waited_s = (now_ms - first) / 1000
            if waited_s > option("wait_limit_s", self.wait_limit_s):
                self._give_up(actor, message, exception, f"still waiting after {_duration(waited_s)}")
                return
            if isinstance(exception, BookingUnavailable) and not options.get("outage_journaled"):
                # An outage is news for the admin (SPEC case 17); its next waits for the same change are not.
                options["outage_journaled"] = True
                self._journal(actor, message, "wait", f"{exception}; the change waits and is retried")
            log.info("job waits", job=actor.actor_name, delay_ms=delay, waits=options["waits"],
                     reason=describe(exception))
            _enqueue_again(broker, message, delay)
            return

        failures = options.get("retries", 0)
        options["retries"] = failures + 1
        limit = option("retry_limit", None)
        if limit is None:
            limit = _integration_retry_limit(actor, message)
        if failures >= (self.retry_limit if limit is None else limit):
            self._give_up(actor, message, exception, "retries exhausted")
            return
        _, backoff = compute_backoff(failures, factor=option("min_backoff", self.min_backoff_ms),
                                     max_backoff=option("max_backoff", self.max_backoff_ms))
        log.info("job retried", job=actor.actor_name, attempt=failures + 1, delay_ms=backoff,
                 error=describe(exception))
        _enqueue_again(broker, message, backoff)

    # --- the journal ------------------------------------------------------------------------------------------------

    def _give_up(self, actor: AnyActor, message: MessageProxy, exc: BaseException, why: str) -> None:
        runs = message.options.get("retries", 0) + message.options.get("waits", 0)
        text = (f"job {actor.actor_name} gave up ({why}): {runs} run(s), {message.options.get('retries', 0)} "
                f"failed, {message.options.get('waits', 0)} waited; last error: {describe(exc)}")
        log.error("job gave up", job=actor.actor_name, message_id=message.message_id, detail=text)
        self._journal(actor, message, GAVE_UP, text, alert=GAVE_UP)
        message.fail()

    def _journal(self, actor: AnyActor, message: MessageProxy, action: str, text: str,
                 alert: str | None = None) -> None:
        """Journal the failure; `alert`: it needs a person, so the integration's alert webhook is told too (issue
        11.8, `app.sync.alerts`: at most once per problem per hour)."""
        args = _arguments(actor, message)
        direction = actor.options.get("journal_direction", actor.actor_name)
        try:
            engine = current().engine
            with session_scope(engine) as s:
                integration_id = _integration_of(s, actor.options.get("journal_by"), args)
                if integration_id is None:
                    log.error("job failure not journaled: no integration found", job=actor.actor_name,
                              action=action, detail=text)
                    return
                ids = {name: value if isinstance(value, str) else None
                       for name in ("loan_id", "room_id", "event_id") for value in [args.get(name)]}
                entry = journal.record(s, integration_id, direction, action, "error", text, **ids)
                s.flush()
                # Remembered with the message: when a later run goes through, the entry says it was resolved.
                message.options["journaled"] = [*message.options.get("journaled", []), entry.id]
        except Exception as e:  # noqa: BLE001 - the policy must decide the message's fate even without a journal
            log.error("job failure could not be journaled", job=actor.actor_name, action=action, detail=text,
                      error=describe(e))
            return
        if alert is not None:  # after the journal's transaction: the alert takes its own (a lease)
            rt = current()
            if alert == GAVE_UP:
                alerts.job_gave_up(rt.engine, rt.box, integration_id, actor.actor_name, text)
            else:
                alerts.graph_credentials_refused(rt.engine, rt.box, integration_id, text)


    def _resolve(self, message: MessageProxy) -> None:
        runs = message.options.get("retries", 0) + message.options.get("waits", 0) + 1
        try:
            with session_scope(current().engine) as s:
                journal.resolve(s, message.options["journaled"], f"the job went through at run {runs}")
        except Exception as e:  # noqa: BLE001 - the job itself succeeded; only the journal's bookkeeping failed
            log.warning("journal entries not marked resolved", error=describe(e))


def _arguments(actor: AnyActor, message: MessageProxy) -> dict[str, Any]:
    try:
        return dict(inspect.signature(actor.fn).bind_partial(*message.args, **message.kwargs).arguments)
    except TypeError:
        return {}


def _enqueue_again(broker: dramatiq.Broker, message: MessageProxy, delay: int) -> None:
    """Send the message being processed back to its queue after `delay` ms, options (retries, waits) included."""
    # dramatiq annotates Broker.enqueue with Message only, yet its own Retries middleware enqueues the MessageProxy
    # it is handed, as here: the proxy forwards every Message attribute to the message it wraps.
    broker.enqueue(message, delay=delay)  # type: ignore[arg-type]


def _integration_of(session: Session, journal_by: str | None, args: dict[str, Any]) -> str | None:
    """The integration a job works for, from the argument naming it, a room or a subscription."""
    value = args.get(journal_by) if journal_by else None
    if not isinstance(value, str):
        return None
    if journal_by == "integration_id":
        return value
    row: Room | Subscription | None
    if journal_by == "room_id":
        row = session.get(Room, value)
    elif journal_by == "subscription_id":
        row = session.get(Subscription, value)
    else:
        return None
    return row.integration_id if row is not None else None


def _integration_retry_limit(actor: AnyActor, message: MessageProxy) -> int | None:
    """The `retry_limit` of the job's integration (SPEC §2), None when it has none or cannot be read (then the
    deployment's setting applies: a database hiccup must not turn a failure into an endless retry, nor a give-up)."""
    try:
        with Session(current().engine) as s:
            integration_id = _integration_of(s, actor.options.get("journal_by"), _arguments(actor, message))
            integration = s.get(Integration, integration_id) if integration_id is not None else None
            return integration.retry_limit if integration is not None else None
    except Exception as e:  # noqa: BLE001 - see above
        log.warning("retry limit of the integration not read", job=actor.actor_name, error=describe(e))
        return None


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def broker_middleware(**policy: Any) -> list[Middleware]:
    """dramatiq's default middleware, with `FailurePolicy(**policy)` in place of `Retries`."""
    return [m() for m in dramatiq_middleware if m is not Retries] + [FailurePolicy(**policy)]
