"""The one place that talks to Microsoft Graph, through msgraph-sdk, for one integration (one app registration).

Authentication is always azure-identity's `ClientSecretCredential`. The SDK's own retry handler is switched off:
the job queue owns retries (a worker must not sleep holding a mailbox slot, and waits must not stack).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, time
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity.aio import ClientSecretCredential
from httpx import HTTPError
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_abstractions.serialization import ParsableFactory
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.models.attendee import Attendee as SdkAttendee
from msgraph.generated.models.attendee_type import AttendeeType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.event import Event as SdkEvent
from msgraph.generated.models.free_busy_status import FreeBusyStatus
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.location import Location
from msgraph.generated.models.location_type import LocationType
from msgraph.generated.models.location_unique_id_type import LocationUniqueIdType
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.sensitivity import Sensitivity
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder
from msgraph.generated.users.item.events.item.decline.decline_post_request_body import DeclinePostRequestBody
from msgraph.generated.users.item.events.item.instances.instances_request_builder import InstancesRequestBuilder
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from app.adapters.graph.errors import (
    GraphAuthError,
    GraphConflict,
    GraphError,
    GraphGone,
    GraphNotFound,
    GraphThrottled,
)
from app.core.graph import Attendee, EventWrite, GraphRoom, GraphSubscription, OutlookEvent
from app.core.timezones import parse_graph_datetime
from app.platform.metrics import GRAPH_CALLS
from app.platform.settings import DEFAULT_AUTHORITY_HOST

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
IMMUTABLE_IDS = 'IdType="ImmutableId"'
UTC_TIMES = 'outlook.timezone="UTC"'
DEFAULT_RETRY_AFTER_S = 5.0
BATCH_LIMIT = 20  # requests per JSON $batch (Graph's limit)
# What a failed response becomes on the raw path: the SDK's own error type, so `_translate` reads it as usual.
_ERRORS: dict[str, type[ParsableFactory]] = {"XXX": ODataError}

T = TypeVar("T")
Q = TypeVar("Q")  # the query parameters of one request builder


def _enum(value: Any, default: str = "") -> str:
    if value is None:
        return default
    return str(getattr(value, "value", value))


def _config(*prefer: str, query: Q | None = None) -> RequestConfiguration[Q]:
    config: RequestConfiguration[Q] = RequestConfiguration(query_parameters=query)
    for p in prefer:
        config.headers.add("Prefer", p)
    return config


def to_outlook_event(ev: Any, mailbox: str) -> OutlookEvent:
    """SDK `Event` → `OutlookEvent` (UTC times, lower-case addresses)."""
    organizer = ev.organizer.email_address if ev.organizer and ev.organizer.email_address else None

    def when(dt: Any) -> datetime | None:
        if dt is None or not dt.date_time:
            return None
        return parse_graph_datetime(dt.date_time, dt.time_zone)

    attendees = tuple(
        Attendee(
            email=(a.email_address.address or "").lower(),
            name=a.email_address.name or "",
            type=_enum(a.type, "required"),
            response=_enum(a.status.response if a.status else None, "none"),
        )
        for a in (ev.attendees or [])
        if a.email_address is not None
    )
    return OutlookEvent(
        id=ev.id,
        mailbox=mailbox,
        ical_uid=ev.i_cal_u_id or "",
        subject=ev.subject or "",
        organizer_email=(organizer.address or "").lower() if organizer else "",
        organizer_name=(organizer.name or "") if organizer else "",
        start=when(ev.start),
        end=when(ev.end),
        attendees=attendees,
        is_cancelled=bool(ev.is_cancelled),
        is_all_day=bool(ev.is_all_day),
        response=_enum(ev.response_status.response if ev.response_status else None, "none"),
        change_key=ev.change_key,
        last_modified=ev.last_modified_date_time.astimezone(UTC) if ev.last_modified_date_time else None,
        type=_enum(ev.type, "singleInstance"),
        series_master_id=ev.series_master_id,
        sensitivity=_enum(ev.sensitivity, "normal"),
        transaction_id=ev.transaction_id,
        show_as=_enum(ev.show_as) or None,
    )


def _text(value: Any, default: str = "") -> str:
    """An enum or string field of Graph's JSON: the value as Graph writes it, `default` when missing or empty."""
    return value if isinstance(value, str) and value else default


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _when_json(value: Any) -> datetime | None:
    """A `dateTimeTimeZone` object → aware UTC (None without a `dateTime`)."""
    value = _obj(value)
    date_time = value.get("dateTime")
    if not isinstance(date_time, str) or not date_time:
        return None
    zone = value.get("timeZone")
    return parse_graph_datetime(date_time, zone if isinstance(zone, str) else None)


def event_from_json(ev: dict[str, Any], mailbox: str) -> OutlookEvent:
    """An event as Graph's JSON has it → `OutlookEvent`: the same values `to_outlook_event` gives for the SDK's model
    of that JSON (the hot reads parse the answer straight into this instead of building kiota models, whose
    deserialisation was ~40 % of a worker's CPU). Enum fields keep Graph's string, a missing one its default."""
    organizer = _obj(_obj(ev.get("organizer")).get("emailAddress"))
    attendees = tuple(
        Attendee(
            email=(_text(address.get("address"))).lower(),
            name=_text(address.get("name")),
            type=_text(a.get("type"), "required"),
            response=_text(_obj(a.get("status")).get("response"), "none"),
        )
        for a in ev.get("attendees") or []
        if isinstance(a, dict) and isinstance(address := a.get("emailAddress"), dict)
    )
    return OutlookEvent(
        id=ev.get("id"),  # type: ignore[arg-type]  # Graph always names an event it answers with (as with the model)
        mailbox=mailbox,
        ical_uid=_text(ev.get("iCalUId")),
        subject=_text(ev.get("subject")),
        organizer_email=_text(organizer.get("address")).lower(),
        organizer_name=_text(organizer.get("name")),
        start=_when_json(ev.get("start")),
        end=_when_json(ev.get("end")),
        attendees=attendees,
        is_cancelled=bool(ev.get("isCancelled")),
        is_all_day=bool(ev.get("isAllDay")),
        response=_text(_obj(ev.get("responseStatus")).get("response"), "none"),
        change_key=ev.get("changeKey"),
        last_modified=_instant(ev.get("lastModifiedDateTime")),
        type=_text(ev.get("type"), "singleInstance"),
        series_master_id=ev.get("seriesMasterId"),
        sensitivity=_text(ev.get("sensitivity"), "normal"),
        transaction_id=ev.get("transactionId"),
        show_as=_text(ev.get("showAs")) or None,
    )


def to_graph_room(room: Any) -> GraphRoom:
    address = room.address
    return GraphRoom(
        place_id=room.id or "",
        email=(room.email_address or "").lower(),
        name=room.display_name or room.email_address or "",
        capacity=room.capacity,
        building=room.building,
        floor=room.floor_label or (str(room.floor_number) if room.floor_number is not None else None),
        tags=tuple(room.tags or ()),
        address={
            k: v
            for k, v in {
                "street": getattr(address, "street", None),
                "city": getattr(address, "city", None),
                "state": getattr(address, "state", None),
                "country": getattr(address, "country_or_region", None),
                "postal_code": getattr(address, "postal_code", None),
            }.items()
            if v
        },
    )


def room_from_json(room: dict[str, Any]) -> GraphRoom:
    """A `/places` room as Graph's JSON has it → `GraphRoom` (the same values as `to_graph_room` of the SDK model)."""
    address = room.get("address") or {}
    floor_number = room.get("floorNumber")
    return GraphRoom(
        place_id=room.get("id") or "",
        email=(room.get("emailAddress") or "").lower(),
        name=room.get("displayName") or room.get("emailAddress") or "",
        capacity=room.get("capacity"),
        building=room.get("building"),
        floor=room.get("floorLabel") or (str(floor_number) if floor_number is not None else None),
        tags=tuple(room.get("tags") or ()),
        address={
            k: v
            for k, v in {
                "street": address.get("street"),
                "city": address.get("city"),
                "state": address.get("state"),
                "country": address.get("countryOrRegion"),
                "postal_code": address.get("postalCode"),
            }.items()
            if v
        },
    )


def _time_of_day(value: Any) -> time | None:
    """Graph's `timeOfDay` ("08:00:00.0000000": up to 7 fraction digits, more than `time.fromisoformat` takes)."""
    if not isinstance(value, str) or not value:
        return None
    whole, _, fraction = value.partition(".")
    try:
        parsed = time.fromisoformat(whole)
    except ValueError:
        return None
    digits = "".join(c for c in fraction if c.isdigit())[:6]
    return parsed.replace(microsecond=int(digits.ljust(6, "0"))) if digits else parsed


def settings_from_json(settings: dict[str, Any] | None) -> dict[str, Any]:
    """`mailboxSettings` JSON → the plain values `mailbox_settings` returns."""
    settings = settings or {}
    hours = settings.get("workingHours") or {}
    zone = hours.get("timeZone") or {}
    return {
        "time_zone": settings.get("timeZone"),
        "working_days": [str(d) for d in hours.get("daysOfWeek") or []],
        "working_start": _time_of_day(hours.get("startTime")),
        "working_end": _time_of_day(hours.get("endTime")),
        "working_time_zone": zone.get("name") if isinstance(zone, dict) else None,
    }


def error_of(what: str, status: int, body: Any, headers: dict[str, str] | None = None) -> GraphError:
    """A failed Graph answer (e.g. one item of a `$batch`) as the adapter's error types."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = (error.get("message") if isinstance(error, dict) else None) or "no message"
    return _error(what, status, code, message, headers or {})


class GraphGateway:
    """Graph calls for one app registration. Create one per integration per process; use from one event loop."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        base_url: str,
        authority_host: str = DEFAULT_AUTHORITY_HOST,
    ) -> None:
        self._credential = ClientSecretCredential(
            tenant_id,
            client_id,
            client_secret,
            authority=authority_host,
            # Instance discovery asks login.microsoftonline.com about the authority: only meaningful for Microsoft's.
            disable_instance_discovery=authority_host != DEFAULT_AUTHORITY_HOST,
        )
        host = urlsplit(base_url).hostname or "graph.microsoft.com"
        auth = AzureIdentityAuthenticationProvider(self._credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
        http_client = GraphClientFactory.create_with_default_middleware(
            options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0, should_retry=False)}
        )
        adapter = GraphRequestAdapter(auth, client=http_client)
        adapter.base_url = base_url
        self._client = GraphServiceClient(request_adapter=adapter)
        self._adapter = adapter
        self._http = http_client

    async def close(self) -> None:
        await self._credential.close()
        await self._http.aclose()

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await fn()
        except APIError as e:
            GRAPH_CALLS.labels(what, str(e.response_status_code or 0)).inc()
            raise _translate(what, e) from None
        except ClientAuthenticationError as e:
            GRAPH_CALLS.labels(what, "401").inc()
            raise GraphAuthError(f"{what}: authentication refused ({_first_line(e)})") from None
        except (ServiceRequestError, HTTPError, OSError) as e:
            GRAPH_CALLS.labels(what, "0").inc()
            raise GraphThrottled(f"{what}: Graph unreachable ({type(e).__name__})", DEFAULT_RETRY_AFTER_S) from None
        GRAPH_CALLS.labels(what, "2xx").inc()
        return result

    async def _raw(self, what: str, info: RequestInformation) -> Any:
        """The hot reads: the request built, authenticated and sent by the SDK (middleware, transport, errors as
        `APIError`), the JSON answer parsed straight into plain values instead of kiota models (at 10,000 rooms,
        kiota deserialising `/places` pages was 80 % of the import's CPU)."""
        self._pin_url(info)
        content = await self._call(what, lambda: self._adapter.send_primitive_async(info, "bytes", _ERRORS))
        return json.loads(content) if content else None

    def _pin_url(self, info: RequestInformation) -> None:
        """Expand the request's URL template once, by the SDK, and keep the result: kiota expands it (std-uritemplate,
        character by character in Python) each time the URL is read — three times on the way through the adapter and
        its authentication, ~8 % of a worker's CPU per Graph read (issue 9.2). The adapter's own base URL is set
        first, as it would set it; a URL set directly or a raw one (`with_url`) has nothing to expand."""
        if RequestInformation.RAW_URL_KEY in info.path_parameters or not info.url_template:
            return
        info.path_parameters["baseurl"] = self._adapter.base_url
        info.url = info.url

    async def get_json(self, what: str, path: str) -> Any:
        """One GET of `path` (relative to the version root, query included, e.g. `/places/microsoft.graph.roomlist`
        or an `@odata.nextLink`) through the SDK's adapter, answered as plain JSON. For the reads that have no hot
        path of their own (kept in small modules beside this one)."""
        info = RequestInformation(Method.GET, "{+baseurl}" + path, {})
        if path.startswith(("https://", "http://")):
            info.url = path
        info.headers.try_add("Accept", "application/json")
        return await self._raw(what, info)

    async def paged_json(self, what: str, path: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The `value` pages of a GET collection, following `@odata.nextLink`: only the current page is held."""
        url: str | None = path
        while url:
            page = await self.get_json(what, url) or {}
            yield [item for item in page.get("value") or [] if isinstance(item, dict)]
            next_link = page.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) and next_link else None

    # --- rooms and users -------------------------------------------------------------------------------------------

    async def room_pages(self) -> AsyncGenerator[list[GraphRoom], None]:
        """`/places` rooms, one page at a time (Graph's default page: 100), as Graph pages them: only the current
        page is held."""
        builder = self._client.places.graph_room
        info = builder.to_get_request_information()
        while True:
            page = await self._raw("list rooms", info) or {}
            yield [room_from_json(r) for r in page.get("value") or [] if isinstance(r, dict)]
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            info = builder.with_url(next_link).to_get_request_information()

    async def list_rooms(self) -> list[GraphRoom]:
        rooms: list[GraphRoom] = []
        async for page in self.room_pages():
            rooms.extend(page)
        return rooms

    async def batch(self, requests: list[dict[str, Any]]) -> dict[str, tuple[int, dict[str, str], Any]]:
        """One JSON `$batch` (≤ 20 requests `{"id", "method", "url"[, "headers", "body"]}`, urls relative to the
        version root): each item's `(status, headers, body)` by id. Graph runs up to 4 items at once; a throttled item
        is a `429` inside the `200` answer (its Retry-After in its own headers), for the caller to retry."""
        if not 0 < len(requests) <= BATCH_LIMIT:
            raise ValueError(f"a batch holds 1 to {BATCH_LIMIT} requests, not {len(requests)}")
        info = RequestInformation(Method.POST, "{+baseurl}/$batch", {})
        info.headers.try_add("Accept", "application/json")
        info.set_stream_content(json.dumps({"requests": requests}).encode(), "application/json")
        answer = await self._raw("batch", info) or {}
        out: dict[str, tuple[int, dict[str, str], Any]] = {}
        for item in answer.get("responses") or []:
            if isinstance(item, dict) and "id" in item:
                headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
                out[str(item["id"])] = (int(item.get("status") or 0), headers, item.get("body"))
        return out

    async def batch_get(
        self, what: str, urls: dict[str, str], concurrency: int = 4
    ) -> dict[str, Any | GraphError]:
        """GET many urls (key → url) through `$batch`es of 20, up to `concurrency` batches in flight: each key's JSON
        body, or its error (`GraphThrottled` with the item's Retry-After for a throttled item: the caller decides
        whether to try it again)."""
        keys = list(urls)
        chunks = [keys[i : i + BATCH_LIMIT] for i in range(0, len(keys), BATCH_LIMIT)]
        gate = asyncio.Semaphore(max(concurrency, 1))
        out: dict[str, Any | GraphError] = {}

        async def one(chunk: list[str]) -> None:
            async with gate:
                try:
                    answers = await self.batch([{"id": str(i), "method": "GET", "url": urls[k]}
                                                for i, k in enumerate(chunk)])
                except GraphError as e:  # the whole batch failed (throttled, unreachable): every item with it
                    out.update((k, e) for k in chunk)
                    return
            for i, k in enumerate(chunk):
                status, headers, body = answers.get(str(i), (0, {}, None))
                if 200 <= status < 300:
                    out[k] = body
                elif status == 0:
                    out[k] = GraphThrottled(f"{what}: missing from the batch answer", DEFAULT_RETRY_AFTER_S)
                else:
                    out[k] = error_of(what, status, body, headers)

        await asyncio.gather(*(one(chunk) for chunk in chunks))
        return out

    async def user_ids(self, emails: Iterable[str]) -> dict[str, str | GraphError]:
        """Many users' object ids at once (`$batch`): email → id, or the error of that lookup."""
        found = await self.batch_get("get user", {e: f"/users/{_segment(e)}?$select=id" for e in emails})
        return {e: v if isinstance(v, GraphError) else _user_id(e, v) for e, v in found.items()}

    async def mailbox_settings_many(self, mailboxes: Iterable[str]) -> dict[str, dict[str, Any] | GraphError]:
        """Many mailboxes' settings at once (`$batch`): mailbox → the values `mailbox_settings` gives, or the error."""
        found = await self.batch_get("get mailbox settings",
                                     {m: f"/users/{_segment(m)}/mailboxSettings" for m in mailboxes})
        return {m: v if isinstance(v, GraphError) else settings_from_json(v) for m, v in found.items()}

    async def user_id(self, id_or_email: str) -> str:
        user = await self._call("get user", lambda: self._client.users.by_user_id(id_or_email).get())
        if user is None or not user.id:
            raise GraphNotFound(f"user {id_or_email} not found", 404)
        return user.id

    # --- events ----------------------------------------------------------------------------------------------------

    async def get_event(self, mailbox: str, event_id: str) -> OutlookEvent | None:
        """The event as it is now, or None if it no longer exists."""
        builder = self._client.users.by_user_id(mailbox).events.by_event_id(event_id)
        try:
            ev = await self._raw("get event", builder.to_get_request_information(_config(IMMUTABLE_IDS, UTC_TIMES)))
        except GraphNotFound:
            return None
        return event_from_json(ev, mailbox) if isinstance(ev, dict) else None

    async def find_event_by_ical_uid(self, mailbox: str, ical_uid: str) -> OutlookEvent | None:
        """The copy of a meeting (occurrence) in `mailbox`, found by its iCalUId."""
        builder = self._client.users.by_user_id(mailbox).events
        escaped = ical_uid.replace("'", "''")
        config = _config(IMMUTABLE_IDS, UTC_TIMES, query=EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
            filter=f"iCalUId eq '{escaped}'", top=1))
        page = await self._raw("find event", builder.to_get_request_information(config)) or {}
        found = [e for e in page.get("value") or [] if isinstance(e, dict)]
        return event_from_json(found[0], mailbox) if found else None

    async def instances(self, mailbox: str, master_id: str, start: datetime, end: datetime) -> list[OutlookEvent]:
        """The occurrences and exceptions of a series in [start, end)."""
        builder = self._client.users.by_user_id(mailbox).events.by_event_id(master_id).instances
        query = InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters(
            start_date_time=_iso(start), end_date_time=_iso(end))
        info = builder.to_get_request_information(_config(IMMUTABLE_IDS, UTC_TIMES, query=query))
        out: list[OutlookEvent] = []
        while True:
            page = await self._raw("list occurrences", info) or {}
            out.extend(event_from_json(e, mailbox) for e in page.get("value") or [] if isinstance(e, dict))
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return out
            info = builder.with_url(next_link).to_get_request_information(_config(IMMUTABLE_IDS, UTC_TIMES))

    async def calendar_delta(
        self, mailbox: str, start: datetime, end: datetime, delta_link: str | None = None
    ) -> tuple[list[OutlookEvent], list[str], str | None]:
        """One calendarView delta round: (changed events, ids reported `@removed`, the next deltaLink).

        Without `delta_link`, a full sync of [start, end). Raises `GraphGone` when the token is no longer honoured.
        """
        builder = self._client.users.by_user_id(mailbox).calendar_view.delta
        changed: list[OutlookEvent] = []
        removed: list[str] = []
        if delta_link:
            info = builder.with_url(delta_link).to_get_request_information(_config(IMMUTABLE_IDS, UTC_TIMES))
        else:
            info = builder.to_get_request_information(_config(
                IMMUTABLE_IDS, UTC_TIMES, "odata.maxpagesize=100",
                query=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                    start_date_time=_iso(start), end_date_time=_iso(end))))
        while True:
            page = await self._raw("calendar delta", info) or {}
            for ev in page.get("value") or []:
                if not isinstance(ev, dict):
                    continue
                if "@removed" in ev:
                    if ev.get("id"):  # a removal always names the event; one that does not cannot be acted on
                        removed.append(ev["id"])
                else:
                    changed.append(event_from_json(ev, mailbox))
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return changed, removed, page.get("@odata.deltaLink")
            info = builder.with_url(next_link).to_get_request_information(_config(IMMUTABLE_IDS, UTC_TIMES))

    # --- subscriptions ---------------------------------------------------------------------------------------------

    async def create_subscription(
        self, resource: str, notification_url: str, lifecycle_url: str, client_state: str, expires_at: datetime
    ) -> GraphSubscription:
        """POST /subscriptions through the SDK's adapter, the JSON built and read as plain values (building and
        deserialising kiota's `Subscription` model was ~20 ms of CPU per create, most of a 10,000-room import's)."""
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url,
            "resource": resource,
            "expirationDateTime": _iso(expires_at),
            "clientState": client_state,
        }
        info = _json_request(Method.POST, "{+baseurl}/subscriptions", body)
        info.headers.add("Prefer", IMMUTABLE_IDS)
        sub = await self._raw("create subscription", info) or {}
        sub_id, expiry = sub.get("id"), _instant(sub.get("expirationDateTime"))
        assert isinstance(sub_id, str) and sub_id and expiry is not None, "Graph answered a create without id/expiry"
        return GraphSubscription(sub_id, sub.get("resource") or resource, expiry)

    async def renew_subscription(self, subscription_id: str, expires_at: datetime) -> datetime:
        info = _json_request(Method.PATCH, "{+baseurl}/subscriptions/{subscription%2Did}",
                             {"expirationDateTime": _iso(expires_at)}, {"subscription%2Did": subscription_id})
        sub = await self._raw("renew subscription", info) or {}
        return _instant(sub.get("expirationDateTime")) or expires_at.astimezone(UTC)

    async def delete_subscription(self, subscription_id: str) -> None:
        try:
            await self._call(
                "delete subscription", lambda: self._client.subscriptions.by_subscription_id(subscription_id).delete()
            )
        except GraphNotFound:
            pass

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        """This app's subscriptions (all pages) as `{"id", "resource", "notification_url"}`."""
        found: list[dict[str, Any]] = []
        page = await self._call("list subscriptions", lambda: self._client.subscriptions.get())
        while page is not None:
            found.extend({"id": s.id, "resource": s.resource or "", "notification_url": s.notification_url}
                         for s in page.value or [] if s.id)
            next_link = page.odata_next_link
            if not next_link:
                break
            subs_page = self._client.subscriptions.with_url(next_link)
            page = await self._call("list subscriptions", subs_page.get)
        return found

    async def mailbox_settings(self, mailbox: str) -> dict[str, Any]:
        """A mailbox's `timeZone` and `workingHours` as plain values; zone names as Graph gives them (Windows or IANA):
        `{"time_zone", "working_days", "working_start", "working_end", "working_time_zone"}`."""
        builder = self._client.users.by_user_id(mailbox).mailbox_settings
        settings = await self._call("get mailbox settings", lambda: builder.get())
        hours = settings.working_hours if settings else None
        return {
            "time_zone": settings.time_zone if settings else None,
            "working_days": [_enum(d) for d in (hours.days_of_week or [])] if hours else [],
            "working_start": hours.start_time if hours else None,
            "working_end": hours.end_time if hours else None,
            "working_time_zone": hours.time_zone.name if hours and hours.time_zone else None,
        }

    # --- event writes (booking → Outlook, SPEC §7) ------------------------------------------------------------------

    async def create_event(self, mailbox: str, write: EventWrite) -> OutlookEvent:
        """Create in `mailbox`'s calendar; its `transactionId` makes a repeated create return the first event."""
        body = _sdk_event(write)
        body.transaction_id = write.transaction_id
        events = self._client.users.by_user_id(mailbox).events
        ev = await self._call("create event", lambda: events.post(body, _config(IMMUTABLE_IDS, UTC_TIMES)))
        assert ev is not None
        return to_outlook_event(ev, mailbox)

    async def patch_event(self, mailbox: str, event_id: str, write: EventWrite) -> OutlookEvent:
        """Rewrite the fields the bridge owns (raises `GraphNotFound` if the event is gone)."""
        builder = self._client.users.by_user_id(mailbox).events.by_event_id(event_id)
        body = _sdk_event(write)
        ev = await self._call("patch event", lambda: builder.patch(body, _config(IMMUTABLE_IDS, UTC_TIMES)))
        assert ev is not None
        return to_outlook_event(ev, mailbox)

    async def delete_event(self, mailbox: str, event_id: str) -> None:
        """Delete (an organiser's delete cancels the meeting for its rooms); already gone (404) counts as done."""
        builder = self._client.users.by_user_id(mailbox).events.by_event_id(event_id)
        try:
            await self._call("delete event", lambda: builder.delete(_config(IMMUTABLE_IDS)))
        except GraphNotFound:
            pass

    async def decline_event(self, mailbox: str, event_id: str, comment: str) -> None:
        """Decline a room's copy on the room's behalf, with `comment`, telling the organiser (`sendResponse`):
        Exchange marks the room declined in the organiser's event and removes the room's copy. Gone (404): done."""
        builder = self._client.users.by_user_id(mailbox).events.by_event_id(event_id).decline
        body = DeclinePostRequestBody(comment=comment, send_response=True)
        try:
            await self._call("decline event", lambda: builder.post(body, _config(IMMUTABLE_IDS)))
        except GraphNotFound:
            pass


def _sdk_event(write: EventWrite) -> SdkEvent:
    """The organiser's event as the SDK writes it."""

    def when(dt: datetime) -> DateTimeTimeZone:
        return DateTimeTimeZone(date_time=dt.astimezone(UTC).replace(tzinfo=None).isoformat(), time_zone="UTC")

    return SdkEvent(
        subject=write.subject,
        body=ItemBody(content_type=BodyType.Html, content=write.body_html),
        start=when(write.start),
        end=when(write.end),
        show_as=FreeBusyStatus(write.show_as),
        sensitivity=Sensitivity(write.sensitivity),
        attendees=[SdkAttendee(type=AttendeeType.Resource, email_address=EmailAddress(address=e, name=n))
                   for e, n in write.rooms],
        locations=[Location(display_name=n, location_type=LocationType.ConferenceRoom,
                            location_email_address=e, unique_id=e, unique_id_type=LocationUniqueIdType.Directory)
                   for e, n in write.rooms],
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _json_request(method: Method, template: str, body: dict[str, Any],
                  path: dict[str, Any] | None = None) -> RequestInformation:
    info = RequestInformation(method, template, dict(path or {}))
    info.headers.try_add("Accept", "application/json")
    info.set_stream_content(json.dumps(body).encode(), "application/json")
    return info


def _instant(value: Any) -> datetime | None:
    """An ISO instant as Graph writes it (`Z`, up to 7 fraction digits) → aware UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        text = f"{main}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _segment(value: str) -> str:
    return quote(value, safe="@")


def _user_id(email: str, body: Any) -> str | GraphError:
    user_id = body.get("id") if isinstance(body, dict) else None
    return user_id if isinstance(user_id, str) and user_id else GraphNotFound(f"user {email} not found", 404)


def _translate(what: str, e: APIError) -> GraphError:
    code = getattr(getattr(e, "error", None), "code", None)
    message = getattr(getattr(e, "error", None), "message", None) or _first_line(e)
    headers = {k.lower(): str(v) for k, v in (e.response_headers or {}).items()}
    return _error(what, e.response_status_code, code, message, headers)


def _error(what: str, status: int | None, code: str | None, message: str, headers: dict[str, str]) -> GraphError:
    """`headers`: lower-case names."""
    text = f"{what}: {status} {code or ''} {message}".strip()
    if status in (429, 503, 504):
        raw = headers.get("retry-after")
        retry_after = float(raw) if raw and str(raw).replace(".", "", 1).isdigit() else DEFAULT_RETRY_AFTER_S
        return GraphThrottled(text, retry_after, status)
    if status == 410 or code in ("syncStateNotFound", "SyncStateNotFound", "resyncRequired"):
        return GraphGone(text, status, code)
    if status == 404:
        return GraphNotFound(text, status, code)
    if status == 409:
        return GraphConflict(text, status, code)
    if status in (401, 403):
        return GraphAuthError(text, status, code)
    return GraphError(text, status, code)
