"""The `/v1.0` HTTP surface. Handlers only parse, call the backend and shape JSON; the rules live elsewhere.

Every handler runs behind `_endpoint`: request counting, bearer check, mailbox lookup, injected faults, the
per-mailbox concurrency limit, the configured latency, and Graph-shaped errors.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from simulators.graph.auth import AppRegistration, permission_of
from simulators.graph.backend import GraphBackend
from simulators.graph.delta import Window
from simulators.graph.directory import Mailbox
from simulators.graph.errors import GraphError, invalid_request
from simulators.graph.events import Event
from simulators.graph.timezones import parse_iso

EVENT_READ_KINDS = {"events", "event", "calendarView", "delta", "instances"}
EVENT_WRITE_KINDS = {"events", "event", "cancel", "decline"}
_FILTER = re.compile(r"^\s*(iCalUId|transactionId)\s+eq\s+'([^']*)'\s*$")
MAX_BATCH_REQUESTS = 20  # JSON batching limit
BATCH_CONCURRENCY = 4  # batch items Graph runs at once
BATCH_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}
_BATCH_HEADERS = ("content-type", "retry-after", "location", "preference-applied", "etag")


@dataclass
class Call:
    request: Request
    app: AppRegistration
    mailbox: Mailbox | None
    backend: GraphBackend

    @property
    def base(self) -> str:
        return str(self.request.base_url).rstrip("/") + "/v1.0"

    @property
    def user(self) -> Mailbox:
        assert self.mailbox is not None, "mailbox-scoped route"
        return self.mailbox

    def preferences(self) -> dict[str, str]:
        """`Prefer` header(s): `outlook.timezone="…"`, `odata.maxpagesize=…`, `IdType="ImmutableId"`."""
        found: dict[str, str] = {}
        for header in self.request.headers.getlist("prefer"):
            for part in header.split(","):
                key, _, value = part.strip().partition("=")
                found[key.strip().lower()] = value.strip().strip('"')
        return found

    def zone(self) -> str | None:
        return self.preferences().get("outlook.timezone")

    def int_param(self, name: str, default: int) -> int:
        raw = self.request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise invalid_request(f"Invalid value '{raw}' for {name}.")
        return int(raw)

    async def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(await self.request.body() or b"{}")
        except ValueError:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
        return body

    def json(self, data: dict[str, Any], status: int = 200) -> JSONResponse:
        applied = [f'outlook.timezone="{self.zone()}"'] if self.zone() and "value" not in data else []
        headers = {"Preference-Applied": ", ".join(applied)} if applied else {}
        return JSONResponse(data, status_code=status, headers=headers)

    def event_json(self, event: Event, status: int = 200) -> JSONResponse:
        context = f"{self.base}/$metadata#users('{self.user.id}')/events/$entity"
        return self.json({"@odata.context": context, **event.json(self.zone())}, status)

    def page(self, items: list[dict[str, Any]], context: str, page_size: int) -> JSONResponse:
        """A `$top`/`$skip` page with an absolute `@odata.nextLink`, as Graph pages collections."""
        top = self.int_param("$top", page_size)
        skip = self.int_param("$skip", 0)
        data: dict[str, Any] = {"@odata.context": f"{self.base}/$metadata#{context}", "value": items[skip : skip + top]}
        if skip + top < len(items):
            query = [(k, v) for k, v in self.request.query_params.multi_items() if k not in ("$top", "$skip")]
            query += [("$top", str(top)), ("$skip", str(skip + top))]
            data["@odata.nextLink"] = str(self.request.url.replace(query=urlencode(query, safe="$")))
        return self.json(data)


Handler = Callable[[Call], Awaitable[Response]]


def graph_routes(backend: GraphBackend) -> list[Route]:
    def endpoint(kind: str, handler: Handler, mailbox_scoped: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
            backend.stats.record_request(request.method, kind)
            try:
                app = backend.issuer.authenticate(request.headers)
                needed = permission_of(kind, request.method)
                if needed is not None and needed in app.denied:
                    raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
                mailbox = backend.tenant.directory.require(request.path_params["user"]) if mailbox_scoped else None
                async with backend.throttle.admit(app.client_id, mailbox.id if mailbox else None):
                    if backend.tunables.latency:
                        await asyncio.sleep(backend.tunables.latency)
                    response = await handler(Call(request, app, mailbox, backend))
                if mailbox is not None and response.status_code < 300:
                    if request.method == "GET" and kind in EVENT_READ_KINDS:
                        backend.stats.record_mailbox("event_reads", mailbox.id)
                    elif request.method != "GET" and kind in EVENT_WRITE_KINDS:
                        backend.stats.record_mailbox("event_writes", mailbox.id)
            except GraphError as error:
                response = error.response(request_id)
            response.headers["request-id"] = request_id
            response.headers["client-request-id"] = request_id
            return response

        return run

    users = "/v1.0/users/{user}"
    routes: list[Route] = []
    batch = BatchRunner(routes, backend)
    routes += [
        Route("/v1.0/$batch", endpoint("batch", batch.run, False), methods=["POST"]),
        Route("/v1.0/places/microsoft.graph.room", endpoint("places", list_rooms, False), methods=["GET"]),
        Route("/v1.0/places/graph.room", endpoint("places", list_rooms, False), methods=["GET"]),  # msgraph-sdk's
        Route("/v1.0/places/microsoft.graph.roomlist", endpoint("places", list_room_lists, False), methods=["GET"]),
        Route("/v1.0/places/graph.roomlist", endpoint("places", list_room_lists, False), methods=["GET"]),
        Route("/v1.0/places/{place}/microsoft.graph.roomlist/rooms", endpoint("places", list_rooms_of_list, False),
              methods=["GET"]),
        Route("/v1.0/places/{place}/graph.roomlist/rooms", endpoint("places", list_rooms_of_list, False),
              methods=["GET"]),
        Route("/v1.0/applications{key:path}", endpoint("applications", get_application, False), methods=["GET"]),
        Route(users, endpoint("user", get_user), methods=["GET"]),
        Route(f"{users}/mailboxSettings", endpoint("mailboxSettings", get_mailbox_settings), methods=["GET"]),
        Route(f"{users}/events", endpoint("events", events_collection), methods=["GET", "POST"]),
        Route(f"{users}/events/{{event_id}}", endpoint("event", event_item), methods=["GET", "PATCH", "DELETE"]),
        Route(f"{users}/events/{{event_id}}/cancel", endpoint("cancel", cancel_event), methods=["POST"]),
        Route(f"{users}/events/{{event_id}}/decline", endpoint("decline", decline_event), methods=["POST"]),
        Route(f"{users}/events/{{event_id}}/instances", endpoint("instances", event_instances), methods=["GET"]),
        Route(f"{users}/calendarView", endpoint("calendarView", calendar_view), methods=["GET"]),
        Route(f"{users}/calendarView/delta", endpoint("delta", calendar_view_delta), methods=["GET"]),
        Route(f"{users}/calendarView/delta()", endpoint("delta", calendar_view_delta), methods=["GET"]),  # the SDK's
        Route(
            "/v1.0/subscriptions", endpoint("subscriptions", subscriptions_collection, False), methods=["GET", "POST"]
        ),
        Route(
            "/v1.0/subscriptions/{subscription_id}",
            endpoint("subscription", subscription_item, False),
            methods=["GET", "PATCH", "DELETE"],
        ),
        Route("/v1.0/{rest:path}", endpoint("unknown", unknown_segment, False)),
    ]
    return routes


# -- directory ---------------------------------------------------------------------------------------------------


async def list_rooms(call: Call) -> Response:
    rooms = [place.json() for place in call.backend.tenant.directory.listed_rooms()]
    return call.page(rooms, "places/microsoft.graph.room", call.backend.tunables.places_page_size)


async def list_room_lists(call: Call) -> Response:
    """`GET /places/microsoft.graph.roomlist`: the tenant's room lists."""
    lists = [room_list.json() for room_list in call.backend.tenant.directory.room_lists.values()]
    return call.page(lists, "places/microsoft.graph.roomList", call.backend.tunables.places_page_size)


async def list_rooms_of_list(call: Call) -> Response:
    """`GET /places/{room list e-mail or id}/microsoft.graph.roomlist/rooms`: the rooms of one list (404: no such
    list)."""
    directory = call.backend.tenant.directory
    rooms = [place.json() for place in directory.rooms_of_list(call.request.path_params["place"])]
    return call.page(rooms, "places('…')/microsoft.graph.roomList/rooms", call.backend.tunables.places_page_size)


_APPLICATION_KEY = re.compile(r"^\(appId='([^']*)'\)$|^/([0-9a-fA-F-]{36})$")


async def get_application(call: Call) -> Response:
    """`GET /applications(appId='{client id}')` or `/applications/{object id}`, `$select` honoured for the top-level
    properties (the bridge asks for `passwordCredentials` only)."""
    found = _APPLICATION_KEY.match(call.request.path_params["key"])
    if found is None:
        raise invalid_request("Invalid object identifier.")
    app_id, object_id = found.group(1), found.group(2)
    app = call.backend.issuer.app(app_id) if app_id else next(
        (a for a in call.backend.issuer.apps() if a.object_id == object_id), None)
    if app is None:
        raise GraphError(404, "Request_ResourceNotFound",
                         f"Resource '{app_id or object_id}' does not exist or one of its queried reference-property "
                         "objects are not present.")
    data = app.application_json()
    select = call.request.query_params.get("$select")
    if select:
        wanted = {s.strip() for s in select.split(",")}
        data = {k: v for k, v in data.items() if k in wanted or k == "id"}
    return call.json({"@odata.context": f"{call.base}/$metadata#applications/$entity", **data})


async def get_user(call: Call) -> Response:
    return call.json({"@odata.context": f"{call.base}/$metadata#users/$entity", **call.user.user_json()})


async def get_mailbox_settings(call: Call) -> Response:
    context = f"{call.base}/$metadata#users('{call.user.id}')/mailboxSettings"
    return call.json({"@odata.context": context, **call.user.mailbox_settings_json()})


# -- events ------------------------------------------------------------------------------------------------------


async def events_collection(call: Call) -> Response:
    exchange = call.backend.exchange
    if call.request.method == "POST":
        event, _ = exchange.create(call.user, await call.json_body())
        return call.event_json(event, 201)
    events = exchange.events_of(call.user)
    if (expression := call.request.query_params.get("$filter")) is not None:
        events = _filtered(events, expression)
    items = [event.json(call.zone()) for event in events]
    return call.page(items, f"users('{call.user.id}')/events", call.backend.tunables.events_page_size)


async def event_item(call: Call) -> Response:
    exchange, event_id = call.backend.exchange, call.request.path_params["event_id"]
    if call.request.method == "DELETE":
        exchange.delete(call.user, event_id)
        return Response(status_code=204)
    if call.request.method == "PATCH":
        return call.event_json(exchange.update(call.user, event_id, await call.json_body()))
    return call.event_json(exchange.get(call.user, event_id))


async def cancel_event(call: Call) -> Response:
    await call.json_body()  # {"comment": …}: accepted, not kept (room copies drop bodies anyway)
    call.backend.exchange.cancel(call.user, call.request.path_params["event_id"])
    return Response(status_code=202)


async def decline_event(call: Call) -> Response:
    """`POST .../decline` `{"comment", "sendResponse"}` (the SDK writes `Comment`, `SendResponse`: Graph reads
    property names case-insensitively)."""
    body = {str(k).lower(): v for k, v in (await call.json_body()).items()}
    comment = body.get("comment")
    call.backend.exchange.decline(call.user, call.request.path_params["event_id"],
                                  comment if isinstance(comment, str) else "", bool(body.get("sendresponse", True)))
    return Response(status_code=202)


async def calendar_view(call: Call) -> Response:
    """Single instances plus the occurrences and exceptions of series in the window (never series masters)."""
    window = _window(call)
    events = call.backend.exchange.view(call.user, window.start, window.end)
    items = [event.json(call.zone()) for event in events]
    return call.page(items, f"users('{call.user.id}')/calendarView", call.backend.tunables.events_page_size)


async def event_instances(call: Call) -> Response:
    window, master_id = _window(call), call.request.path_params["event_id"]
    events = call.backend.exchange.instances(call.user, master_id, window.start, window.end)
    items = [event.json(call.zone()) for event in events]
    context = f"users('{call.user.id}')/events('{master_id}')/instances"
    return call.page(items, context, call.backend.tunables.events_page_size)


async def calendar_view_delta(call: Call) -> Response:
    deltas, params = call.backend.deltas, call.request.query_params
    prefs = call.preferences()
    page_size = int(prefs["odata.maxpagesize"]) if prefs.get("odata.maxpagesize", "").isdigit() else 0
    page_size = page_size or call.backend.tunables.delta_page_size
    token = params.get("$skiptoken") or params.get("$deltatoken")
    if token is not None:
        page = deltas.follow(call.user, token, page_size, call.zone())
    else:
        page = deltas.initial(call.user, _window(call), page_size, call.zone())
    link = f"{call.base}/users/{call.user.id}/calendarView/{call.request.url.path.rsplit('/', 1)[-1]}"
    data: dict[str, Any] = {"@odata.context": f"{call.base}/$metadata#Collection(event)", "value": page.items}
    if page.skip_token is not None:
        data["@odata.nextLink"] = f"{link}?$skiptoken={page.skip_token}"
    else:
        data["@odata.deltaLink"] = f"{link}?$deltatoken={page.delta_token}"
    response = call.json(data)
    if page_size != call.backend.tunables.delta_page_size:
        response.headers["Preference-Applied"] = f"odata.maxpagesize={page_size}"
    return response


def _window(call: Call) -> Window:
    start, end = (call.request.query_params.get(name) for name in ("startDateTime", "endDateTime"))
    if not start or not end:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the "
            "query string parameters StartDateTime and EndDateTime.",
        )
    return Window(call.user.id, parse_iso(start), parse_iso(end))


def _filtered(events: list[Event], expression: str) -> list[Event]:
    """Only `iCalUId eq '…'` and `transactionId eq '…'`: enough to find one meeting's copies."""
    match = _FILTER.match(expression)
    if match is None:
        raise invalid_request(f"Unsupported $filter '{expression}' (the simulator knows iCalUId/transactionId eq).")
    field, value = match.groups()
    attribute = "ical_uid" if field == "iCalUId" else "transaction_id"
    return [e for e in events if getattr(e, attribute) == value]


# -- $batch ------------------------------------------------------------------------------------------------------


class BatchRunner:
    """`POST /$batch`: each item goes through the same routes (auth, per-mailbox limit, faults, stats) in-process,
    at most BATCH_CONCURRENCY at once; `dependsOn` waits for the named items (424 if one of them failed).
    A throttled item is a 429 inside the 200 batch response, as Graph does."""

    def __init__(self, routes: list[Route], backend: GraphBackend) -> None:
        self.routes = routes
        self.backend = backend

    async def run(self, call: Call) -> Response:
        body = await call.json_body()
        items = body.get("requests")
        if not isinstance(items, list) or not items:
            raise GraphError(400, "BadRequest", "Invalid batch payload format: 'requests' must be a non-empty array.")
        if len(items) > MAX_BATCH_REQUESTS:
            raise GraphError(
                400, "BadRequest", f"Invalid batch payload format: at most {MAX_BATCH_REQUESTS} requests per batch."
            )
        ids = [self._check(item) for item in items]
        if len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Invalid batch payload format: request ids must be unique.")
        for item in items:
            for dependency in _depends_on(item):
                if dependency not in ids or dependency == item["id"]:
                    raise GraphError(400, "BadRequest", f"Invalid dependsOn '{dependency}' in request {item['id']}.")
        self.backend.stats.add("batch_items", len(items))
        finished = {item_id: asyncio.Event() for item_id in ids}
        results: dict[str, dict[str, Any]] = {}
        slots = asyncio.Semaphore(BATCH_CONCURRENCY)
        transport = httpx.ASGITransport(app=Router(routes=self.routes), raise_app_exceptions=False)
        authorization = call.request.headers.get("authorization", "")
        async with httpx.AsyncClient(transport=transport, base_url=str(call.request.base_url)) as client:

            async def one(item: dict[str, Any]) -> None:
                try:
                    for dependency in _depends_on(item):
                        await finished[dependency].wait()
                    if any(results[d]["status"] >= 400 for d in _depends_on(item)):
                        results[item["id"]] = _item_error(item["id"], 424, "FailedDependency", "A dependency failed.")
                        return
                    async with slots:
                        results[item["id"]] = await self._dispatch(client, authorization, item)
                finally:
                    finished[item["id"]].set()

            await asyncio.gather(*(one(item) for item in items))
        return call.json({"responses": [results[item_id] for item_id in ids]})

    @staticmethod
    def _check(item: object) -> str:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise GraphError(400, "BadRequest", "Invalid batch payload format: every request needs a string id.")
        if str(item.get("method", "")).upper() not in BATCH_METHODS or not isinstance(item.get("url"), str):
            raise GraphError(400, "BadRequest", f"Invalid method or url in batch request {item['id']}.")
        if "headers" in item and not isinstance(item["headers"], dict):
            raise GraphError(400, "BadRequest", f"Invalid headers in batch request {item['id']}.")
        return str(item["id"])

    async def _dispatch(self, client: httpx.AsyncClient, authorization: str, item: dict[str, Any]) -> dict[str, Any]:
        url = str(item["url"])
        if url.lower().startswith(("http://", "https://")):
            parts = urlsplit(url)
            url = parts.path.removeprefix("/v1.0") + (f"?{parts.query}" if parts.query else "")
        path = "/v1.0/" + url.lstrip("/")
        if urlsplit(path).path.rstrip("/") == "/v1.0/$batch":
            return _item_error(item["id"], 400, "BadRequest", "A batch can't contain another batch.")
        headers = {"Authorization": authorization, **{str(k): str(v) for k, v in (item.get("headers") or {}).items()}}
        content: bytes | None = None
        if item.get("body") is not None:
            body = item["body"]
            content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        response = await client.request(str(item["method"]).upper(), path, headers=headers, content=content)
        result: dict[str, Any] = {
            "id": item["id"],
            "status": response.status_code,
            "headers": {
                "-".join(p.capitalize() for p in name.split("-")): response.headers[name]
                for name in _BATCH_HEADERS
                if name in response.headers
            },
        }
        if response.content:
            try:
                result["body"] = response.json()
            except ValueError:
                result["body"] = response.text
        return result


def _depends_on(item: dict[str, Any]) -> list[str]:
    return [str(d) for d in item.get("dependsOn") or []]


def _item_error(item_id: str, status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": status,
        "headers": {"Content-Type": "application/json"},
        "body": {"error": {"code": code, "message": message}},
    }


# -- subscriptions -----------------------------------------------------------------------------------------------


async def subscriptions_collection(call: Call) -> Response:
    subscriptions = call.backend.subscriptions
    context = f"{call.base}/$metadata#subscriptions"
    if call.request.method == "POST":
        sub = await subscriptions.create(await call.json_body(), call.app)
        return call.json({"@odata.context": f"{context}/$entity", **sub.json()}, 201)
    mine = [s.json() for s in subscriptions.active().values() if s.application_id == call.app.client_id]
    return call.json({"@odata.context": context, "value": mine})


async def subscription_item(call: Call) -> Response:
    subscriptions, subscription_id = call.backend.subscriptions, call.request.path_params["subscription_id"]
    if call.request.method == "DELETE":
        subscriptions.delete(subscription_id, call.app)
        return Response(status_code=204)
    if call.request.method == "PATCH":
        sub = subscriptions.renew(subscription_id, await call.json_body(), call.app)
    else:
        sub = subscriptions.get(subscription_id, call.app)
    return call.json({"@odata.context": f"{call.base}/$metadata#subscriptions/$entity", **sub.json()})


async def unknown_segment(call: Call) -> Response:
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{call.request.path_params['rest']}'.")
