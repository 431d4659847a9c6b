"""The Starlette application: routes, JSON errors, request ids, and the process lifecycle (runtime + queue)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dramatiq.brokers.redis import RedisBroker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.platform import aredis
from app.platform.logging import get_logger
from app.platform.settings import Settings
from app.sync import runtime as runtime_mod
from app.sync.runtime import Runtime
from app.web import admin, hooks, intake, openapi, ops, status, worklist
from app.web.async_queue import AsyncQueue
from app.web.common import RequestIdMiddleware, error_response, handle_http_exception
from app.workers import broker as broker_mod
from app.workers.broker import bind, make_broker, start_worker
from app.workers.catchup import catch_up
from app.workers.scheduler import Scheduler

log = get_logger("roombridge.web")

# A graceful stop (SIGTERM) waits this long for the in-process queue to empty (Kubernetes' grace period is 30 s).
DRAIN_TIMEOUT_S = 20.0
DRAIN_RETRY_AFTER_S = "10"
_WEBHOOK_PATHS = ("/graph/", "/hooks/")


@dataclass
class Lifecycle:
    """Set on `app.state.lifecycle`: the drain flag the webhooks answer 503 by, and the drain the lifespan provides."""

    draining: bool = False
    drain_jobs: Callable[[float], bool] | None = None


class DrainGate:
    """While the process drains, new webhooks get 503 + Retry-After (the sender retries, on another instance or
    after the restart), and /readyz says not ready (load balancers stop sending)."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.lifecycle.draining:
            path = scope["path"]
            if path.startswith(_WEBHOOK_PATHS) or path == "/readyz":
                response = error_response(503, "draining", "the service is stopping; retry later",
                                          headers={"Retry-After": DRAIN_RETRY_AFTER_S})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def drain(app: Starlette, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
    """Begin a graceful stop: answer 503 to new webhooks, then finish the jobs this process holds (embedded mode).
    True if none is left; False if `timeout_s` ran out (the next start's catch-up re-derives the rest)."""
    lifecycle: Lifecycle = app.state.lifecycle
    lifecycle.draining = True
    log.info("draining: new webhooks answered 503")
    done = lifecycle.drain_jobs(timeout_s) if lifecycle.drain_jobs is not None else True
    log.info("drained" if done else "drain timed out: the next start catches up", timeout_s=timeout_s)
    return done


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Last line of defence: a JSON 500 without details (the traceback goes to the log, without locals).
    log.exception("unhandled error", path=request.url.path)
    return error_response(500, "internal", "internal error; see the service log")


def create_app(settings: Settings, *, runtime: Runtime | None = None, run_worker: bool | None = None) -> Starlette:
    """`run_worker` defaults to the embedded mode (no REDIS_URL): then this process also runs the jobs."""
    embedded_worker = settings.embedded_queue if run_worker is None else run_worker
    lifecycle = Lifecycle()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        runtime_mod.install(rt)
        broker = bind(make_broker(settings))
        worker = start_worker(broker, settings.worker_threads) if embedded_worker else None
        app.state.broker = broker
        # The intake's hint claims and enqueues run on the event loop: one asyncio Redis client (pool) per process.
        aclient = None
        app.state.async_queue = None
        if isinstance(broker, RedisBroker) and settings.redis_url:
            aclient = aredis.Client(settings.redis_url)
            app.state.async_queue = AsyncQueue(broker, aclient)
        # Embedded mode schedules its own periodic jobs, under the same lease as `roombridge scheduler`.
        scheduler = Scheduler(rt).start() if worker is not None and settings.embedded_queue else None
        if worker is not None and settings.embedded_queue:
            # The in-process queue starts empty: whatever the previous process held is re-derived (catchup.py).
            catch_up(rt, "start of the embedded mode")

        def drain_jobs(timeout_s: float) -> bool:
            if scheduler is not None:
                scheduler.stop()  # no new periodic work
            return broker_mod.drain(broker, timeout_s) if worker is not None else True

        lifecycle.drain_jobs = drain_jobs
        if worker is None:
            # As `start_worker` does in the embedded mode: the heap built at start lives as long as the process, out
            # of the collector's sight (the collections the intake's allocations trigger no longer scan it).
            gc.freeze()
        log.info("service started", queue="in-process" if settings.embedded_queue else "redis",
                 worker="in-process" if worker else "separate")
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if worker is not None:
                worker.stop()
            broker.close()
            if aclient is not None:
                await aclient.aclose()
            if runtime is None:
                rt.close()
            runtime_mod.install(None)

    routes = [
        Route("/graph/notifications", intake.notifications, methods=["POST"]),
        Route("/graph/lifecycle", intake.lifecycle, methods=["POST"]),
        Route("/hooks/booking/{integration_id}", hooks.booking_hook, methods=["POST"]),
        *admin.routes,
        *worklist.routes,
        *openapi.routes,
        *status.routes,
        *ops.routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestIdMiddleware), Middleware(DrainGate, lifecycle=lifecycle)],
        exception_handlers={HTTPException: handle_http_exception, Exception: _unexpected},
    )
    app.state.lifecycle = lifecycle
    return app
