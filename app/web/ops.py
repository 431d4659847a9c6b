"""Operational endpoints (no auth, no secrets): liveness, readiness, metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sync.runtime import current


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _checks() -> dict[str, str]:
    rt = current()
    checks: dict[str, str] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"unreachable ({type(e).__name__})"
    if rt.redis is None:
        checks["queue"] = "ok (in-process)"
    else:
        try:
            rt.redis.ping()
            checks["queue"] = "ok"
        except Exception as e:  # noqa: BLE001
            checks["queue"] = f"unreachable ({type(e).__name__})"
    return checks


def _polled_rooms() -> list[str]:
    """Rooms Graph refused to subscribe (SPEC §4): still synced, by periodic delta, so ready — but say which."""
    from app.platform.models import Room

    try:
        with Session(current().engine) as s:
            rows = s.exec(select(Room.email).where(Room.active == True, Room.polling == True)).all()  # noqa: E712
    except Exception:  # noqa: BLE001 - the database check already reports it
        return []
    return sorted(rows)


async def readyz(request: Request) -> Response:
    checks = await run_in_threadpool(_checks)
    ready = all(v.startswith("ok") for v in checks.values())
    polled = await run_in_threadpool(_polled_rooms) if ready else []
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks, "polled_rooms": polled},
                        status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
