"""The job queue: dramatiq on Redis when REDIS_URL is set, else an in-process broker and worker (embedded mode).

The same actors (workers/actors.py) run in both modes; this module only builds the broker and binds them to it.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis
from dramatiq.middleware import CurrentMessage, Middleware

from app.platform.logging import request_id_var
from app.platform.metrics import JobMetrics
from app.platform.settings import Settings
from app.workers import actors
from app.workers.failures import broker_middleware

# A killed worker's messages come back after this (dramatiq's default is 60 s and a rare maintenance pass).
HEARTBEAT_TIMEOUT_MS = 30_000
MAINTENANCE_CHANCE = 10_000  # per million broker calls: 1 %
# An idle Redis consumer backs off up to this before it looks at its queue again: it is the wait a job enqueued into
# an idle queue may sit there (issue 9.4: 200 ms cost up to 200 ms per hop; 25 ms costs ≤ 40 Redis calls/s per idle
# queue and process).
WORKER_TIMEOUT_MS = 25
# Queues nobody waits on for a fast answer are looked at less often when idle: every idle consumer's look is a Redis
# script, and 4 consumers × 40 looks/s were ~15 % of a busy worker's CPU in bench workers (issue 9.2). A delayed job
# (a coalesced hint, a retry) moves to its queue within its delay queue's interval.
IDLE_POLL_MS = {"hints.DQ": 50, "admin": 200, "admin.DQ": 200}


class _RedisBroker(RedisBroker):
    """dramatiq's RedisBroker, each queue's consumer with its own idle interval (`IDLE_POLL_MS`)."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> dramatiq.Consumer:
        return super().consume(queue_name, prefetch, IDLE_POLL_MS.get(queue_name, timeout))


class RequestId(Middleware):
    """Carry the request id from the webhook that enqueued a job into the logs of the worker that runs it."""

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int) -> None:
        rid = request_id_var.get()
        if rid and "request_id" not in message.options:
            message.options["request_id"] = rid

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        request_id_var.set(message.options.get("request_id"))

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        request_id_var.set(None)

    after_skip_message = after_process_message


def make_broker(settings: Settings) -> dramatiq.Broker:
    # dramatiq's Retries is replaced by the failure policy (waits bounded in time, failures by `retry_limit`).
    middleware = broker_middleware(retry_limit=settings.retry_limit, wait_limit_s=settings.wait_limit_s)
    middleware.append(JobMetrics())  # jobs by actor and outcome, their duration (app/platform/metrics.py)
    broker: dramatiq.Broker
    if settings.redis_url:
        # dramatiq's RedisBroker.__init__ has no annotations (the rest of dramatiq is typed).
        broker = _RedisBroker(url=settings.redis_url, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,  # type: ignore[no-untyped-call]
                             maintenance_chance=MAINTENANCE_CHANCE, namespace=settings.redis_namespace,
                             middleware=middleware)
    else:
        broker = StubBroker(middleware=middleware)
        broker.add_middleware(DelayedJobs())
    broker.add_middleware(RequestId())
    broker.add_middleware(CurrentMessage())  # lets a job know which message it runs
    return broker


def bind(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Make `broker` the global one and declare every actor on it."""
    dramatiq.set_broker(broker)
    for actor in actors.ALL:
        actor.broker = broker
        broker.declare_actor(actor)
    return broker


def start_worker(broker: dramatiq.Broker, threads: int) -> dramatiq.Worker:
    # Without process_boot, TimeLimit (and other middleware) silently do nothing (STACK-NOTES).
    broker.emit_after("process_boot")
    # Everything imported so far (msgraph-sdk alone is ~100,000 objects) lives as long as the process: out of the
    # collector's sight, a full collection no longer scans it (in bench workers one took 0.4 s of a worker's CPU,
    # every thread stopped meanwhile; collections were ~12 % of a worker's CPU).
    gc.freeze()
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=WORKER_TIMEOUT_MS)
    worker.start()
    return worker


class DelayedJobs(Middleware):
    """The due time of every delayed job of the in-process broker (a coalesced hint, a retry after a back-off, a
    subscription renewal minutes away), so that a drain waits for the ones due before it ends and not for the rest."""

    def __init__(self) -> None:
        self._due: dict[str, int] = {}  # message id → epoch ms
        self._guard = threading.Lock()

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int) -> None:
        if delay:
            with self._guard:
                self._due[message.message_id] = current_millis() + delay

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        with self._guard:
            due = self._due.get(message.message_id)
            # A failed job may have been enqueued again with a new delay just now (the failure policy runs first).
            if due is not None and due <= current_millis():
                del self._due[message.message_id]

    after_skip_message = after_process_message

    def due_before(self, epoch_ms: int) -> int:
        with self._guard:
            return sum(1 for due in self._due.values() if due <= epoch_ms)


def pending(broker: dramatiq.Broker) -> int:
    """Jobs the in-process broker still holds: waiting, delayed or running (a message is finished once acked).
    0 for Redis: its jobs are not this process's to finish (a stopping worker hands its own back)."""
    if not isinstance(broker, StubBroker):
        return 0
    return int(sum(q.unfinished_tasks for q in broker.queues.values()))


def _to_finish(broker: StubBroker, until_ms: int) -> int:
    """Jobs waiting or running, and delayed jobs due before `until_ms`."""
    ready = int(sum(q.unfinished_tasks for name, q in broker.queues.items() if name not in broker.delay_queues))
    delayed = next((m for m in broker.middleware if isinstance(m, DelayedJobs)), None)
    return ready + (delayed.due_before(until_ms) if delayed is not None else 0)


def drain(broker: dramatiq.Broker, timeout_s: float) -> bool:
    """Finish the jobs the in-process broker holds: wait until none is waiting or running and no delayed one is due
    within `timeout_s`. True if nothing at all is left; False if some are (delayed beyond the drain, or the time ran
    out): they are lost with the process, and re-derived after the next start (the catch-up; renewals by the
    scheduler from the database)."""
    if not isinstance(broker, StubBroker):
        return True
    deadline = time.monotonic() + timeout_s
    until_ms = current_millis() + int(timeout_s * 1000)
    while _to_finish(broker, until_ms):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return pending(broker) == 0
