"""The admin's work list and windows (issue 10): the journal with filters and cursor paging, retry and mark-handled,
statistics per period, test-connection.

Same guarantees as the rest of the admin API (app/web/admin.py): bearer token, ids and query values checked before
any query (422/404, never 500), 503 + Retry-After when the database or the queue is unreachable.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dramatiq
from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, or_
from sqlmodel import Session, col, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.platform.db import session_scope
from app.platform.models import EventCopy, JournalEntry, Link, Room
from app.sync import connection, journal
from app.sync.runtime import current
from app.web.admin import _get, _parse, admin
from app.web.common import ApiError, safe_id
from app.workers import actors
from app.workers.broker import pending

ENTRY_ID_MAX = 36
MAX_LIMIT = 1000
# `status` filter: the stored statuses and the outcomes the admin reads (synced = ok, waiting = an error entry of a
# job that waits).
STATUS_FILTERS = ("ok", "synced", "skipped", "invalid", "error", "waiting", "conflict", "handled", "resolved",
                  "failed")
MAX_STATS_DAYS = 366


def _bad(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid", message, fields=[{"field": field, "message": message}])


def _when(request: Request, name: str) -> datetime | None:
    """A query value as an aware datetime: an ISO date (midnight UTC) or date-time (UTC if no offset)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(), UTC)
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _bad(name, f"{name} must be an ISO date or date-time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not (datetime(1970, 1, 1, tzinfo=UTC) <= value <= datetime(9000, 1, 1, tzinfo=UTC)):
        raise _bad(name, f"{name} is out of range")
    return value


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "100")
    # ASCII digits, at most 4 (str.isdigit takes "²", and int() refuses 5,000 digits)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not (1 <= int(raw) <= MAX_LIMIT):
        raise _bad("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _encode_cursor(entry: JournalEntry) -> str:
    return base64.urlsafe_b64encode(f"{entry.at.isoformat()}|{entry.id}".encode()).decode()


def _decode_cursor(raw: str) -> tuple[datetime, str]:
    try:
        at, _, entry_id = base64.urlsafe_b64decode(raw.encode("ascii")).decode().partition("|")
        when = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeError):
        raise _bad("cursor", "cursor is not one this API gave") from None
    if not safe_id(entry_id, ENTRY_ID_MAX):
        raise _bad("cursor", "cursor is not one this API gave")
    return when, entry_id


def entry_view(entry: JournalEntry) -> dict[str, Any]:
    """One journal entry as the admin reads it: outcome, reason, both sides' identities, attempts, first/last time."""
    out = entry.model_dump(mode="json")
    out["outcome"] = journal.outcome_of(entry)
    out["first_at"] = out["at"]
    out["last_at"] = out["last_at"] or out["at"]
    return out


def _room_filter(s: Session, integration_id: str, room: str) -> Any:
    """Entries of one room (its id or e-mail): written for the room, or about a meeting/loan it holds a copy of."""
    row = s.exec(select(Room).where(col(Room.integration_id) == integration_id,
                                    or_(col(Room.id) == room, col(Room.email) == room.lower()))).first()
    if row is None:
        return None
    links = select(Link.ical_uid).join(EventCopy, col(EventCopy.link_id) == col(Link.id)).where(
        col(EventCopy.room_id) == row.id)
    loans = select(Link.loan_id).join(EventCopy, col(EventCopy.link_id) == col(Link.id)).where(
        col(EventCopy.room_id) == row.id, col(Link.loan_id).is_not(None))
    return or_(col(JournalEntry.room_id) == row.id, col(JournalEntry.ical_uid).in_(links),
               col(JournalEntry.loan_id).in_(loans))


def _status_filter(status: str) -> Any:
    if status == "synced":
        return col(JournalEntry.status).in_(("ok", "conflict"))
    if status == "waiting":
        return and_(col(JournalEntry.status) == "error", col(JournalEntry.action) == "wait")
    return col(JournalEntry.status) == status


@admin
async def list_journal(request: Request) -> Response:
    """The journal of one integration, newest first: `status`, `direction`, `room`, `from`, `to`, `cursor`, `limit`."""
    q = request.query_params
    limit = _limit(request)
    status = q.get("status")
    if status is not None and status not in STATUS_FILTERS:
        raise _bad("status", f"status must be one of {', '.join(STATUS_FILTERS)}")
    direction = q.get("direction")
    if direction is not None and not safe_id(direction, 32):
        raise _bad("direction", "direction is not a direction")
    room = q.get("room")
    if room is not None and not safe_id(room, 320):
        raise _bad("room", "room must be a room id or e-mail address")
    since, until = _when(request, "from"), _when(request, "to")
    cursor = _decode_cursor(q["cursor"]) if "cursor" in q else None

    def work() -> dict[str, Any]:
        with Session(current().engine) as s:
            integration = _get(s, request.path_params["id"])
            query = select(JournalEntry).where(col(JournalEntry.integration_id) == integration.id)
            if status is not None:
                query = query.where(_status_filter(status))
            if direction is not None:
                query = query.where(col(JournalEntry.direction) == direction)
            if room is not None:
                where = _room_filter(s, integration.id, room)
                if where is None:
                    return {"items": [], "next_cursor": None}
                query = query.where(where)
            if since is not None:
                query = query.where(col(JournalEntry.at) >= since)
            if until is not None:
                query = query.where(col(JournalEntry.at) < until)
            if cursor is not None:
                at, entry_id = cursor
                query = query.where(or_(col(JournalEntry.at) < at,
                                        and_(col(JournalEntry.at) == at, col(JournalEntry.id) < entry_id)))
            rows = s.exec(query.order_by(col(JournalEntry.at).desc(), col(JournalEntry.id).desc())
                          .limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": [entry_view(r) for r in rows],
                "next_cursor": _encode_cursor(rows[-1]) if more and rows else None}

    return JSONResponse(await run_in_threadpool(work))


def _entry(s: Session, entry_id: str) -> JournalEntry:
    entry = s.get(JournalEntry, entry_id) if safe_id(entry_id, ENTRY_ID_MAX) else None
    if entry is None:
        raise ApiError(404, "not_found", "no such journal entry")
    return entry


def _send(actor: dramatiq.Actor[..., Any], entry_id: str, *args: Any) -> None:
    # `journaled`: when this run goes through, the failure policy marks the entry resolved (app/workers/failures.py).
    actor.send_with_options(args=args, journaled=[entry_id])


def _retry_jobs(s: Session, entry: JournalEntry) -> list[tuple[dramatiq.Actor[..., Any], tuple[Any, ...]]]:
    """The jobs a live change of this entry would have run: a notification's for a meeting (each room's copy), a
    hook's for a loan, the rooms import, a room's subscription or reconciliation."""
    iid = entry.integration_id
    if entry.direction == "booking_to_outlook" and entry.loan_id:
        return [(actors.process_loan, (iid, entry.loan_id))]
    if entry.direction == "outlook_to_booking":
        if entry.room_id and entry.event_id:
            return [(actors.process_room_event, (iid, entry.room_id, entry.event_id, "updated"))]
        link = None
        if entry.ical_uid:
            link = s.exec(select(Link).where(col(Link.integration_id) == iid,
                                             col(Link.ical_uid) == entry.ical_uid)).first()
        elif entry.loan_id:
            link = s.exec(select(Link).where(col(Link.integration_id) == iid,
                                             col(Link.loan_id) == entry.loan_id)).first()
        if link is not None:
            copies = s.exec(select(EventCopy).where(col(EventCopy.link_id) == link.id)).all()
            return [(actors.process_room_event, (iid, c.room_id, c.event_id, "updated")) for c in copies]
        return []
    if entry.direction == "rooms":
        return [(actors.import_rooms, (iid,))]
    if entry.direction == "subscriptions" and entry.room_id:
        return [(actors.ensure_subscription, (entry.room_id,))]
    if entry.direction == "reconcile" and entry.room_id:
        return [(actors.reconcile_room, (entry.room_id,))]
    if entry.direction == "reconcile":
        return [(actors.reconcile_loans, (iid,))]
    return []


def retry(entry_id: str) -> int:
    """Enqueue the jobs of this entry's change (a handled entry is reopened); returns how many. 404/409 as ApiError."""
    with session_scope(current().engine) as s:
        entry = _entry(s, entry_id)
        jobs = _retry_jobs(s, entry)
        if not jobs:
            raise ApiError(409, "not_retryable", "this entry names no change that can be run again")
        if entry.status == journal.HANDLED:
            entry.status, entry.handled_at = "error", None
        entry.message += f" — retry asked {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
        s.add(entry)
        entry_id = entry.id
    for actor, args in jobs:
        _send(actor, entry_id, *args)
    return len(jobs)


def handled(entry_id: str) -> dict[str, Any]:
    with session_scope(current().engine) as s:
        entry = _entry(s, entry_id)
        journal.mark_handled(s, entry)
        s.flush()
        return entry_view(entry)


@admin
async def retry_entry(request: Request) -> Response:
    """Run the change of this entry again now, through the same jobs as a live change (a handled entry is reopened)."""
    jobs = await run_in_threadpool(retry, request.path_params["id"])
    return JSONResponse({"status": "queued", "jobs": jobs}, status_code=202)


@admin
async def mark_handled(request: Request) -> Response:
    """Never run this change again (retries, reconciliation, backfill) until a newer change of it arrives."""
    return JSONResponse(await run_in_threadpool(handled, request.path_params["id"]))


# --- statistics --------------------------------------------------------------------------------------------------


def _period(at: datetime, bucket: str) -> date:
    day = at.astimezone(UTC).date() if at.tzinfo else at.date()
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


def queued_jobs() -> int | None:
    rt = current()
    broker = dramatiq.get_broker()
    if rt.redis is None:
        return pending(broker)
    namespace = getattr(broker, "namespace", None)
    if namespace is None:
        return None
    return sum(int(rt.redis.llen(f"{namespace}:{q}")) + int(rt.redis.zcard(f"{namespace}:{q}.DQ"))
               for q in broker.get_declared_queues())


def stats_of(session: Session, integration_id: str, since: datetime, until: datetime,
             bucket: str) -> dict[str, Any]:
    """Changes per direction and outcome per period, as the journal holds them, plus the backlog."""
    rows = session.exec(select(JournalEntry.at, JournalEntry.direction, JournalEntry.status, JournalEntry.action)
                        .where(col(JournalEntry.integration_id) == integration_id, col(JournalEntry.at) >= since,
                               col(JournalEntry.at) < until)).all()
    periods: dict[date, Counter[tuple[str, str]]] = defaultdict(Counter)
    for at, direction, status, action in rows:
        outcome = "waiting" if status == "error" and action == "wait" else journal.OUTCOMES.get(status, status)
        periods[_period(at, bucket)][(direction, outcome)] += 1
    step = timedelta(days=7 if bucket == "week" else 1)
    out: list[dict[str, Any]] = []
    start = _period(since, bucket)
    while datetime.combine(start, time(), UTC) < until:
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for (direction, outcome), n in sorted(periods.get(start, Counter()).items()):
            counts[direction][outcome] = n
        out.append({"start": start.isoformat(), "counts": counts, "total": sum(periods.get(start, {}).values())})
        start += step
    open_errors = session.exec(select(func.count()).select_from(JournalEntry).where(
        col(JournalEntry.integration_id) == integration_id, col(JournalEntry.status) == "error",
        col(JournalEntry.action) != "wait")).one()
    waiting = session.exec(select(func.count(), func.min(JournalEntry.at)).where(
        col(JournalEntry.integration_id) == integration_id, col(JournalEntry.status) == "error",
        col(JournalEntry.action) == "wait")).one()
    oldest = waiting[1]
    return {"from": since.isoformat(), "to": until.isoformat(), "bucket": bucket, "periods": out,
            "backlog": {"open_errors": int(open_errors), "waiting": int(waiting[0]),
                        "oldest_waiting_at": oldest.isoformat() if oldest else None}}


@admin
async def stats(request: Request) -> Response:
    """`?from=&to=&bucket=day|week` (default: the last 7 days by day)."""
    bucket = request.query_params.get("bucket", "day")
    if bucket not in ("day", "week"):
        raise _bad("bucket", "bucket must be day or week")
    until = _when(request, "to") or datetime.now(UTC)
    since = _when(request, "from") or until - timedelta(days=7)
    if since >= until:
        raise _bad("from", "from must be before to")
    if until - since > timedelta(days=MAX_STATS_DAYS):
        raise _bad("from", f"at most {MAX_STATS_DAYS} days at once")

    def work() -> dict[str, Any]:
        with Session(current().engine) as s:
            integration = _get(s, request.path_params["id"])
            result = stats_of(s, integration.id, since, until, bucket)
        try:
            result["backlog"]["queued_jobs"] = queued_jobs()
        except Exception:  # noqa: BLE001 - the counts above stand without the queue's
            result["backlog"]["queued_jobs"] = None
        return result

    return JSONResponse(await run_in_threadpool(work))


# --- test connection ---------------------------------------------------------------------------------------------


class ConnectionTestRequest(BaseModel):
    """`write`: also create and delete a probe event in the default user's calendar (Calendars.ReadWrite)."""

    model_config = ConfigDict(extra="forbid")

    write: bool = False


@admin
async def test_connection(request: Request) -> Response:
    data = await _parse(request, ConnectionTestRequest)

    def work() -> dict[str, Any]:
        rt = current()
        with Session(rt.engine) as s:
            _get(s, request.path_params["id"])
        return connection.check_connection(rt, request.path_params["id"], write=data.write)

    return JSONResponse(await run_in_threadpool(work))


@admin
async def last_connection_test(request: Request) -> Response:
    def work() -> dict[str, Any] | None:
        with Session(current().engine) as s:
            _get(s, request.path_params["id"])
            return connection.last_result(s, request.path_params["id"])

    result = await run_in_threadpool(work)
    if result is None:
        raise ApiError(404, "not_found", "no connection test yet")
    return JSONResponse(result)


routes = [
    Route("/api/integrations/{id}/journal", list_journal, methods=["GET"]),
    Route("/api/journal/{id}/retry", retry_entry, methods=["POST"]),
    Route("/api/journal/{id}/mark-handled", mark_handled, methods=["POST"]),
    Route("/api/integrations/{id}/stats", stats, methods=["GET"]),
    Route("/api/integrations/{id}/test-connection", test_connection, methods=["POST"]),
    Route("/api/integrations/{id}/test-connection", last_connection_test, methods=["GET"]),
]
