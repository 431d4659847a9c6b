"""Graph webhooks (SPEC §5): validate, enqueue, 202. Nothing here calls Graph or the booking system.

Graph drops notifications for endpoints that are often slower than 3 s, so this path does one indexed read
(the subscriptions named in the POST) and one enqueue per accepted item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.core.notifications import ChangeNotification, MalformedPayload, parse_batch
from app.platform.crypto import same_digest
from app.platform.logging import get_logger
from app.platform.metrics import NOTIFICATIONS
from app.platform.models import Integration, Subscription
from app.sync.runtime import current
from app.web.common import ApiError, answer_outages, read_body, safe_id, unavailable
from app.workers import actors

log = get_logger("roombridge.intake")

_UNSAFE_TOKEN = re.compile(r"[<>\x00-\x1f\x7f]")
_LIFECYCLE_EVENT = re.compile(r"^[A-Za-z]{1,64}$")  # subscriptionRemoved, missed, reauthorizationRequired, …
_CHANGE_TYPE = re.compile(r"^[A-Za-z,]{1,64}$")
# Graph event ids are opaque (base64 and more): printable ASCII without spaces, as long as EventCopy.event_id holds.
_EVENT_ID = re.compile(r"^[\x21-\x7e]{1,1024}$")
SUBSCRIPTION_ID_MAX = 128  # Subscription.id


@dataclass(frozen=True)
class Target:
    integration_id: str
    room_id: str


def validation_response(request: Request) -> Response | None:
    """The subscription handshake: echo the (URL-decoded) token as text/plain, refusing markup and controls."""
    if "validationToken" not in request.query_params:
        return None
    token = request.query_params["validationToken"]
    if not token or len(token) > 1024 or _UNSAFE_TOKEN.search(token):
        raise ApiError(400, "bad_validation_token", "validationToken is empty, too long or has unsafe characters")
    return PlainTextResponse(token, status_code=200)


def well_formed(item: ChangeNotification, kind: str) -> bool:
    """Whether an item's ids can be looked up and handed to a job: checked before any database read, so that a NUL
    or an over-long id is a rejected item (202, nothing enqueued), never a database error."""
    if not safe_id(item.subscription_id, SUBSCRIPTION_ID_MAX):
        return False
    if kind == "lifecycle":
        return _LIFECYCLE_EVENT.fullmatch(item.lifecycle_event or "") is not None
    event_id = item.event_id()
    return event_id is None or _EVENT_ID.fullmatch(event_id) is not None  # None: logged and skipped at enqueue


def accepted_items(session: Session, items: list[ChangeNotification]) -> list[tuple[ChangeNotification, Target]]:
    """Items whose subscription is known and active, whose integration is enabled, and whose clientState matches.
    The items' subscription ids must have passed `well_formed`."""
    ids = {i.subscription_id for i in items}
    if not ids:
        return []
    rows = session.exec(
        select(Subscription, Integration.enabled)
        .join(Integration, col(Integration.id) == col(Subscription.integration_id))
        .where(col(Subscription.id).in_(ids))
    ).all()
    subs = {sub.id: sub for sub, enabled in rows if enabled and sub.status == "active"}
    out = []
    for item in items:
        sub = subs.get(item.subscription_id)
        # Compare digests in constant time even when the subscription is unknown, so timing tells nothing.
        ok = same_digest(item.client_state or "", sub.client_state_digest if sub else "0" * 64)
        if sub is not None and ok:
            out.append((item, Target(sub.integration_id, sub.room_id)))
    return out


def _lookup(items: list[ChangeNotification]) -> list[tuple[ChangeNotification, Target]]:
    with Session(current().engine) as session:
        return accepted_items(session, items)


async def _intake(request: Request, kind: str) -> Response:
    """Database or queue unreachable → 503 + Retry-After (`answer_outages` on the routes below), so Graph retries."""
    handshake = validation_response(request)
    if handshake is not None:
        return handshake
    body = await read_body(request)
    try:
        items, malformed = parse_batch(body)
    except MalformedPayload as e:
        raise ApiError(400, "malformed_json", str(e)) from None
    received = len(items) + malformed
    accepted = await run_in_threadpool(_lookup, [i for i in items if well_formed(i, kind)])
    rejected = received - len(accepted)
    if rejected:
        NOTIFICATIONS.labels(kind, "rejected").inc(rejected)
        log.warning("notification items rejected", kind=kind, rejected=rejected, received=received)
    try:
        await run_in_threadpool(_enqueue, kind, accepted)
    except Exception as e:  # noqa: BLE001 - any broker failure means "not durably enqueued": let Graph retry
        log.error("queue unavailable", kind=kind, error=type(e).__name__)
        return unavailable("queue")
    if accepted:
        NOTIFICATIONS.labels(kind, "accepted").inc(len(accepted))
    return Response(status_code=202)


def _enqueue(kind: str, accepted: list[tuple[ChangeNotification, Target]]) -> None:
    for item, target in accepted:
        if kind == "lifecycle":
            actors.handle_lifecycle.send(item.subscription_id, item.lifecycle_event or "")
            continue
        event_id = item.event_id()
        if event_id is None:
            log.warning("notification without event id", subscription_id=item.subscription_id)
            continue
        change_type = item.change_type if _CHANGE_TYPE.fullmatch(item.change_type or "") else ""  # a hint only
        actors.send_event_hint(target.integration_id, target.room_id, event_id, change_type or "")


@answer_outages(unexpected_as_503=True)
async def notifications(request: Request) -> Response:
    return await _intake(request, "change")


@answer_outages(unexpected_as_503=True)
async def lifecycle(request: Request) -> Response:
    return await _intake(request, "lifecycle")
