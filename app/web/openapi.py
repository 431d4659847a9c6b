"""OpenAPI 3.1 of the admin API (`GET /api/openapi.json`, issue 10.1).

Generated, not written: request bodies are the JSON Schemas of the pydantic models the handlers validate with
(`IntegrationCreate`, `IntegrationFields`, `BackfillRequest`, `ConnectionTestRequest`), responses the models below.
`OPERATIONS` names every `/api` route; tests/test_openapi.py checks that each route of the app is in it (and
nothing else) and runs Schemathesis against the document on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sync.integrations import IntegrationCreate, IntegrationFields
from app.web.admin import BackfillRequest
from app.web.worklist import MAX_LIMIT, STATUS_FILTERS, ConnectionTestRequest

# --- response models ------------------------------------------------------------------------------------------------


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FieldError(_Open):
    field: str
    message: str | None = None


class ErrorDetail(_Open):
    code: str
    message: str
    fields: list[FieldError] | None = None


class Error(BaseModel):
    """Every error: `{"error": {"code", "message", "fields"?}}`."""

    error: ErrorDetail


class IntegrationView(_Open):
    """An integration without its secrets (write-only): `*_set` say whether they are."""

    id: str
    name: str
    enabled: bool
    tenant_domain: str
    extra_domains: list[str]
    tenant_id: str
    client_id: str
    booking_base_url: str
    default_store_id: str
    default_user_email: str | None
    ignore_tags: list[str]
    block_minutes: int
    horizon_days: int
    direction: str
    private_events: str
    exclude_subjects: list[str]
    show_pending_as_tentative: bool
    created_at: str
    updated_at: str
    client_secret_set: bool
    booking_api_key_set: bool


class IntegrationCreated(IntegrationView):
    hook_secret: str  # shown this once


class IntegrationList(BaseModel):
    items: list[IntegrationView]


class HookSecret(BaseModel):
    hook_secret: str


class Deleted(_Open):
    deleted: str
    subscriptions_deleted: int
    subscriptions_not_deleted: int
    places_deactivated: int | None = None
    places_not_deactivated: int | None = None
    booking_system: str | None = None


class Queued(_Open):
    status: Literal["queued"]
    rooms: int | None = None
    since: str | None = None
    jobs: int | None = None


class IntegrationStatus(_Open):
    rooms: dict[str, Any]
    subscriptions: dict[str, Any]
    rooms_synced_at: str | None
    scheduler: dict[str, Any]


class Rows(BaseModel):
    items: list[dict[str, Any]]


class JournalEntryView(_Open):
    id: str
    integration_id: str
    at: str
    first_at: str
    last_at: str
    direction: str
    action: str
    status: str
    outcome: str
    message: str
    ical_uid: str | None
    loan_id: str | None
    room_id: str | None
    event_id: str | None
    rule: str | None
    attempts: int
    handled_at: str | None
    request_id: str | None
    subject: str | None = Field(description="the meeting's subject as its organiser wrote it, kept only when the "
                                "integration's journal_subjects is on (never for a private meeting)")


class JournalPage(BaseModel):
    items: list[JournalEntryView]
    next_cursor: str | None


class Period(BaseModel):
    start: str
    counts: dict[str, dict[str, int]]
    total: int


class Backlog(BaseModel):
    open_errors: int
    waiting: int
    oldest_waiting_at: str | None
    queued_jobs: int | None


class Stats(BaseModel):
    from_: str = Field(alias="from")
    to: str
    bucket: Literal["day", "week"]
    periods: list[Period]
    backlog: Backlog


class UnreadableRoom(BaseModel):
    room: str
    reason: str


class BackfillPreview(BaseModel):
    """What a backfill from `since` covers, counted before it starts (nothing is written)."""

    since: str
    from_: str = Field(alias="from")
    to: str
    rooms: int
    events: int = Field(description="events in the rooms' calendars over [from, to) (a meeting in 2 rooms: 2)")
    meetings: int = Field(description="distinct meetings (iCalUIds) among them")
    meetings_linked: int = Field(description="of those, meetings already linked to a loan")
    loans: int | None = Field(description="loans changed since `since` (None: the booking system did not answer)")
    loans_error: str | None
    unreadable_rooms: list[UnreadableRoom]
    summary: str


class ConnectionCheck(BaseModel):
    name: str
    status: Literal["ok", "failed", "skipped"]
    detail: str
    fix: str


class ConnectionResult(BaseModel):
    ok: bool
    at: str
    checks: list[ConnectionCheck]


# --- the operations -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Op:
    summary: str
    ok: int
    response: type[BaseModel] | None
    body: type[BaseModel] | None = None
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = ()
    path_id: str | None = None  # what `{id}` names
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_DATE_OR_TIME = {"type": "string", "description": "ISO date (midnight UTC) or date-time (UTC unless an offset)"}
LIMIT = Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100})
_INTEGRATION = "integration"
_ENTRY = "journal entry"

OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/api/openapi.json"): Op("This document", 200, None, description="OpenAPI 3.1 of the admin API."),
    ("GET", "/api/integrations"): Op("List integrations", 200, IntegrationList),
    ("POST", "/api/integrations"): Op("Create an integration (its rooms import starts when enabled)", 201,
                                      IntegrationCreated, IntegrationCreate, errors=(400, 413, 422)),
    ("GET", "/api/integrations/{id}"): Op("One integration", 200, IntegrationView, path_id=_INTEGRATION),
    ("PATCH", "/api/integrations/{id}"): Op("Change some settings (atomic: all or nothing)", 200, IntegrationView,
                                            IntegrationFields, errors=(400, 413, 422), path_id=_INTEGRATION),
    ("DELETE", "/api/integrations/{id}"): Op(
        "Delete an integration: its Graph subscriptions too; the booking system only if asked", 200, Deleted,
        query=(Query("deactivate_places", {"type": "string", "enum": ["true", "false"], "default": "false"}),),
        errors=(422,), path_id=_INTEGRATION),
    ("POST", "/api/integrations/{id}/rotate-hook-secret"): Op("New hook secret (shown once)", 200, HookSecret,
                                                              path_id=_INTEGRATION),
    ("POST", "/api/integrations/{id}/sync-rooms"): Op("Run the rooms import now", 202, Queued, errors=(409,),
                                                      path_id=_INTEGRATION),
    ("GET", "/api/integrations/{id}/status"): Op("Rooms, subscriptions, scheduler", 200, IntegrationStatus,
                                                 path_id=_INTEGRATION),
    ("POST", "/api/integrations/{id}/reconcile"): Op("Re-read every room's changes now", 202, Queued,
                                                     errors=(409,), path_id=_INTEGRATION),
    ("POST", "/api/integrations/{id}/backfill"): Op("Sync what exists from a date", 202, Queued, BackfillRequest,
                                                    errors=(400, 409, 413, 422), path_id=_INTEGRATION),
    ("GET", "/api/integrations/{id}/backfill/preview"): Op(
        "How many existing meetings and loans a backfill from `since` covers, before it starts", 200,
        BackfillPreview,
        query=(Query("since", {"type": "string", "format": "date", "pattern": r"^2[0-9]{3}-[0-9]{2}-[0-9]{2}$"},
                     "the date the backfill would start from (YYYY-MM-DD, 2000 to 2999)", required=True),),
        errors=(409, 422), path_id=_INTEGRATION,
        description="Reads each active room's calendarView from `since` to the horizon and the loans changed since "
                    "`since`; writes nothing."),
    ("GET", "/api/integrations/{id}/rooms"): Op("Imported rooms", 200, Rows, query=(LIMIT,), errors=(422,),
                                                path_id=_INTEGRATION),
    ("GET", "/api/integrations/{id}/subscriptions"): Op(
        "Graph subscriptions", 200, Rows, query=(LIMIT, Query("status", {"type": "string", "maxLength": 32,
                                                                          "pattern": "^[A-Za-z0-9._:-]+$"})),
        errors=(422,), path_id=_INTEGRATION),
    ("GET", "/api/integrations/{id}/links"): Op("Meeting ⇄ loan links", 200, Rows, query=(LIMIT,), errors=(422,),
                                                path_id=_INTEGRATION),
    ("GET", "/api/integrations/{id}/journal"): Op(
        "The journal, newest first (the admin's work list)", 200, JournalPage,
        query=(LIMIT, Query("status", {"type": "string", "enum": list(STATUS_FILTERS)}),
               Query("direction", {"type": "string", "maxLength": 32, "pattern": "^[A-Za-z0-9._:-]+$"}),
               Query("room", {"type": "string", "maxLength": 320, "pattern": "^[A-Za-z0-9._:@+-]+$"},
                     "a room's id or e-mail address"),
               Query("from", _DATE_OR_TIME), Query("to", _DATE_OR_TIME),
               Query("cursor", {"type": "string"}, "next_cursor of the previous page")),
        errors=(422,), path_id=_INTEGRATION),
    ("POST", "/api/journal/{id}/retry"): Op("Run this change again now, as a live change would", 202, Queued,
                                            errors=(409,), path_id=_ENTRY),
    ("POST", "/api/journal/{id}/mark-handled"): Op(
        "Never retry this change (automatically, by reconciliation or backfill) until a newer change arrives",
        200, JournalEntryView, path_id=_ENTRY),
    ("GET", "/api/integrations/{id}/stats"): Op(
        "Changes per direction and outcome per period, and the backlog", 200, Stats,
        query=(Query("from", _DATE_OR_TIME), Query("to", _DATE_OR_TIME),
               Query("bucket", {"type": "string", "enum": ["day", "week"], "default": "day"})),
        errors=(422,), path_id=_INTEGRATION),
    ("POST", "/api/integrations/{id}/test-connection"): Op(
        "Check the token, each Graph permission and the booking API; the result is kept", 200, ConnectionResult,
        ConnectionTestRequest, errors=(400, 413, 422), path_id=_INTEGRATION),
    ("GET", "/api/integrations/{id}/test-connection"): Op("The last connection test", 200, ConnectionResult,
                                                          path_id=_INTEGRATION),
}

_ERROR_TEXT = {400: "Malformed JSON", 401: "Missing or wrong bearer token", 404: "No such resource",
               409: "Not possible in the current state", 413: "Body too large",
               422: "Invalid input (each bad field named); nothing saved",
               503: "Database or queue unreachable; retry after Retry-After"}


def _schemas() -> tuple[dict[Any, Any], dict[str, Any]]:
    models: list[type[BaseModel]] = [Error, Deleted, IntegrationCreated, IntegrationList, HookSecret, Queued,
                                     IntegrationStatus, Rows, JournalPage, Stats, ConnectionResult, BackfillPreview]
    inputs: list[type[BaseModel]] = [IntegrationCreate, IntegrationFields, BackfillRequest, ConnectionTestRequest]
    pairs = [(m, "serialization") for m in models] + [(m, "validation") for m in inputs]
    keys, top = models_json_schema(pairs, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    schemas: dict[str, Any] = top.get("$defs", {})
    for name in ("IntegrationCreate", "IntegrationFields"):
        tags = schemas[name]["properties"]["ignore_tags"]
        # `Tags` (app/sync/integrations.py) also takes a comma-separated string (its BeforeValidator).
        tags_any = [s for s in tags.get("anyOf", [tags]) if s.get("type") != "null"]
        nullable = [{"type": "null"}] if "anyOf" in tags else []
        tags.pop("type", None)
        tags.pop("items", None)
        tags["anyOf"] = [*tags_any, {"type": "string", "description": "comma-separated"}, *nullable]
    return keys, schemas


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document() -> dict[str, Any]:
    _keys, schemas = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": op.summary}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": _ref(op.response)}}
        elif path == "/api/openapi.json":
            ok["content"] = {"application/json": {"schema": {"type": "object"}}}
        responses[str(op.ok)] = ok
        errors = {401, 503, *op.errors} | ({404} if op.path_id else set())
        for status in sorted(errors):
            responses[str(status)] = {"description": _ERROR_TEXT[status],
                                      "content": {"application/json": {"schema": _ref(Error)}}}
        operation: dict[str, Any] = {"summary": op.summary, "operationId": f"{method.lower()} {path}",
                                     "responses": responses}
        if op.description:
            operation["description"] = op.description
        parameters = [{"name": q.name, "in": "query", "required": q.required, "schema": q.schema,
                       **({"description": q.description} if q.description else {})} for q in op.query]
        if op.path_id:
            parameters.insert(0, {"name": "id", "in": "path", "required": True, "description": f"the {op.path_id}",
                                  "schema": {"type": "string", "minLength": 1, "maxLength": 36}})
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {"required": op.body not in (ConnectionTestRequest,),
                                        "content": {"application/json": {"schema": _ref(op.body)}}}
        if path == "/api/openapi.json":
            operation["security"] = []
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "RoomBridge admin API", "version": "1",
                 "description": "Integrations, their rooms, subscriptions, journal and statistics (SPEC §2, §9). "
                                "Errors are `{\"error\": {\"code\", \"message\", \"fields\"?}}`; secrets are "
                                "write-only."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "the ADMIN_TOKEN setting"}}},
    }


_DOCUMENT: dict[str, Any] | None = None


async def openapi_json(request: Request) -> Response:
    global _DOCUMENT
    if _DOCUMENT is None:
        _DOCUMENT = document()
    return JSONResponse(_DOCUMENT)


routes = [Route("/api/openapi.json", openapi_json, methods=["GET"])]
