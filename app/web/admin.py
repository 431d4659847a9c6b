"""Admin JSON API (SPEC §2), bearer ADMIN_TOKEN. Handlers parse and check, then call domain modules."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement
from sqlmodel import Session, SQLModel, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.platform.crypto import new_token
from app.platform.db import session_scope
from app.platform.models import Integration, JournalEntry, Link, Room, Subscription
from app.sync.integrations import IntegrationCreate, IntegrationFields, apply_fields, new_integration, public_view
from app.sync.rooms import active_rooms
from app.sync.runtime import current
from app.web.common import ApiError, read_body
from app.workers import actors
from app.workers.scheduler import lease_status

Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)
MAX_ADMIN_BODY = 64 * 1024
# Changing these re-runs the rooms import (SPEC §3: "runs when an integration is enabled or its settings change").
IMPORT_TRIGGERS = {"enabled", "ignore_tags", "client_id", "client_secret", "tenant_id", "booking_base_url",
                   "booking_api_key"}


def _authorised(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected = current().settings.admin_token.get_secret_value()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


def admin(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        _authorised(request)
        return await handler(request)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def _parse(request: Request, model: type[M]) -> M:
    body = await read_body(request, MAX_ADMIN_BODY)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", "the body must be a JSON object", fields=[])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # Never echo the input back: it may be a secret.
        fields = [{"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
                  for err in e.errors(include_input=False, include_url=False)]
        raise ApiError(422, "invalid", "some fields are invalid; nothing was saved", fields=fields) from None


def _enqueue_import(integration_id: str) -> None:
    actors.import_rooms.send(integration_id)


def _get(s: Session, integration_id: str) -> Integration:
    integration = s.get(Integration, integration_id)
    if integration is None:
        raise ApiError(404, "not_found", "no such integration")
    return integration


@admin
async def list_integrations(request: Request) -> Response:
    def work() -> list[dict[str, Any]]:
        with Session(current().engine) as s:
            return [public_view(i) for i in s.exec(select(Integration).order_by(col(Integration.created_at))).all()]

    return JSONResponse({"items": await run_in_threadpool(work)})


@admin
async def create_integration(request: Request) -> Response:
    data = await _parse(request, IntegrationCreate)

    def work() -> tuple[dict[str, Any], str]:
        rt = current()
        integration, hook_secret = new_integration(data, rt.box)
        with session_scope(rt.engine) as s:
            s.add(integration)
        if integration.enabled:
            _enqueue_import(integration.id)
        return public_view(integration), hook_secret

    view, hook_secret = await run_in_threadpool(work)
    # The hook secret is shown this once; afterwards only rotate-hook-secret reveals a new one.
    return JSONResponse({**view, "hook_secret": hook_secret}, status_code=201)


@admin
async def get_integration(request: Request) -> Response:
    def work() -> dict[str, Any]:
        with Session(current().engine) as s:
            return public_view(_get(s, request.path_params["id"]))

    return JSONResponse(await run_in_threadpool(work))


@admin
async def patch_integration(request: Request) -> Response:
    data = await _parse(request, IntegrationFields)

    def work() -> dict[str, Any]:
        rt = current()
        with session_scope(rt.engine) as s:
            integration = _get(s, request.path_params["id"])
            changed = apply_fields(integration, data, rt.box)
            s.add(integration)
        if integration.enabled and changed & IMPORT_TRIGGERS:
            _enqueue_import(integration.id)
        return public_view(integration)

    return JSONResponse(await run_in_threadpool(work))


@admin
async def delete_integration(request: Request) -> Response:
    def work() -> None:
        with session_scope(current().engine) as s:
            s.delete(_get(s, request.path_params["id"]))

    await run_in_threadpool(work)
    return Response(status_code=204)


@admin
async def rotate_hook_secret(request: Request) -> Response:
    def work() -> str:
        rt = current()
        secret = new_token(32)
        with session_scope(rt.engine) as s:
            integration = _get(s, request.path_params["id"])
            integration.hook_secret_enc = rt.box.encrypt(secret)
            s.add(integration)
        return secret

    return JSONResponse({"hook_secret": await run_in_threadpool(work)})


@admin
async def sync_rooms(request: Request) -> Response:
    def work() -> None:
        with Session(current().engine) as s:
            integration = _get(s, request.path_params["id"])
            if not integration.enabled:
                raise ApiError(409, "disabled", "enable the integration first")
        _enqueue_import(request.path_params["id"])

    await run_in_threadpool(work)
    return JSONResponse({"status": "queued"}, status_code=202)


def _enqueue_reconcile(integration_id: str, full: bool, since: str | None = None) -> int:
    with Session(current().engine) as s:
        integration = _get(s, integration_id)
        if not integration.enabled:
            raise ApiError(409, "disabled", "enable the integration first")
        room_ids = [r.id for r in active_rooms(s, integration_id)]
    for room_id in room_ids:
        actors.reconcile_room.send(room_id, full, since)
    actors.reconcile_loans.send(integration_id, since)  # and the booking side: loans changed since then
    return len(room_ids)


class BackfillRequest(BaseModel):
    since: date


@admin
async def reconcile(request: Request) -> Response:
    """Re-read every room's calendar changes now (calendarView delta) instead of waiting for the scheduler."""
    rooms = await run_in_threadpool(_enqueue_reconcile, request.path_params["id"], False)
    return JSONResponse({"status": "queued", "rooms": rooms}, status_code=202)


@admin
async def backfill(request: Request) -> Response:
    """Sync the meetings that already exist (created before activation), from `since` to the horizon."""
    data = await _parse(request, BackfillRequest)
    rooms = await run_in_threadpool(_enqueue_reconcile, request.path_params["id"], True, data.since.isoformat())
    return JSONResponse({"status": "queued", "rooms": rooms, "since": data.since.isoformat()}, status_code=202)


@admin
async def integration_status(request: Request) -> Response:
    """Rooms (imported, polled), subscriptions (active, next expiry), last rooms import, the active scheduler."""

    def work() -> dict[str, Any]:
        rt = current()
        with Session(rt.engine) as s:
            integration = _get(s, request.path_params["id"])
            rooms = active_rooms(s, integration.id)
            subs = s.exec(select(Subscription).where(Subscription.integration_id == integration.id,
                                                     Subscription.status == "active")).all()
        expiries = sorted(sub.expires_at for sub in subs)
        return {
            "rooms": {"active": len(rooms), "polled": sorted(r.email for r in rooms if r.polling)},
            "subscriptions": {"active": len(subs), "next_expiry": expiries[0].isoformat() if expiries else None},
            "rooms_synced_at": integration.rooms_synced_at.isoformat() if integration.rooms_synced_at else None,
            "scheduler": lease_status(rt),
        }

    return JSONResponse(await run_in_threadpool(work))


class _PerIntegration(Protocol):
    """A table the admin API lists per integration."""

    __tablename__: ClassVar[str]
    integration_id: str


Row = TypeVar("Row", bound=_PerIntegration)


def _listing(model: type[Row], order: ColumnElement[Any], render: Callable[[Row], dict[str, Any]], *,
             status_column: str | None = None) -> Handler:
    """GET handler for the rows of `model` of one integration, `?limit=` (and `?status=` given `status_column`).

    Columns are passed the SQLModel way (`Subscription.status`, typed as its value) and used through `col()`.
    """

    @admin
    async def handler(request: Request) -> Response:
        try:
            limit = min(max(int(request.query_params.get("limit", "100")), 1), 1000)
        except ValueError:
            raise ApiError(422, "invalid", "limit must be a whole number", fields=[{"field": "limit"}]) from None
        status = request.query_params.get("status")

        def work() -> list[dict[str, Any]]:
            with Session(current().engine) as s:
                _get(s, request.path_params["id"])
                q = select(model).where(col(model.integration_id) == request.path_params["id"])
                if status is not None and status_column is not None:
                    q = q.where(col(status_column) == status)
                return [render(r) for r in s.exec(q.order_by(order).limit(limit)).all()]

        return JSONResponse({"items": await run_in_threadpool(work)})

    handler.__name__ = f"list_{model.__tablename__}"
    return handler


def _plain(row: SQLModel, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return row.model_dump(mode="json", exclude=set(exclude))


routes = [
    Route("/api/integrations", list_integrations, methods=["GET"]),
    Route("/api/integrations", create_integration, methods=["POST"]),
    Route("/api/integrations/{id}", get_integration, methods=["GET"]),
    Route("/api/integrations/{id}", patch_integration, methods=["PATCH"]),
    Route("/api/integrations/{id}", delete_integration, methods=["DELETE"]),
    Route("/api/integrations/{id}/rotate-hook-secret", rotate_hook_secret, methods=["POST"]),
    Route("/api/integrations/{id}/sync-rooms", sync_rooms, methods=["POST"]),
    Route("/api/integrations/{id}/status", integration_status, methods=["GET"]),
    Route("/api/integrations/{id}/reconcile", reconcile, methods=["POST"]),
    Route("/api/integrations/{id}/backfill", backfill, methods=["POST"]),
    Route("/api/integrations/{id}/rooms", _listing(Room, col(Room.email).asc(), _plain), methods=["GET"]),
    Route("/api/integrations/{id}/subscriptions",
          _listing(Subscription, col(Subscription.created_at).asc(), lambda r: _plain(r, ("client_state_digest",)),
                   status_column=Subscription.status),
          methods=["GET"]),
    Route("/api/integrations/{id}/links", _listing(Link, col(Link.updated_at).desc(), _plain), methods=["GET"]),
    Route("/api/integrations/{id}/journal", _listing(JournalEntry, col(JournalEntry.at).desc(), _plain,
                                                            status_column=JournalEntry.status),
          methods=["GET"]),
]
