"""Rooms import (SPEC §3): Graph's room list → places in the booking system, with working hours and time zone;
ignore-tags, deactivation (place and subscription), safety valve.

At scale (10,000 rooms) one import is a *run* of short jobs:

- the **listing** (`list_for_import`) streams `/places` page by page (one page in memory), hands each page of
  importable rooms to `send_page` (the actor enqueues one page job), and when the listing ends applies the safety
  valve and deactivates the rooms Graph no longer lists;
- each **page** (`import_page`, ≤ 100 rooms) reads the new rooms' object ids and every room's mailboxSettings through
  JSON `$batch` (20 per batch, a few batches in flight, each mailbox's slot held: ≤ 4 requests per mailbox across all
  workers), writes only the rooms whose place changed (a fingerprint of what the place would be: unchanged rooms cost
  no write at all), then subscribes the rooms that have no live subscription, several at once;
- the run ends when its last page is done (`RoomsImport.pages_done == pages`): one journal entry, the lease released.

One run at a time per integration: the lease `rooms-import:{integration}` is held by the run id (the listing job's
message id, so that a retried listing is still the same run) and renewed by the listing and by every page. A page
already done (`RoomsImportPage`) is never redone by a retry, and a page of a run that another run has replaced does
nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time as clock
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.adapters.booking.client import BookingRejected
from app.adapters.graph.errors import GraphAuthError, GraphError, GraphNotFound, GraphThrottled
from app.adapters.graph.places import Sites, secret_end, site_rooms
from app.core.contract import PlaceUpsert, WorkingHours
from app.core.followups import FollowUp, Subscribe
from app.core.graph import GraphRoom
from app.core.policy import in_buildings
from app.core.timezones import UnknownTimeZone, zone
from app.platform import leases
from app.platform.db import session_scope
from app.platform.logging import get_logger
from app.platform.models import Integration, Room, RoomsImport, RoomsImportPage, Subscription, new_id, utcnow
from app.sync import alerts, journal
from app.sync.runtime import Runtime

DIRECTION = "rooms"
# A run that shows no progress (no page, no listing step) for this long is considered dead: another may start.
LEASE_TTL = timedelta(minutes=15)
SUBSCRIBE_AT_ONCE = 8  # subscription creates in flight per page job (each its own mailbox)
WRITE_AT_ONCE = 8  # places upserted (and rooms stored) at once per page job
BATCHES_AT_ONCE = 4  # $batch requests in flight per page job
THROTTLED_ROUNDS = 6  # throttled batch items are tried again this often within the job, then the job waits
MAX_INLINE_WAIT_S = 10.0  # a Retry-After longer than this goes back to the queue instead
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
log = get_logger("roombridge.rooms")


def active_rooms(session: Session, integration_id: str) -> list[Room]:
    """The integration's imported rooms that are in use (not deactivated)."""
    return list(session.exec(select(Room).where(Room.integration_id == integration_id,
                                                col(Room.active).is_(True))).all())


def parse_tags(value: str | list[str] | None) -> list[str]:
    """Ignore-tags come as a list or a comma-separated string; compared case-insensitively."""
    items = value.split(",") if isinstance(value, str) else (value or [])
    return sorted({t.strip().lower() for t in items if t and t.strip()})


def ignored(room: GraphRoom, ignore_tags: list[str]) -> bool:
    tags = {t.lower() for t in room.tags}
    return any(t in tags for t in ignore_tags)


def safety_valve_trips(previously_active: int, listed: int) -> bool:
    """Graph suddenly listing none, or under half, of many imported rooms is an outage, not a mass removal."""
    return previously_active >= 4 and listed < previously_active / 2


def iana(name: str | None) -> str | None:
    """A Graph zone name (Windows or IANA) as an IANA name; None when absent or unknown (e.g. a custom zone)."""
    if not name:
        return None
    try:
        return zone(name).key
    except UnknownTimeZone:
        return None


def booking_options(settings: dict[str, Any] | None) -> tuple[WorkingHours | None, str | None]:
    """mailboxSettings → (working hours, IANA zone) for the place.

    The contract reads working hours as wall-clock times in the place's `time_zone`, so when Graph states a zone for
    the working hours that zone is the place's; otherwise the mailbox's. Hours in a zone we cannot name are dropped
    rather than sent with a wrong meaning.
    """
    if not settings:
        return None, None
    hours_zone = iana(settings.get("working_time_zone"))
    time_zone = hours_zone or iana(settings.get("time_zone"))
    days = [d.lower() for d in settings.get("working_days") or [] if d and d.lower() in WEEKDAYS]
    start, end = settings.get("working_start"), settings.get("working_end")
    named = hours_zone is not None or not settings.get("working_time_zone")
    if not (days and isinstance(start, time) and isinstance(end, time) and named and time_zone):
        return None, time_zone
    return WorkingHours(days=days, start=start, end=end), time_zone


def _address(room: GraphRoom) -> str | None:
    a = room.address
    parts = [a.get("street"), " ".join(p for p in (a.get("postal_code"), a.get("city")) if p), a.get("country")]
    text = ", ".join(p for p in parts if p)
    return text or None


def lease_name(integration_id: str) -> str:
    return f"rooms-import:{integration_id}"


def room_to_json(room: GraphRoom) -> dict[str, Any]:
    """A listed room as a job argument (JSON)."""
    data = asdict(room)
    data["tags"] = list(room.tags)
    return data


def room_of_json(data: dict[str, Any]) -> GraphRoom:
    return GraphRoom(**{**data, "tags": tuple(data.get("tags") or ())})


# --- the whole import in one thread (tests, tools) --------------------------------------------------------------------


def import_rooms(rt: Runtime, integration_id: str, subscribe: bool = False) -> list[str]:
    """One run done here, page after page (the jobs split the same work): the ids of the active listed rooms.
    `subscribe`: also subscribe them (the page jobs do)."""
    active: list[str] = []
    run_id = new_id()

    def page(number: int, rooms: list[GraphRoom]) -> None:
        ids, _followups = import_page(rt, integration_id, run_id, number, rooms, subscribe=subscribe)
        active.extend(ids)

    if not list_for_import(rt, integration_id, run_id, page):
        return []
    with session_scope(rt.engine) as s:
        still = {r.id for r in s.exec(select(Room).where(Room.integration_id == integration_id,
                                                         col(Room.active).is_(True))).all()}
    return [i for i in active if i in still]


# --- the listing ------------------------------------------------------------------------------------------------------


def list_for_import(rt: Runtime, integration_id: str, run_id: str,
                    send_page: Callable[[int, list[GraphRoom]], object]) -> bool:
    """Stream Graph's rooms, hand each page of importable ones to `send_page(number, rooms)`, then deactivate what
    Graph no longer lists (unless the safety valve trips). False when another run holds the integration's import."""
    with session_scope(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        if integration is None or not integration.enabled:
            return False
    if not leases.acquire(rt.engine, lease_name(integration_id), run_id, LEASE_TTL):
        log.info("rooms import already running: this one is skipped", integration_id=integration_id, run_id=run_id)
        return False
    with session_scope(rt.engine) as s:
        if s.get(RoomsImport, run_id) is None:
            s.add(RoomsImport(id=run_id, integration_id=integration_id))
    ignore = parse_tags(integration.ignore_tags)
    sites = _sites(rt, integration)
    wanted_emails: set[str] = set()  # 10,000 addresses: the one thing kept of the whole listing
    listed_ignored = pages = 0
    stream = rt.graph(integration).room_pages()
    started = clock.monotonic()
    try:
        while True:
            listed = rt.run(_next_page(stream))
            if listed is None:
                break
            # Sites: rooms of other buildings, or outside the integration's room lists, are ignored like tagged ones.
            wanted = [r for r in listed if r.email and not ignored(r, ignore)
                      and in_buildings(integration.buildings, r.building)
                      and (sites is None or r.email in sites.rooms)]
            listed_ignored += len(listed) - len(wanted)
            wanted = [r for r in wanted if r.email not in wanted_emails]  # a room listed twice is imported once
            wanted_emails.update(r.email for r in wanted)
            if wanted:
                send_page(pages, wanted)
                pages += 1
            leases.acquire(rt.engine, lease_name(integration_id), run_id, LEASE_TTL)
    finally:
        rt.run(_close(stream))
    log.info("rooms listed", integration_id=integration_id, rooms=len(wanted_emails), pages=pages,
             seconds=round(clock.monotonic() - started, 2))

    with session_scope(rt.engine) as s:
        active = {r.email: r for r in s.exec(select(Room).where(Room.integration_id == integration_id,
                                                                col(Room.active).is_(True))).all()}
    gone: list[Room] = []
    if sites is not None and sites.missing:
        with session_scope(rt.engine) as s:
            journal.record(s, integration_id, DIRECTION, "import", "error",
                           f"room list(s) {', '.join(sites.missing)} not found in Graph: nothing deactivated; check "
                           "the integration's room_lists (each a room list's e-mail address or display name)")
    elif safety_valve_trips(len(active), len(wanted_emails)):
        with session_scope(rt.engine) as s:
            journal.record(s, integration_id, DIRECTION, "import", "error",
                           f"Graph lists {len(wanted_emails)} importable rooms where {len(active)} were imported: "
                           "nothing deactivated; check the tenant, then run sync-rooms again")
    else:
        gone = [r for e, r in active.items() if e not in wanted_emails]
        for room in gone:
            deactivate(rt, integration, room)
    with session_scope(rt.engine) as s:
        done = s.execute(update(RoomsImport).where(col(RoomsImport.id) == run_id)
                         .values(pages=pages, listed=len(wanted_emails), ignored=listed_ignored,
                                 deactivated=len(gone))
                         .returning(col(RoomsImport.pages_done))).scalar_one()
        _mark_synced(s, integration_id)
    if done == pages:
        _finish(rt, integration_id, run_id)
    check_secret(rt, integration)
    return True


def _sites(rt: Runtime, integration: Integration) -> Sites | None:
    """The rooms of the integration's room lists (issue 11.7), or None when it is not limited to room lists."""
    if not integration.room_lists:
        return None
    return rt.run(site_rooms(rt.graph(integration), list(integration.room_lists)))


def check_secret(rt: Runtime, integration: Integration) -> datetime | None:
    """Issue 11.8: a client secret expiring within 30 days, when Graph reports it (Application.Read.All is optional:
    without it Graph answers 403 and nothing is said). Runs with every rooms import (every 6 h, and when the
    credentials change); the alert itself is sent at most once per hour. Never fails the import. Returns the end
    date Graph reported."""
    try:
        end = rt.run(secret_end(rt.graph(integration), integration.client_id,
                                rt.box.decrypt(integration.client_secret_enc)))
    except (GraphError, AttributeError) as e:  # AttributeError: a test double without plain-JSON reads
        if isinstance(e, GraphAuthError) and e.status == 401:
            log.warning("secret expiry not checked: credentials refused", integration_id=integration.id)
        else:
            log.info("secret expiry not checked", integration_id=integration.id, error=type(e).__name__)
        return None
    if end is None:
        log.info("Graph does not report the client secret's end date (Application.Read.All not granted)",
                 integration_id=integration.id)
        return None
    alerts.secret_expiring(rt.engine, rt.box, integration.id, end)
    return end


async def _next_page(stream: AsyncIterator[list[GraphRoom]]) -> list[GraphRoom] | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _close(stream: AsyncGenerator[list[GraphRoom], None]) -> None:
    await stream.aclose()


# --- one page ---------------------------------------------------------------------------------------------------------


def import_page(rt: Runtime, integration_id: str, run_id: str, number: int, rooms: list[GraphRoom],
                subscribe: bool = True) -> tuple[list[str], list[FollowUp]]:
    """Import one page of listed rooms: (ids of its rooms now active, follow-ups). Nothing when the page is done
    already or its run was replaced by another."""
    with session_scope(rt.engine) as s:
        integration = s.get(Integration, integration_id)
        done = s.get(RoomsImportPage, (run_id, number)) is not None
        emails = [r.email for r in rooms]
        known = {r.email: r for r in s.exec(select(Room).where(Room.integration_id == integration_id,
                                                               col(Room.email).in_(emails))).all()}
    if integration is None or not integration.enabled or done:
        return [], []
    if not leases.acquire(rt.engine, lease_name(integration_id), run_id, LEASE_TTL):
        log.info("rooms import page of a replaced run: nothing to do", run_id=run_id, page=number)
        return [], []

    started = clock.monotonic()
    mailbox_ids, settings = _read(rt, integration, rooms, known)
    read_s = clock.monotonic() - started
    changed: list[tuple[GraphRoom, str, PlaceUpsert, str]] = []
    active: dict[str, str] = {}  # email → room id, of the rooms active once this page is done
    skipped = 0
    for groom in rooms:
        mailbox_id = mailbox_ids.get(groom.email)
        if mailbox_id is None:
            skipped += 1
            continue
        working_hours, time_zone = booking_options(settings.get(groom.email))
        place = PlaceUpsert(
            email=groom.email, name=groom.name, address=_address(groom), capacity=groom.capacity,
            building=groom.building, floor=groom.floor, tags=list(groom.tags), working_hours=working_hours,
            time_zone=time_zone, active=True)
        mark = fingerprint(place, mailbox_id, groom)
        room = known.get(groom.email)
        attributes = (room.attributes or {}) if room is not None else {}
        # A row stored before its working hours were kept beside it (issue 11.5) is written once more.
        if (room is not None and room.active and room.place_id and attributes.get("import_hash") == mark
                and "working_hours" in attributes):
            active[groom.email] = room.id
        else:
            changed.append((groom, mailbox_id, place, mark))

    # Each room done (place, then its row) on its own: a retry of the page skips the rooms already written.
    with ThreadPoolExecutor(min(WRITE_AT_ONCE, len(changed)) or 1, thread_name_prefix="room-write") as pool:
        results = list(pool.map(lambda item: _write_room(rt, integration, known.get(item[0].email), *item), changed))
    written = sum(1 for r in results if r is not None)
    skipped += len(results) - written
    active.update((g.email, room_id) for (g, _m, _p, _k), room_id in zip(changed, results, strict=True) if room_id)
    written_s = clock.monotonic() - started
    active_ids = [active[r.email] for r in rooms if r.email in active]  # in Graph's order
    followups = _subscribe(rt, active_ids) if subscribe else []
    unchanged = len(active_ids) - written
    log.info("rooms import page done", run_id=run_id, page=number, rooms=len(rooms), changed=written,
             unchanged=unchanged, skipped=skipped, read_s=round(read_s, 2), written_s=round(written_s, 2),
             seconds=round(clock.monotonic() - started, 2))
    if _page_done(rt, run_id, number, changed=written, unchanged=unchanged, skipped=skipped):
        _finish(rt, integration_id, run_id)
    return active_ids, followups


def _write_room(rt: Runtime, integration: Integration, known: Room | None, groom: GraphRoom, mailbox_id: str,
                place: PlaceUpsert, mark: str) -> str | None:
    """Upsert the place, then store the room with its fingerprint: the room's id (None: the booking system refused
    the place; that room only is journaled, the others of the page go on)."""
    try:
        place_id = rt.booking(integration).upsert_place(place).id
    except BookingRejected as e:
        with session_scope(rt.engine) as s:
            journal.record(s, integration.id, DIRECTION, "import", "error",
                           f"{groom.email}: the booking system refused the place ({e})")
        return None
    with session_scope(rt.engine) as s:
        row = s.get(Room, known.id) if known is not None else None
        row = row or Room(integration_id=integration.id, email=groom.email, name=groom.name, mailbox_id=mailbox_id)
        row.name, row.mailbox_id, row.place_id, row.active = groom.name, mailbox_id, place_id, True
        row.attributes = {"graph_place_id": groom.place_id, "tags": list(groom.tags), "time_zone": place.time_zone,
                          "working_hours": hours_json(place.working_hours), "import_hash": mark}
        row.updated_at = utcnow()
        s.add(row)
        s.flush()
        return row.id


def hours_json(hours: WorkingHours | None) -> dict[str, Any] | None:
    """Working hours as kept in `Room.attributes` (all-day meetings become loans within them, issue 11.5)."""
    return None if hours is None else hours.model_dump(mode="json")


def hours_of(attributes: dict[str, Any] | None) -> WorkingHours | None:
    """The room's working hours from its attributes; None when it has none (or they cannot be read)."""
    value = (attributes or {}).get("working_hours")
    if not isinstance(value, dict):
        return None
    try:
        return WorkingHours.model_validate(value)
    except ValueError:
        return None


def fingerprint(place: PlaceUpsert, mailbox_id: str, room: GraphRoom) -> str:
    """What the place and the room row would be: equal fingerprints, nothing to write."""
    data = {"place": place.model_dump(mode="json"), "mailbox_id": mailbox_id, "graph_place_id": room.place_id}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _read(rt: Runtime, integration: Integration, rooms: list[GraphRoom],
          known: dict[str, Room]) -> tuple[dict[str, str], dict[str, dict[str, Any] | None]]:
    """(email → mailbox object id, email → mailboxSettings or None), through `$batch`. Rooms imported before keep
    their object id; a new room whose mailbox Graph does not know (404) is left out. Booking options are a bonus: a
    room whose settings cannot be read (e.g. MailboxSettings.Read not granted) is imported without them. Throttled
    items are tried again after their Retry-After, a few times, then the job waits in the queue."""
    graph = rt.graph(integration)
    mailbox_ids = {e: r.mailbox_id for e, r in known.items() if r.mailbox_id}
    new = [r.email for r in rooms if r.email not in mailbox_ids]
    # Settings are read by object id when known, else by address (Graph takes either).
    settings_key = {r.email: mailbox_ids.get(r.email, r.email) for r in rooms}
    settings: dict[str, dict[str, Any] | None] = {}
    want_ids, want_settings = list(new), [r.email for r in rooms]
    for attempt in range(THROTTLED_ROUNDS):
        with _slots(rt, [*want_ids, *(settings_key[e] for e in want_settings)]):
            ids_found, settings_found = rt.run(_both(graph, want_ids, [settings_key[e] for e in want_settings]))
        waits: list[float] = []
        retry_ids: list[str] = []
        for email in want_ids:
            found = ids_found[email]
            if isinstance(found, GraphThrottled):
                retry_ids.append(email)
                waits.append(found.retry_after or 1.0)
            elif isinstance(found, GraphNotFound):
                log.warning("room mailbox not found: room not imported", room=email, error=str(found))
            elif isinstance(found, GraphError):
                raise found
            else:
                mailbox_ids[email] = found
        retry_settings: list[str] = []
        for email in want_settings:
            value = settings_found[settings_key[email]]
            if isinstance(value, GraphThrottled):
                retry_settings.append(email)
                waits.append(value.retry_after or 1.0)
            elif isinstance(value, GraphError):
                log.warning("mailbox settings unreadable, room imported without working hours", room=email,
                            error=str(value))
                settings[email] = None
            else:
                settings[email] = value
        want_ids, want_settings = retry_ids, retry_settings
        if not want_ids and not want_settings:
            return mailbox_ids, settings
        wait = max(waits)
        if wait > MAX_INLINE_WAIT_S or attempt == THROTTLED_ROUNDS - 1:
            raise GraphThrottled(f"rooms import: {len(want_ids) + len(want_settings)} reads still throttled",
                                 wait, 429)
        clock.sleep(wait)  # no slot held
    raise AssertionError("unreachable")


async def _both(graph: Any, emails: list[str], settings_keys: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    async def none() -> dict[str, Any]:
        return {}

    ids, settings = await asyncio.gather(graph.user_ids(emails) if emails else none(),
                                         graph.mailbox_settings_many(settings_keys) if settings_keys else none())
    return ids, settings


def _slots(rt: Runtime, mailboxes: Iterable[str]) -> ExitStack:
    """One slot per request on its mailbox, held while the batch items run (Graph counts them against the mailbox's
    4; a new room's id lookup and its settings read are two)."""
    stack = ExitStack()
    try:
        for mailbox in mailboxes:
            stack.enter_context(rt.slots.hold(mailbox))
    except BaseException:
        stack.close()
        raise
    return stack


def _subscribe(rt: Runtime, room_ids: list[str]) -> list[FollowUp]:
    """Subscribe the rooms that have no live subscription, several at once (each its own mailbox). A room that
    fails is left to a job of its own (`Subscribe`), so the page is still done."""
    from app.sync.subscriptions import ensure_subscription  # subscriptions builds on rooms, not the other way round

    now = utcnow()
    with session_scope(rt.engine) as s:
        live = {sub.room_id for sub in s.exec(select(Subscription).where(col(Subscription.room_id).in_(room_ids),
                                                                         Subscription.status == "active")).all()
                if sub.expires_at > now}
    todo = [r for r in room_ids if r not in live]
    out: list[FollowUp] = []
    if not todo:
        return out

    def one(room_id: str) -> list[FollowUp]:
        try:
            return ensure_subscription(rt, room_id)[1]
        except Exception as e:  # noqa: BLE001 - handed to a job of its own, which has the failure policy
            log.info("subscription left to its own job", room_id=room_id, error=f"{type(e).__name__}: {e}")
            return [Subscribe(room_id)]

    with ThreadPoolExecutor(min(SUBSCRIBE_AT_ONCE, len(todo)), thread_name_prefix="subscribe") as pool:
        for followups in pool.map(one, todo):
            out.extend(followups)
    return out


# --- the end of a run -------------------------------------------------------------------------------------------------


def _page_done(rt: Runtime, run_id: str, number: int, *, changed: int, unchanged: int, skipped: int) -> bool:
    """Record the page; True when it was the run's last one (exactly one page, or the listing, sees that)."""
    try:
        with session_scope(rt.engine) as s:
            s.add(RoomsImportPage(run_id=run_id, page=number))
            s.flush()
            done, pages = s.execute(
                update(RoomsImport).where(col(RoomsImport.id) == run_id)
                .values(pages_done=RoomsImport.pages_done + 1, changed=RoomsImport.changed + changed,
                        unchanged=RoomsImport.unchanged + unchanged, skipped=RoomsImport.skipped + skipped)
                .returning(col(RoomsImport.pages_done), col(RoomsImport.pages))).one()
    except IntegrityError:  # the same page done by a duplicate of this job meanwhile
        return False
    return pages is not None and done == pages


def _finish(rt: Runtime, integration_id: str, run_id: str) -> None:
    with session_scope(rt.engine) as s:
        run = s.get(RoomsImport, run_id)
        if run is None or run.finished_at is not None:
            return
        run.finished_at = utcnow()
        s.add(run)
        seconds = (run.finished_at - run.started_at).total_seconds()
        journal.record(s, integration_id, DIRECTION, "import", "ok",
                       f"{run.changed + run.unchanged} rooms imported ({run.changed} new or changed, {run.unchanged} "
                       f"unchanged), {run.deactivated} deactivated, {run.ignored} ignored by tag"
                       + (f", {run.skipped} not importable" if run.skipped else "") + f" in {seconds:.0f} s")
        older = [r.id for r in s.exec(select(RoomsImport).where(RoomsImport.integration_id == integration_id,
                                                                col(RoomsImport.id) != run_id)).all()]
        if older:
            s.execute(delete(RoomsImportPage).where(col(RoomsImportPage.run_id).in_(older)))
            s.execute(delete(RoomsImport).where(col(RoomsImport.id).in_(older)))
    leases.release(rt.engine, lease_name(integration_id), run_id)
    log.info("rooms import done", integration_id=integration_id, run_id=run_id)


def deactivate(rt: Runtime, integration: Integration, room: Room) -> None:
    """A room gone from Graph or newly ignore-tagged: place deactivated, subscription deleted, no more polling."""
    from app.sync.subscriptions import (
        drop_subscriptions,  # subscriptions builds on rooms, not the other way round
    )

    rt.booking(integration).deactivate_place(room.email)
    drop_subscriptions(rt, integration, room.id, "room deactivated")
    with session_scope(rt.engine) as s:
        row = s.get(Room, room.id)
        if row is not None:
            row.active, row.polling, row.updated_at = False, False, utcnow()
            s.add(row)
        journal.record(s, integration.id, DIRECTION, "deactivate", "ok",
                       f"{room.email}: no longer listed by Graph or carries an ignore-tag")


def _mark_synced(s: Any, integration_id: str) -> None:
    row = s.get(Integration, integration_id)
    if row is not None:
        row.rooms_synced_at = utcnow()
        s.add(row)
