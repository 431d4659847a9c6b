"""Prometheus metrics (GET /metrics).

Two kinds, each correct with several processes:
- **events counted where they happen** (notifications, hooks, jobs and their duration): prometheus-client counters and
  histograms. With several processes on one host, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by
  them (before they start): every process writes its samples there and `/metrics` adds them up (prometheus-client's
  multiprocess mode). Without it each process reports its own (one process: the embedded default).
- **state** (queue depth and the oldest waiting change, subscriptions by state and seconds to the nearest expiry,
  rooms polled, open journal errors): read from the database — shared by every process — when `/metrics` is
  scraped (`StateCollector`), so any process answers for all of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from app.platform.models import JournalEntry, Room, Subscription

NOTIFICATIONS = Counter("roombridge_notifications_total", "Graph notification items received", ["kind", "outcome"])
HOOKS = Counter("roombridge_hooks_total", "Booking reverse hooks received", ["outcome"])
JOBS = Counter("roombridge_jobs_total", "Jobs run, by actor and outcome (ok, failed: retried or given up later)",
               ["actor", "outcome"])
GRAPH_CALLS = Counter("roombridge_graph_calls_total",
                      "Microsoft Graph calls by operation and HTTP status (429: throttled; 0: unreachable)",
                      ["operation", "status"])
BOOKING_CALLS = Counter("roombridge_booking_calls_total",
                        "Booking API calls by operation and HTTP status (0: unreachable or timed out)",
                        ["operation", "status"])
JOB_SECONDS = Histogram("roombridge_job_duration_seconds", "Duration of one run of a job", ["actor"],
                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
CHANGE_LATENCY = Histogram("roombridge_change_latency_seconds",
                           "From a change's hint (the job that wrote it enqueued: a notification, a hook, a "
                           "reconciliation round) to its write on the other side, by direction",
                           ["direction"], buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600))
# When the hint of the job this thread runs arrived (epoch seconds): its dramatiq message's timestamp, set around
# each job by `JobMetrics`. None outside a job (a CLI backfill, a test calling a flow directly): nothing observed.
_hint_at: ContextVar[float | None] = ContextVar("roombridge_hint_at", default=None)


def change_written(direction: str) -> None:
    """A change was written on the other side (`direction`: outlook_to_booking | booking_to_outlook): observe the
    time since its hint arrived, when it was written by a job."""
    at = _hint_at.get()
    if at is not None:
        CHANGE_LATENCY.labels(direction).observe(max(0.0, time.time() - at))


class JobMetrics(Middleware):
    """Counts each run of each job by outcome and times it; while it runs, `change_written` knows when its hint
    arrived (the message's enqueue time, kept by dramatiq across retries)."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        message.options["_metrics_started"] = time.monotonic()
        stamp = getattr(message, "message_timestamp", None)
        _hint_at.set(stamp / 1000 if isinstance(stamp, int | float) and stamp > 0 else None)

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        started = message.options.pop("_metrics_started", None)
        _hint_at.set(None)
        JOBS.labels(message.actor_name, "ok" if exception is None else "failed").inc()
        if isinstance(started, float):
            JOB_SECONDS.labels(message.actor_name).observe(time.monotonic() - started)

    after_skip_message = after_process_message


class StateCollector(Collector):
    """Gauges read from the database at scrape time (the same for every process)."""

    def __init__(self, engine: Callable[[], Engine], queued: Callable[[], int | None]) -> None:
        self.engine = engine
        self.queued = queued

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        with Session(self.engine()) as s:
            subs = GaugeMetricFamily("roombridge_subscriptions", "Graph subscriptions by state", labels=["state"])
            for state, n in s.exec(select(Subscription.status, func.count()).group_by(col(Subscription.status))):
                subs.add_metric([state], n)
            yield subs
            nearest = s.exec(select(func.min(Subscription.expires_at)).where(
                col(Subscription.status) == "active")).one()
            expiry = GaugeMetricFamily("roombridge_subscription_nearest_expiry_seconds",
                                       "Seconds until the nearest expiry of an active subscription (-1: none)")
            if nearest is not None and nearest.tzinfo is None:
                nearest = nearest.replace(tzinfo=UTC)
            expiry.add_metric([], (nearest - now).total_seconds() if nearest is not None else -1)
            yield expiry
            polled = s.exec(select(func.count()).select_from(Room).where(col(Room.active), col(Room.polling))).one()
            yield GaugeMetricFamily("roombridge_rooms_polled", "Active rooms synced by polling (no subscription)",
                                    value=polled)
            errors = s.exec(select(func.count()).select_from(JournalEntry).where(
                col(JournalEntry.status) == "error", col(JournalEntry.action) != "wait")).one()
            yield GaugeMetricFamily("roombridge_journal_open_errors", "Journal errors nobody resolved or handled",
                                    value=errors)
            waiting = s.exec(select(func.count(), func.min(JournalEntry.at)).where(
                col(JournalEntry.status) == "error", col(JournalEntry.action) == "wait")).one()
            yield GaugeMetricFamily("roombridge_changes_waiting", "Changes waiting (e.g. the booking system down)",
                                    value=waiting[0])
            oldest = waiting[1]
            if oldest is not None and oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            yield GaugeMetricFamily("roombridge_oldest_waiting_change_seconds",
                                    "Age of the oldest waiting change (0: none)",
                                    value=(now - oldest).total_seconds() if oldest is not None else 0)
        queued = self.queued()
        if queued is not None:
            yield GaugeMetricFamily("roombridge_queue_depth", "Jobs waiting in the queue", value=queued)


def exposition(state: StateCollector | None) -> bytes:
    """The /metrics body: this process's (or, in multiprocess mode, every process's) samples, plus the state."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    body = generate_latest(registry)
    if state is not None:
        extra = CollectorRegistry()
        extra.register(state)
        body += generate_latest(extra)
    return body
