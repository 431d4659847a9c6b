"""The job queue: dramatiq on Redis when REDIS_URL is set, else an in-process broker and worker (embedded mode).

The same actors (workers/actors.py) run in both modes; this module only builds the broker and binds them to it.
"""

from __future__ import annotations

import time
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware

from app.platform.logging import request_id_var
from app.platform.settings import Settings
from app.workers import actors
from app.workers.failures import broker_middleware

# A killed worker's messages come back after this (dramatiq's default is 60 s and a rare maintenance pass).
HEARTBEAT_TIMEOUT_MS = 30_000
MAINTENANCE_CHANCE = 10_000  # per million broker calls: 1 %

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
    broker: dramatiq.Broker
    if settings.redis_url:
        # dramatiq's RedisBroker.__init__ has no annotations (the rest of dramatiq is typed).
        broker = RedisBroker(url=settings.redis_url, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,  # type: ignore[no-untyped-call]
                             maintenance_chance=MAINTENANCE_CHANCE, namespace=settings.redis_namespace,
                             middleware=middleware)
    else:
        broker = StubBroker(middleware=middleware)
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
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=200)
    worker.start()
    return worker


def pending(broker: dramatiq.Broker) -> int:
    """Jobs the in-process broker still holds: waiting, delayed or running (a message is finished once acked).
    0 for Redis: its jobs are not this process's to finish (a stopping worker hands its own back)."""
    if not isinstance(broker, StubBroker):
        return 0
    return sum(q.unfinished_tasks for q in broker.queues.values())


def drain(broker: dramatiq.Broker, timeout_s: float) -> bool:
    """Wait until the in-process broker holds no job (True), or `timeout_s` passes (False: what is left is lost with
    the process, and the catch-up at the next start re-derives it)."""
    deadline = time.monotonic() + timeout_s
    while pending(broker):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
