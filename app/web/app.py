"""The Starlette application: routes, JSON errors, request ids, and the process lifecycle (runtime + queue)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.platform.logging import get_logger
from app.platform.settings import Settings
from app.sync import runtime as runtime_mod
from app.sync.runtime import Runtime
from app.web import admin, hooks, intake, ops
from app.web.common import RequestIdMiddleware, error_response, handle_http_exception
from app.workers.broker import bind, make_broker, start_worker
from app.workers.scheduler import Scheduler

log = get_logger("roombridge.web")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Last line of defence: a JSON 500 without details (the traceback goes to the log, without locals).
    log.exception("unhandled error", path=request.url.path)
    return error_response(500, "internal", "internal error; see the service log")


def create_app(settings: Settings, *, runtime: Runtime | None = None, run_worker: bool | None = None) -> Starlette:
    """`run_worker` defaults to the embedded mode (no REDIS_URL): then this process also runs the jobs."""
    embedded_worker = settings.embedded_queue if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        runtime_mod.install(rt)
        broker = bind(make_broker(settings))
        worker = start_worker(broker, settings.worker_threads) if embedded_worker else None
        app.state.broker = broker
        # Embedded mode schedules its own periodic jobs, under the same lease as `roombridge scheduler`.
        scheduler = Scheduler(rt).start() if worker is not None and settings.embedded_queue else None
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
            if runtime is None:
                rt.close()
            runtime_mod.install(None)

    routes = [
        Route("/graph/notifications", intake.notifications, methods=["POST"]),
        Route("/graph/lifecycle", intake.lifecycle, methods=["POST"]),
        Route("/hooks/booking/{integration_id}", hooks.booking_hook, methods=["POST"]),
        *admin.routes,
        *ops.routes,
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={HTTPException: handle_http_exception, Exception: _unexpected},
    )
