"""Periodic work (SPEC §9): rooms import, subscription renewals, reconciliation — enqueued as jobs, by exactly one
active scheduler at a time.

`roombridge scheduler` runs this with Redis; in embedded mode `roombridge serve` runs it in-process. Several may run
(for availability): a lease in the database (`leases.py`) makes one active, the others stand by and take over
within the lease's TTL when it dies. What is due is read from the database each tick (expiry dates, last import,
last reconcile), so a restart or a takeover loses nothing; the jobs themselves are idempotent, so a job enqueued
twice (e.g. across a takeover) is harmless. A per-process memo only keeps one scheduler from re-enqueueing work
that is still waiting in the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import Session, col, select

from app.platform import leases
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import Integration, Room, Subscription, utcnow
from app.sync import journal
from app.sync.runtime import Runtime
from app.sync.subscriptions import renewal_due
from app.workers import actors
from app.workers.catchup import RedisMarker

LEASE_NAME = "scheduler"
LEASE_TTL = timedelta(seconds=30)
TICK = timedelta(minutes=1)  # how often what is due is looked at; each kind of work has its own period
IMPORT_EVERY = timedelta(hours=6)  # SPEC §3
RECONCILE_EVERY = timedelta(hours=6)  # every room, even subscribed: notifications are hints and can be lost
POLL_EVERY = timedelta(minutes=5)  # rooms Graph refused to subscribe
LOANS_EVERY = timedelta(minutes=15)  # booking side: loans changed since the last round (lost reverse hooks)
RENEW_CHECK_EVERY = timedelta(minutes=5)
# A room without a subscription, polled ones included: Graph may accept it now (a refusal can be transient, e.g. our
# own endpoint failing Graph's validation handshake while it starts).
SUBSCRIBE_RETRY = timedelta(minutes=10)
# Scale-out: how often the active scheduler checks that Redis still holds the bridge's marker (catchup.RedisMarker).
MARKER_EVERY = timedelta(seconds=5)
log = get_logger("roombridge.scheduler")


# --- what is due (reads the database, decides nothing else) ---------------------------------------------------------


def older_than(at: datetime | None, period: timedelta, now: datetime) -> bool:
    return at is None or now - at >= period


@dataclass
class Due:
    imports: list[str] = field(default_factory=list)  # integration ids
    renewals: list[str] = field(default_factory=list)  # subscription ids (expired ones included: they get replaced)
    subscribe: list[str] = field(default_factory=list)  # room ids without a live subscription
    retry_polling: list[str] = field(default_factory=list)  # polled room ids: try subscribing again
    poll: list[str] = field(default_factory=list)  # polled room ids to reconcile
    reconcile: list[str] = field(default_factory=list)  # subscribed room ids due for their periodic reconcile
    loans: list[str] = field(default_factory=list)  # integration ids due for a booking-side reconcile


def due_work(session: Session, now: datetime) -> Due:
    due = Due()
    enabled = session.exec(select(Integration).where(col(Integration.enabled).is_(True))).all()
    due.imports = [i.id for i in enabled if older_than(i.rooms_synced_at, IMPORT_EVERY, now)]
    due.loans = [i.id for i in enabled if older_than(i.loans_synced_at, LOANS_EVERY, now)]
    enabled_ids = [i.id for i in enabled]
    rooms = session.exec(select(Room).where(col(Room.active).is_(True),
                                            col(Room.integration_id).in_(enabled_ids))).all()
    subs = session.exec(select(Subscription).where(Subscription.status == "active",
                                                   col(Subscription.integration_id).in_(enabled_ids))).all()
    room_ids = {r.id for r in rooms}
    with_rows = {s.room_id for s in subs}  # an expired-but-active row is replaced by its renewal job
    due.renewals = [s.id for s in subs if s.room_id in room_ids
                    and renewal_due(s.renewed_at or s.created_at, s.expires_at, now)]
    for room in rooms:
        if room.polling:
            due.retry_polling.append(room.id)
            if older_than(room.reconciled_at, POLL_EVERY, now):
                due.poll.append(room.id)
        else:
            if room.id not in with_rows:
                due.subscribe.append(room.id)
            if older_than(room.reconciled_at, RECONCILE_EVERY, now):
                due.reconcile.append(room.id)
    return due


class Memo:
    """What this process enqueued recently, so that work still waiting in the queue is not enqueued again."""

    def __init__(self) -> None:
        self._sent: dict[str, datetime] = {}

    def fresh(self, keys: list[str], kind: str, gap: timedelta, now: datetime) -> list[str]:
        chosen = [k for k in keys if older_than(self._sent.get(f"{kind}:{k}"), gap, now)]
        for k in chosen:
            self._sent[f"{kind}:{k}"] = now
        return chosen


def tick(rt: Runtime, memo: Memo, now: datetime | None = None) -> dict[str, int]:
    """Enqueue what is due; returns how many jobs of each kind were sent."""
    now = now or utcnow()
    with Session(rt.engine) as s:
        due = due_work(s, now)
    plan: list[tuple[str, list[str], Callable[[str], object]]] = [
        ("import", memo.fresh(due.imports, "import", timedelta(hours=1), now), actors.import_rooms.send),
        ("renew", memo.fresh(due.renewals, "renew", RENEW_CHECK_EVERY, now), actors.renew_subscription.send),
        ("subscribe", memo.fresh(due.subscribe, "subscribe", SUBSCRIBE_RETRY, now)
         + memo.fresh(due.retry_polling, "subscribe", SUBSCRIBE_RETRY, now), actors.ensure_subscription.send),
        ("reconcile", memo.fresh(due.poll, "poll", POLL_EVERY, now)
         + memo.fresh(due.reconcile, "reconcile", RECONCILE_EVERY, now), actors.reconcile_room.send),
        ("loans", memo.fresh(due.loans, "loans", LOANS_EVERY, now), actors.reconcile_loans.send),
    ]
    if memo.fresh(["journal"], "purge", timedelta(hours=1), now):
        with session_scope(rt.engine) as s:  # the journal's retention (issue 10)
            purged = journal.purge(s, rt.settings.journal_retention_days, now)
        if purged:
            log.info("journal entries purged", count=purged, retention_days=rt.settings.journal_retention_days)
    sent: dict[str, int] = {}
    for kind, keys, send in plan:
        for key in keys:
            send(key)
        sent[kind] = len(keys)
    if any(sent.values()):
        log.info("periodic jobs enqueued", **sent)
    return sent


# --- the process-level scheduler ------------------------------------------------------------------------------------


class Scheduler:
    """APScheduler in a background thread: a lease job (standbys retry often, the active one renews every TTL/3) and
    the tick, which does nothing unless this process holds the lease."""

    def __init__(self, rt: Runtime, lease_ttl: timedelta = LEASE_TTL, tick_every: timedelta = TICK) -> None:
        self.rt = rt
        self.holder = leases.holder_id()
        self.ttl = lease_ttl
        self.tick_every = tick_every
        self.memo = Memo()
        self.marker = RedisMarker(rt.redis, rt.settings.redis_namespace) if rt.redis is not None else None
        self._valid_until = 0.0  # monotonic time until which our lease is certainly ours
        self._renewed = 0.0
        self._ever_held = False
        # A job must never call into APScheduler once `stop()` has begun: its `shutdown(wait=True)` holds the job
        # store lock while it waits for running jobs, so a job calling `modify_job` then would wait for that lock
        # forever (a deadlock, seen when a standby took the lease as it was being stopped).
        self._stopping = False
        self._control = threading.Lock()
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every run of every job at INFO
        self._aps = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})

    @property
    def active(self) -> bool:
        return time.monotonic() < self._valid_until

    def start(self) -> Scheduler:
        standby_retry = max(self.ttl.total_seconds() / 15, 0.2)
        self._aps.add_job(self._keep_lease, "interval", seconds=standby_retry, id="lease",
                          next_run_time=datetime.now(UTC))
        self._aps.add_job(self._tick, "interval", seconds=self.tick_every.total_seconds(), id="tick")
        if self.marker is not None:
            self._aps.add_job(self._check_marker, "interval", seconds=MARKER_EVERY.total_seconds(), id="marker")
        self._aps.start()
        log.info("scheduler started", holder=self.holder, lease_ttl_s=self.ttl.total_seconds())
        return self

    def stop(self) -> None:
        with self._control:
            self._stopping = True
        if self._aps.running:
            self._aps.shutdown(wait=True)  # waits for a lease job in flight: it may still take the lease...
        if self._ever_held:  # ... so release whenever we held it, even if our own view of it has lapsed
            try:
                leases.release(self.rt.engine, LEASE_NAME, self.holder)
                log.info("scheduler lease released", holder=self.holder)
            except Exception as e:  # noqa: BLE001 - the database may be away: the lease then lapses by itself
                log.warning("scheduler lease release failed", error=type(e).__name__)
            self._ever_held = False
        self._valid_until = 0.0

    def _keep_lease(self) -> None:
        was_active = self.active
        if was_active and time.monotonic() - self._renewed < self.ttl.total_seconds() / 3:
            return
        started = time.monotonic()
        try:
            held = leases.acquire(self.rt.engine, LEASE_NAME, self.holder, self.ttl)
            if not held:
                # A holder that was a process of this host and is gone (SIGKILL, a crash, the previous run of this
                # container) blocks nobody: take over now rather than after its TTL.
                found = leases.current_holder(self.rt.engine, LEASE_NAME)
                if found is not None and leases.holder_is_dead(found[0]):
                    held = leases.acquire(self.rt.engine, LEASE_NAME, self.holder, self.ttl, replacing=found[0])
                    if held:
                        log.info("scheduler lease taken over from a dead process", previous=found[0])
        except Exception as e:  # noqa: BLE001 - the database may be briefly away; the lease then lapses by itself
            log.warning("scheduler lease check failed", error=type(e).__name__)
            return
        if held:
            # Counted from before the write: the lease may have been stored up to that long ago.
            self._renewed, self._valid_until = started, started + self.ttl.total_seconds() * 0.9
            self._ever_held = True
            if not was_active:
                log.info("scheduler active", holder=self.holder)
                if self.marker is not None:
                    self.marker.forget()  # another scheduler may have written it meanwhile: adopt, don't compare
                with self._control:  # see __init__: never while stop() shuts APScheduler down
                    if not self._stopping:
                        self._aps.modify_job("tick", next_run_time=datetime.now(UTC))  # first tick: recover at once
        else:
            self._valid_until = 0.0
            if was_active:
                log.warning("scheduler lease lost: standing by", holder=self.holder)

    def _tick(self) -> None:
        if not self.active:
            return
        try:
            tick(self.rt, self.memo)
        except Exception:  # one failed tick must not stop the next
            log.exception("scheduler tick failed")


    def _check_marker(self) -> None:
        if not self.active or self.marker is None:
            return
        try:
            self.marker.check(self.rt)
        except Exception as e:  # noqa: BLE001 - Redis or the database away: the next check tries again
            log.warning("Redis marker check failed", error=type(e).__name__)


def lease_status(rt: Runtime) -> dict[str, object]:
    """For the status API: who holds the scheduler lease, and until when."""
    found = leases.current_holder(rt.engine, LEASE_NAME)
    if found is None:
        return {"holder": None, "expires_at": None, "active": False}
    holder, expires_at = found
    return {"holder": holder, "expires_at": expires_at.isoformat() if isinstance(expires_at, datetime) else None,
            "active": isinstance(expires_at, datetime) and expires_at > utcnow()}
