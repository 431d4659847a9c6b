"""Admin JSON API (SPEC §2), bearer ADMIN_TOKEN. Handlers parse and check, then call domain modules.

Never a 500 for bad input, a 503 (+ Retry-After) when the database or the queue cannot be reached, and nothing is saved
unless its follow-up job is enqueued: a change that needs a rooms import is committed, then the import is enqueued;
if that enqueue fails the change is undone (a created integration deleted, a patched one restored) before the 503, so
a client that retries does not make a duplicate (see docs/architecture.md, "Admin changes and their jobs").
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import ColumnElement
from sqlmodel import Session, SQLModel, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.platform.crypto import new_token
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import Integration, Link, Room, Subscription
from app.sync import backfill as backfill_scope
from app.sync import lifecycle, subjects
from app.sync.integrations import IntegrationCreate, IntegrationFields, apply_fields, new_integration, public_view
from app.sync.rooms import active_rooms
from app.sync.runtime import current
from app.web.authn import FailedAuthentications
from app.web.common import ApiError, answer_outages, read_body, safe_id
from app.workers import actors
from app.workers.scheduler import lease_status

log = get_logger("roombridge.admin")

Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)
MAX_ADMIN_BODY = 64 * 1024
# The admin bodies are flat (an object of strings, numbers, booleans and lists of strings): anything deeper is refused
# before validation (a deeply nested body made json/pydantic raise RecursionError).
MAX_JSON_DEPTH = 8
INTEGRATION_ID_MAX = 36  # Integration.id
# Changing these re-runs the rooms import (SPEC §3: "runs when an integration is enabled or its settings change").
IMPORT_TRIGGERS = {"enabled", "ignore_tags", "buildings", "room_lists", "client_id", "client_secret", "tenant_id",
                   "booking_base_url", "booking_api_key"}


def failed_authentications(request: Request) -> FailedAuthentications:
    """The app's failure counter (made on first use; a test may set `app.state.failed_authentications` first)."""
    state = request.app.state
    counter = getattr(state, "failed_authentications", None)
    if not isinstance(counter, FailedAuthentications):
        counter = FailedAuthentications()
        state.failed_authentications = counter
    return counter


async def _authorised(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected = current().settings.admin_token.get_secret_value()
    client = request.client.host if request.client else "unknown"
    failures = failed_authentications(request)
    if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected.encode()):
        failures.succeeded(client)
        return
    reason = "no bearer token" if scheme.lower() != "bearer" or not token else "wrong token"
    await failures.failed(client, reason)  # logs (rate-limited, never the token) and waits once failures repeat
    raise ApiError(401, "unauthorized", "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


def admin(handler: Handler) -> Handler:
    """Bearer token; an `{id}` that no integration can have is a 404 before any query (a NUL would be a PostgreSQL
    error); database or queue unreachable → 503 + Retry-After."""

    @answer_outages(unexpected_as_503=False)
    async def wrapped(request: Request) -> Response:
        await _authorised(request)
        integration_id = request.path_params.get("id")
        if integration_id is not None and not safe_id(integration_id, INTEGRATION_ID_MAX):
            raise ApiError(404, "not_found", "no such integration")
        return await handler(request)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _check_json(value: Any, where: str = "", depth: int = 0) -> None:
    """What the database and the validators cannot take, refused as 422 naming the field: nesting deeper than
    MAX_JSON_DEPTH, NUL characters (PostgreSQL refuses them in text), lists of anything but strings and numbers."""
    field = where or "body"
    if depth > MAX_JSON_DEPTH:
        raise ApiError(422, "invalid", "the body is nested too deeply", fields=[{"field": field,
                                                                                 "message": "nested too deeply"}])
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(422, "invalid", "some fields are invalid; nothing was saved",
                           fields=[{"field": field, "message": "must not contain NUL characters"}])
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, where, depth + 1)
            _check_json(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, (dict, list)) or item is None:
                raise ApiError(422, "invalid", "some fields are invalid; nothing was saved",
                               fields=[{"field": f"{field}.{i}", "message": "must be a string"}])
            _check_json(item, f"{field}.{i}", depth + 1)


async def _parse(request: Request, model: type[M]) -> M:
    body = await read_body(request, MAX_ADMIN_BODY)
    try:
        data = json.loads(body or b"{}")
    except RecursionError:
        raise ApiError(422, "invalid", "the body is nested too deeply", fields=[]) from None
    except ValueError:  # UnicodeDecodeError and over-long integers included
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", "the body must be a JSON object", fields=[])
    _check_json(data)
    try:
        # Strict, from the JSON itself: a body the OpenAPI document forbids (`"enabled": 1`, `"block_minutes": "5"`)
        # is refused, not coerced (issue 10: no accepted request the schema forbids).
        return model.model_validate_json(body or b"{}", strict=True)
    except ValidationError as e:
        # Never echo the input back: it may be a secret.
        fields = [{"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
                  for err in e.errors(include_input=False, include_url=False)]
        raise ApiError(422, "invalid", "some fields are invalid; nothing was saved", fields=fields) from None
    except (TypeError, AttributeError, ArithmeticError, RecursionError):
        # A validator that met a value of a type it did not expect: still the client's input, still nothing saved.
        raise ApiError(422, "invalid", "some fields have values of the wrong type; nothing was saved",
                       fields=[]) from None


def _enqueue_import(integration_id: str) -> None:
    actors.import_rooms.send(integration_id)


def _columns(integration: Integration) -> dict[str, Any]:
    return {name: getattr(integration, name) for name in Integration.model_fields}


def _undo_create(integration_id: str) -> None:
    """Its rooms import could not be enqueued: remove the integration just created (nobody has its hook secret)."""
    try:
        with session_scope(current().engine) as s:
            row = s.get(Integration, integration_id)
            if row is not None:
                s.delete(row)
    except Exception as e:  # noqa: BLE001 - the 503 is answered anyway; say what is left behind
        log.error("integration created but its rooms import was not enqueued, and it could not be removed",
                  integration_id=integration_id, error=type(e).__name__)


def _undo_patch(integration_id: str, before: dict[str, Any], written_at: Any) -> None:
    """Its rooms import could not be enqueued: put the integration back as it was, unless someone changed it since."""
    try:
        with session_scope(current().engine) as s:
            row = s.get(Integration, integration_id, with_for_update=True)
            if row is None or row.updated_at != written_at:
                return
            for name, value in before.items():
                setattr(row, name, value)
            s.add(row)
    except Exception as e:  # noqa: BLE001 - the 503 is answered anyway; say what is left behind
        log.error("integration changed but its rooms import was not enqueued, and the change could not be undone",
                  integration_id=integration_id, error=type(e).__name__)


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
            try:
                _enqueue_import(integration.id)  # after the commit, so that the job finds the row
            except Exception:
                _undo_create(integration.id)  # nothing saved without its import: the client's retry is not a twin
                raise
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
            before = _columns(integration)
            changed = apply_fields(integration, data, rt.box)
            s.add(integration)
        if integration.enabled and changed & IMPORT_TRIGGERS:
            try:
                _enqueue_import(integration.id)  # after the commit, so that the job reads the new settings
            except Exception:
                _undo_patch(integration.id, before, integration.updated_at)
                raise
        view = public_view(integration)
        if "journal_subjects" in changed and not integration.journal_subjects and before["journal_subjects"]:
            view["subjects_cleared"] = subjects.clear(rt, integration.id)  # off: the kept subjects are forgotten
        if "enabled" in changed and not integration.enabled and before["enabled"]:
            # Disabled: the flows stop at once (they check `enabled`); its Graph subscriptions are deleted now.
            view["disabled"] = lifecycle.drop_all_subscriptions(rt, integration, "integration disabled")
        return view

    return JSONResponse(await run_in_threadpool(work))


@admin
async def delete_integration(request: Request) -> Response:
    """Deletes its Graph subscriptions and everything the bridge kept; the booking system is left as it is unless
    `?deactivate_places=true`. Answers what it did."""
    flag = request.query_params.get("deactivate_places", "false")
    if flag not in ("true", "false"):
        raise ApiError(422, "invalid", "deactivate_places must be true or false",
                       fields=[{"field": "deactivate_places", "message": "true or false"}])

    def work() -> dict[str, Any]:
        rt = current()
        with Session(rt.engine) as s:
            integration = _get(s, request.path_params["id"])
        done: dict[str, Any] = {"deleted": integration.id}
        done.update(lifecycle.drop_all_subscriptions(rt, integration, "integration deleted"))
        if flag == "true":
            done.update(lifecycle.deactivate_places(rt, integration))
        else:
            done["booking_system"] = "unchanged (pass deactivate_places=true to deactivate its places)"
        with session_scope(rt.engine) as s:
            row = s.get(Integration, integration.id)
            if row is not None:
                s.delete(row)
        log.info("integration deleted", integration_id=integration.id, detail=lifecycle.summary(done))
        return done

    return JSONResponse(await run_in_threadpool(work))


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
    model_config = ConfigDict(extra="forbid")

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


def since_param(raw: str | None) -> date:
    """`?since=` of the backfill preview: an ISO date, 2000-01-01 to 2999-12-31."""
    if raw is None:
        raise ApiError(422, "invalid", "since is required (YYYY-MM-DD)",
                       fields=[{"field": "since", "message": "required"}])
    try:
        day = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None or not (date(2000, 1, 1) <= day <= date(2999, 12, 31)):
        raise ApiError(422, "invalid", "since must be a date YYYY-MM-DD (2000 to 2999)",
                       fields=[{"field": "since", "message": "a date YYYY-MM-DD"}])
    return day


def backfill_preview_of(integration_id: str, day: date) -> dict[str, Any]:
    """What a backfill from `day` covers (counted, nothing written); 404/409 as the backfill itself."""
    rt = current()
    with Session(rt.engine) as s:
        integration = _get(s, integration_id)
        if not integration.enabled:
            raise ApiError(409, "disabled", "enable the integration first")
    result = backfill_scope.preview(rt, integration_id, backfill_scope.since_of(day))
    result["summary"] = backfill_scope.summary(result)
    return result


@admin
async def backfill_preview(request: Request) -> Response:
    """How many existing meetings (room events) and loans a backfill from `since` covers, before it starts."""
    day = since_param(request.query_params.get("since"))
    return JSONResponse(await run_in_threadpool(backfill_preview_of, request.path_params["id"], day))


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
        if status is not None and not safe_id(status, 32):
            raise ApiError(422, "invalid", "status is not a status", fields=[{"field": "status"}])

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
    Route("/api/integrations/{id}/backfill/preview", backfill_preview, methods=["GET"]),
    Route("/api/integrations/{id}/rooms", _listing(Room, col(Room.email).asc(), _plain), methods=["GET"]),
    Route("/api/integrations/{id}/subscriptions",
          _listing(Subscription, col(Subscription.created_at).asc(), lambda r: _plain(r, ("client_state_digest",)),
                   status_column=Subscription.status),
          methods=["GET"]),
    Route("/api/integrations/{id}/links", _listing(Link, col(Link.updated_at).desc(), _plain), methods=["GET"]),
    # The journal, retry, mark-handled, stats, test-connection: app/web/worklist.py.
]
