"""The Booking API v1 (SPEC §8) over the in-memory store, as a Starlette app."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import anyio.to_thread
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.core.contract import (
    API_PREFIX,
    AvailabilityResponse,
    CancelRequest,
    ErrorBody,
    ErrorDetail,
    HookType,
    Loan,
    LoanCreate,
    LoanNote,
    LoanPage,
    LoanPatch,
    PlaceUpsert,
    ReturnRequest,
    UtcDatetime,
    hook_type_for,
)
from simulators.booking.faults import Faults
from simulators.booking.hooks import HookDispatcher
from simulators.booking.state import MAX_PAGE_SIZE, ApiError, BookingStore

DEFAULT_PAGE_SIZE = 100
MAX_IDEMPOTENCY_KEY = 255
_TIME = TypeAdapter(UtcDatetime)
Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _describe(exc: ValidationError) -> str:
    # Field locations and reasons only: never echo the submitted values back.
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _parse_body(model: type[M], body: bytes) -> M:
    return model.model_validate_json(body or b"{}")


def _query_time(request: Request, name: str) -> datetime:
    value = request.query_params.get(name)
    if not value:
        raise ApiError(422, "invalid_request", f"{name}: required")
    try:
        return _TIME.validate_python(value)
    except ValidationError:
        raise ApiError(422, "invalid_request", f"{name}: not an ISO 8601 date-time with offset") from None


def _if_match(request: Request) -> int | None:
    value = request.headers.get("If-Match")
    if value is None:
        return None
    cleaned = value.strip().removeprefix("W/").strip('"')
    try:
        return int(cleaned)
    except ValueError:
        raise ApiError(422, "invalid_if_match", "If-Match must be a loan version (an integer)") from None


def build_app(store: BookingStore, faults: Faults, hooks: HookDispatcher, api_key: str) -> Starlette:
    expected_auth = f"Bearer {api_key}".encode()

    async def announce(hook_type: HookType, loan: Loan) -> None:
        # In `before_response` mode this blocks until the bridge got the hook: run it off the event loop.
        await anyio.to_thread.run_sync(hooks.emit_for_api, hook_type, loan)

    def endpoint(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            store.stats.add("requests")
            if faults.latency:
                await asyncio.sleep(faults.latency)
            fault = faults.take()
            if fault is not None:
                store.stats.add("faults_injected")
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                return error_response(fault.status, "injected_fault", "simulated failure", headers)
            supplied = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(supplied, expected_auth):
                return error_response(401, "unauthorized", "missing or invalid bearer token",
                                      {"WWW-Authenticate": "Bearer"})
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message)
            except ValidationError as exc:
                return error_response(422, "invalid_request", _describe(exc))

        return wrapped

    async def put_place(request: Request) -> Response:
        data = _parse_body(PlaceUpsert, await request.body())
        place, created = store.upsert_place(request.path_params["email"], data)
        store.stats.add("places_upserted")
        return _json(place, 201 if created else 200)

    async def delete_place(request: Request) -> Response:
        store.deactivate_place(request.path_params["email"])
        store.stats.add("places_deactivated")
        return Response(status_code=204)

    async def availability(request: Request) -> Response:
        place_ids = request.query_params.getlist("place_id")
        if not place_ids:
            raise ApiError(422, "invalid_request", "place_id: at least one is required")
        start, end = _query_time(request, "start"), _query_time(request, "end")
        if start >= end:
            raise ApiError(422, "invalid_interval", "start must be before end")
        available = store.availability(place_ids, start, end, request.query_params.get("exclude_loan"))
        store.stats.add("availability_calls")
        return _json(AvailabilityResponse(available=available))

    async def create_loan(request: Request) -> Response:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or len(key) > MAX_IDEMPOTENCY_KEY:
            raise ApiError(422, "idempotency_key_required",
                           f"header Idempotency-Key is required (1 to {MAX_IDEMPOTENCY_KEY} characters)")
        data = _parse_body(LoanCreate, await request.body())
        loan, created = store.create_loan(data, key=key)
        store.stats.add_key(key)
        store.stats.add("loans_created" if created else "create_replays")
        if created:
            await announce("loan.created", loan)
        return _json(loan, 201 if created else 200)

    async def list_loans(request: Request) -> Response:
        params = request.query_params
        since = _query_time(request, "changed_since") if params.get("changed_since") else None
        try:
            limit = int(params.get("limit", DEFAULT_PAGE_SIZE))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ApiError(422, "invalid_request", f"limit: an integer from 1 to {MAX_PAGE_SIZE}")
        items, cursor = store.changed_since(since, params.get("cursor"), limit)
        return _json(LoanPage(items=items, next_cursor=cursor))

    async def get_loan(request: Request) -> Response:
        return _json(store.loan(request.path_params["loan_id"]))

    async def patch_loan(request: Request) -> Response:
        if_match = _if_match(request)
        patch = _parse_body(LoanPatch, await request.body())
        loan, changed = store.update_loan(request.path_params["loan_id"], patch, if_match=if_match)
        store.stats.add("loans_patched")
        if changed:
            await announce(hook_type_for(loan), loan)
        return _json(loan)

    async def cancel_loan(request: Request) -> Response:
        body = _parse_body(CancelRequest, await request.body())  # kept as `cancel_reason` (`no_show`, or text)
        loan, changed = store.close_loan(request.path_params["loan_id"], "cancelled", reason=body.reason)
        store.stats.add("loans_cancelled")
        if changed:
            await announce("loan.cancelled", loan)
        return _json(loan)

    async def return_loan(request: Request) -> Response:
        body = _parse_body(ReturnRequest, await request.body())
        loan, changed = store.close_loan(request.path_params["loan_id"], "returned", returned_at=body.returned_at)
        store.stats.add("loans_returned")
        if changed:
            await announce(hook_type_for(loan), loan)
        return _json(loan)

    async def add_note(request: Request) -> Response:
        note = store.add_note(request.path_params["loan_id"], _parse_body(LoanNote, await request.body()))
        store.stats.add("notes_added")
        return _json(note, 201)

    async def get_store(request: Request) -> Response:
        """`GET /v1/stores/{id}` (optional, a contract addition): the store, or 404 `store_not_found`. With
        `store.stores_api` off the route is absent (an older booking system): a plain 404 `not_found`."""
        if not store.stores_api:
            raise HTTPException(404, "Not Found")
        store_id = request.path_params["store_id"]
        if store_id != store.store_id:
            raise ApiError(404, "store_not_found", "no store with this id")
        return JSONResponse({"id": store.store_id, "name": store.store_name, "active": True})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        return error_response(500, "internal_error", "unexpected simulator error")

    v1 = API_PREFIX
    return Starlette(
        routes=[
            Route(f"{v1}/places/{{email}}", endpoint(put_place), methods=["PUT"]),
            Route(f"{v1}/places/{{email}}", endpoint(delete_place), methods=["DELETE"]),
            Route(f"{v1}/availability", endpoint(availability), methods=["GET"]),
            Route(f"{v1}/loans", endpoint(create_loan), methods=["POST"]),
            Route(f"{v1}/loans", endpoint(list_loans), methods=["GET"]),
            Route(f"{v1}/loans/{{loan_id}}", endpoint(get_loan), methods=["GET"]),
            Route(f"{v1}/loans/{{loan_id}}", endpoint(patch_loan), methods=["PATCH"]),
            Route(f"{v1}/loans/{{loan_id}}/cancel", endpoint(cancel_loan), methods=["POST"]),
            Route(f"{v1}/loans/{{loan_id}}/return", endpoint(return_loan), methods=["POST"]),
            Route(f"{v1}/loans/{{loan_id}}/notes", endpoint(add_note), methods=["POST"]),
            Route(f"{v1}/stores/{{store_id}}", endpoint(get_store), methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
