"""Operational endpoints (no auth, no secrets): liveness, readiness, metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.platform.metrics import StateCollector, exposition
from app.sync.runtime import current
from app.web.worklist import queued_jobs


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
    integrations: list[dict[str, Any]] = []
    if ready:
        try:
            integrations = await run_in_threadpool(_integrations)
        except Exception:  # noqa: BLE001 - informational: readiness is the checks above
            integrations = []
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks, "polled_rooms": polled,
                         "integrations": integrations}, status_code=200 if ready else 503)


def _integrations() -> list[dict[str, Any]]:
    """Each integration's last token check (from its last connection test) and subscription health."""
    from app.platform.models import Integration, Subscription
    from app.sync.connection import last_result

    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    with Session(current().engine) as s:
        for integration in s.exec(select(Integration).order_by(col(Integration.created_at))).all():
            test = last_result(s, integration.id)
            token = next((c for c in (test or {}).get("checks", []) if c.get("name") == "token"), None)
            expiries = [e if e.tzinfo else e.replace(tzinfo=UTC) for e in s.exec(
                select(Subscription.expires_at).where(col(Subscription.integration_id) == integration.id,
                                                      col(Subscription.status) == "active")).all()]
            out.append({
                "id": integration.id, "enabled": integration.enabled,
                "last_token_check": None if token is None or test is None else
                {"status": token.get("status"), "detail": token.get("detail"), "at": test.get("at")},
                "subscriptions": {"active": len(expiries), "expired": sum(1 for e in expiries if e <= now),
                                  "nearest_expiry": min(expiries).isoformat() if expiries else None},
            })
    return out


async def metrics(request: Request) -> Response:
    state = StateCollector(lambda: current().engine, queued_jobs)

    def work() -> bytes:
        try:
            return exposition(state)
        except Exception:  # noqa: BLE001 - the database is down: still the counters, without the state
            return exposition(None)

    return Response(await run_in_threadpool(work), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
