"""What a backfill from a date covers, counted before it starts (issue 10.7, seed 000's counter).

A backfill (`POST /api/integrations/{id}/backfill`, the status page's form, `roombridge backfill`) re-reads every
active room's calendar from `since` to the horizon and every loan changed since `since` (app/sync/reconcile.py).
`preview` counts the same things without writing anything: the events in each room's calendarView over that window
(one read per room, `$select=id,iCalUId`), the meetings they are (distinct iCalUIds: a meeting in two rooms is one
meeting), how many of those the bridge already links to a loan, and the loans the booking system lists as changed
since that date. A room Graph refuses is named, not fatal; the booking system unreachable leaves `loans` None.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from sqlmodel import Session, col, select

from app.adapters.booking.client import BookingError
from app.adapters.graph.errors import GraphError
from app.adapters.graph.gateway import GraphGateway
from app.platform.models import Integration, Link, Room
from app.sync.integrations import policy_of
from app.sync.rooms import active_rooms
from app.sync.runtime import Runtime

CONCURRENT_ROOMS = 4  # calendars read at once (each one request at a time: far below Graph's 4 per mailbox)
PAGE = 500


def window_of(integration: Integration, since: datetime, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The span a backfill from `since` reads: as reconciliation's window (a day ago to the horizon), widened back
    to `since` (app/sync/reconcile.py)."""
    now = now or datetime.now(UTC)
    horizon = now + timedelta(days=policy_of(integration).horizon_days)
    return min(now - timedelta(days=1), since), horizon


def since_of(day: Any) -> datetime:
    """A backfill's `since` date as midnight UTC."""
    return datetime.combine(day, time(), UTC)


async def _room_events(gateway: GraphGateway, room: Room, start: datetime, end: datetime,
                       gate: asyncio.Semaphore) -> list[str]:
    """The iCalUIds of the events of `room` in [start, end) (one per event: repeated for a series' occurrences)."""
    path = (f"/users/{quote(room.mailbox_id or room.email, safe='@')}/calendarView"
            f"?startDateTime={quote(_iso(start))}&endDateTime={quote(_iso(end))}&$select=id,iCalUId&$top={PAGE}")
    found: list[str] = []
    async with gate:
        async for page in gateway.paged_json("count events", path):
            found += [str(item.get("iCalUId") or item.get("id") or "") for item in page]
    return found


async def _count_events(gateway: GraphGateway, rooms: list[Room], start: datetime,
                        end: datetime) -> tuple[list[str], list[dict[str, str]]]:
    gate = asyncio.Semaphore(CONCURRENT_ROOMS)
    results = await asyncio.gather(*(_room_events(gateway, room, start, end, gate) for room in rooms),
                                   return_exceptions=True)
    uids: list[str] = []
    unreadable: list[dict[str, str]] = []
    for room, result in zip(rooms, results, strict=True):
        if isinstance(result, GraphError):
            unreadable.append({"room": room.email, "reason": f"{type(result).__name__}: {result}"[:300]})
        elif isinstance(result, BaseException):
            raise result
        else:
            uids += result
    return uids, unreadable


def preview(rt: Runtime, integration_id: str, since: datetime) -> dict[str, Any]:
    """Count what a backfill from `since` covers. Raises LookupError for an unknown integration."""
    with Session(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        if integration is None:
            raise LookupError(integration_id)
        rooms = list(active_rooms(s, integration_id))
    start, end = window_of(integration, since)
    uids, unreadable = rt.run(_count_events(rt.graph(integration), rooms, start, end)) if rooms else ([], [])
    meetings = {u for u in uids if u}
    linked = 0
    if meetings:
        with Session(rt.engine) as s:
            known = s.exec(select(Link.ical_uid).where(col(Link.integration_id) == integration_id)).all()
        linked = len(meetings & set(known))
    loans: int | None = None
    loans_error: str | None = None
    try:
        loans = sum(1 for _ in rt.booking(integration).changed_loans(since))
    except BookingError as e:
        loans_error = f"{type(e).__name__}: {e}"[:300]
    return {
        "since": since.date().isoformat(), "from": start.isoformat(), "to": end.isoformat(),
        "rooms": len(rooms), "events": len(uids), "meetings": len(meetings), "meetings_linked": linked,
        "loans": loans, "loans_error": loans_error, "unreadable_rooms": unreadable,
    }


def summary(p: dict[str, Any]) -> str:
    """One line for the admin: what the backfill from that date will read."""
    loans = f"{p['loans']} loan(s) changed since then" if p["loans"] is not None else \
        f"loans not counted ({p['loans_error']})"
    text = (f"From {p['since']}: {p['meetings']} meeting(s) ({p['events']} room event(s), {p['meetings_linked']} "
            f"already linked to a loan) in {p['rooms']} room(s) up to {p['to'][:10]}, and {loans}.")
    if p["unreadable_rooms"]:
        text += f" {len(p['unreadable_rooms'])} room(s) could not be read."
    return text


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
