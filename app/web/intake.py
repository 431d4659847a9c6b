"""Graph webhooks (SPEC §5): validate, enqueue, 202. Nothing here calls Graph or the booking system.

Graph drops notifications for endpoints that are often slower than 3 s, so this path is short: the subscriptions
named in the POST come from a per-process cache of active subscriptions (an indexed read on a miss), and each accepted
item is one coalesced enqueue. A request served from the cache never leaves the event loop: in embedded mode the
in-process queue is memory; with Redis the hint claims, then the jobs of the claimed hints, go to Redis from the loop
(`app/platform/aredis.py`: one pipelined connection per process, the commands of concurrent requests in one write;
`app/web/async_queue.py`: dramatiq's enqueue) — a first hint costs two shared round trips, a duplicate one, or none
when this process already knows it for one (`HintGate.claim_async`: a hint repeating the change tag of a claim it won,
or of a job Redis said had started). Only a cache miss takes a thread-pool hop (the database read). The 202 is sent
once every job is stored; Redis unreachable, lost or silent (`aredis.SOCKET_TIMEOUT_S`) → 503, and a hint claimed
whose job was not stored is forgotten.

The cache holds only subscriptions found active with their integration enabled, each for `CACHE_TTL_S`: a
subscription deleted, expired, disabled or re-keyed (clientState) elsewhere stops being accepted within that bound in
every process. Unknown ids are never cached, so a subscription just created is accepted at once.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from app.core.notifications import ChangeNotification, MalformedPayload, parse_batch
from app.platform import hints as hints_mod
from app.platform.crypto import same_digest
from app.platform.logging import get_logger
from app.platform.metrics import NOTIFICATIONS
from app.platform.models import Integration, Subscription
from app.sync.runtime import Runtime, current
from app.web.async_queue import AsyncQueue, Job
from app.web.common import MAX_BODY_BYTES, ApiError, answer_outages, safe_id, unavailable
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
    if not request.scope.get("query_string"):  # a notification has no query: no parsing per request
        return None
    if "validationToken" not in request.query_params:
        return None
    token = request.query_params["validationToken"]
    if not token or len(token) > 1024 or _UNSAFE_TOKEN.search(token):
        raise ApiError(400, "bad_validation_token", "validationToken is empty, too long or has unsafe characters")
    return PlainTextResponse(token, status_code=200)


async def _read_body(request: Request) -> bytes:
    """`common.read_body` (413 over `MAX_BODY_BYTES`, declared or streamed), reading the ASGI messages directly:
    `Request.stream` is an async generator, which the event loop tracks in a weak set (~4 µs a request here)."""
    for name, value in request.scope["headers"]:  # the raw list: no `Headers` built
        if name == b"content-length":
            if value.isdigit() and int(value) > MAX_BODY_BYTES:
                raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def well_formed(item: ChangeNotification, kind: str) -> bool:
    """Whether an item's ids can be looked up and handed to a job: checked before any database read, so that a NUL
    or an over-long id is a rejected item (202, nothing enqueued), never a database error."""
    if not safe_id(item.subscription_id, SUBSCRIPTION_ID_MAX):
        return False
    if kind == "lifecycle":
        return _LIFECYCLE_EVENT.fullmatch(item.lifecycle_event or "") is not None
    event_id = item.event_id()
    return event_id is None or _EVENT_ID.fullmatch(event_id) is not None  # None: logged and skipped at enqueue


CACHE_TTL_S = 5.0  # the bound on how long another process's change to a subscription takes to be seen here
# An entry this close to its end is still used, and read again in the background (one read, awaited by no request):
# under a steady flow of notifications no request waits for the periodic re-read.
REFRESH_AHEAD_S = 1.0
CACHE_MAX = 50_000  # entries (one per active subscription: a 10,000-room tenant fits)
_NO_DIGEST = "0" * 64


@dataclass(frozen=True)
class _Known:
    entry: tuple[Target, str]  # the subscription's target and clientState digest
    until: float  # time.monotonic() after which it is read again


class SubscriptionCache:
    """Active subscriptions (with an enabled integration) by id, each kept `CACHE_TTL_S`. Thread-safe."""

    def __init__(self, ttl_s: float = CACHE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._known: dict[str, _Known] = {}
        self._guard = threading.Lock()
        # The reads under way (`_read_missing_async`), by subscription id; used from the event loop only.
        self.inflight: dict[str, asyncio.Future[dict[str, tuple[Target, str]]]] = {}

    def get(self, ids: set[str]) -> tuple[dict[str, tuple[Target, str]], set[str]]:
        """(fresh entries: target and clientState digest by id, ids to read from the database)."""
        found, missing, _ = self.lookup(ids)
        return found, missing

    def lookup(self, ids: set[str]) -> tuple[dict[str, tuple[Target, str]], set[str], set[str]]:
        """`get`, and the ids of the fresh entries that end within `REFRESH_AHEAD_S` (to read again soon)."""
        now = time.monotonic()
        soon = now + min(REFRESH_AHEAD_S, self.ttl_s / 2)
        found: dict[str, tuple[Target, str]] = {}
        missing: set[str] = set()
        ending: set[str] = set()
        for sid in ids:
            known = self._known.get(sid)
            if known is not None and known.until > now:
                found[sid] = known.entry
                if known.until <= soon:
                    ending.add(sid)
            else:
                missing.add(sid)
        return found, missing, ending

    def put(self, rows: dict[str, tuple[Target, str]], read: set[str]) -> None:
        """What a read of the ids `read` found: `rows` are the active ones; the others are forgotten."""
        until = time.monotonic() + self.ttl_s
        with self._guard:
            for sid in read - rows.keys():
                self._known.pop(sid, None)
            if len(self._known) + len(rows) > CACHE_MAX:
                now = time.monotonic()
                self._known = {k: v for k, v in self._known.items() if v.until > now}
                if len(self._known) + len(rows) > CACHE_MAX:
                    self._known.clear()
            for sid, entry in rows.items():
                self._known[sid] = _Known(entry, until)

    def clear(self) -> None:
        with self._guard:
            self._known.clear()


_caches: "weakref.WeakKeyDictionary[Runtime, SubscriptionCache]" = weakref.WeakKeyDictionary()
_caches_guard = threading.Lock()


def cache_of(rt: Runtime) -> SubscriptionCache:
    """The subscription cache of a runtime (one per process in production; tests build several runtimes)."""
    cache = _caches.get(rt)
    if cache is None:
        with _caches_guard:
            cache = _caches.setdefault(rt, SubscriptionCache())
    return cache


def read_active(session: Session, ids: set[str]) -> dict[str, tuple[Target, str]]:
    """The named subscriptions that are active with their integration enabled: (target, clientState digest). Read as
    plain columns (SQLAlchemy Core): no ORM objects are built for a lookup."""
    if not ids:
        return {}
    rows = session.connection().execute(
        sa_select(col(Subscription.id), col(Subscription.integration_id), col(Subscription.room_id),
                  col(Subscription.client_state_digest))
        .join(Integration, col(Integration.id) == col(Subscription.integration_id))
        .where(col(Subscription.id).in_(ids), col(Subscription.status) == "active", col(Integration.enabled))
    ).all()
    return {sid: (Target(integration_id, room_id), digest) for sid, integration_id, room_id, digest in rows}


def _accept(items: list[ChangeNotification],
            known: dict[str, tuple[Target, str]]) -> list[tuple[ChangeNotification, Target]]:
    out = []
    for item in items:
        sub = known.get(item.subscription_id)
        # Compare digests in constant time even when the subscription is unknown, so timing tells nothing.
        ok = same_digest(item.client_state or "", sub[1] if sub else _NO_DIGEST)
        if sub is not None and ok:
            out.append((item, sub[0]))
    return out


def accepted_items(session: Session, items: list[ChangeNotification]) -> list[tuple[ChangeNotification, Target]]:
    """Items whose subscription is known and active, whose integration is enabled, and whose clientState matches,
    read from the database (no cache). The items' subscription ids must have passed `well_formed`."""
    return _accept(items, read_active(session, {i.subscription_id for i in items}))


def _cached_lookup(rt: Runtime, items: list[ChangeNotification],
                   ) -> tuple[dict[str, tuple[Target, str]], set[str]]:
    cache = cache_of(rt)
    found, missing, ending = cache.lookup({i.subscription_id for i in items})
    if ending:
        _refresh_soon(rt, cache, ending)
    return found, missing


def _refresh_soon(rt: Runtime, cache: SubscriptionCache, ids: set[str]) -> None:
    """Read `ids` again in the background (those not being read already); a failure is logged, not raised: the
    entries then end, and the next request reads them itself (503 if the database is still down)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # not on an event loop (a thread-pool caller): the entries are read again when they end
    todo = {sid for sid in ids if sid not in cache.inflight or cache.inflight[sid].get_loop() is not loop}
    if not todo:
        return
    task = asyncio.ensure_future(_read_missing_async(rt, todo))
    _background.add(task)  # the loop keeps only a weak reference to a task
    task.add_done_callback(_background_read_done)


_background: set[asyncio.Future[Any]] = set()


def _background_read_done(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("subscription cache refresh failed", error=type(task.exception()).__name__)


def _read_missing(rt: Runtime, missing: set[str]) -> dict[str, tuple[Target, str]]:
    with Session(rt.engine) as session:
        rows = read_active(session, missing)
    cache_of(rt).put(rows, missing)
    return rows


async def _read_missing_async(rt: Runtime, missing: set[str]) -> dict[str, tuple[Target, str]]:
    """`_read_missing` in the thread pool, once for concurrent requests: when a cached subscription expires under load,
    the requests in flight for it wait for the one read already under way instead of each reading (and hopping)."""
    cache = cache_of(rt)
    loop = asyncio.get_running_loop()
    inflight = cache.inflight
    waits: set[asyncio.Future[dict[str, tuple[Target, str]]]] = set()
    mine: set[str] = set()
    for sid in missing:
        read = inflight.get(sid)
        if read is not None and read.get_loop() is loop:
            waits.add(read)
        else:
            mine.add(sid)
    if mine:
        read = asyncio.ensure_future(run_in_threadpool(_read_missing, rt, mine))
        for sid in mine:
            inflight[sid] = read

        def done(_: object, ids: set[str] = mine, this: asyncio.Future[dict[str, tuple[Target, str]]] = read) -> None:
            for sid in ids:
                if inflight.get(sid) is this:
                    del inflight[sid]

        read.add_done_callback(done)
        waits.add(read)
    found: dict[str, tuple[Target, str]] = {}
    for read in waits:
        found.update(await asyncio.shield(read))  # a read's error (database down) is every waiter's: 503
    return {sid: found[sid] for sid in missing if sid in found}


def _lookup_and_enqueue(rt: Runtime, kind: str, items: list[ChangeNotification],
                        known: dict[str, tuple[Target, str]], missing: set[str],
                        ) -> list[tuple[ChangeNotification, Target]]:
    """Read what the cache missed (if anything), then enqueue the accepted items."""
    if missing:
        known = {**known, **_read_missing(rt, missing)}
    accepted = _accept(items, known)
    _enqueue_all(kind, accepted)
    return accepted


def _enqueue_all(kind: str, accepted: list[tuple[ChangeNotification, Target]]) -> None:
    """`_enqueue`, raising `_NotEnqueued` (with the accepted items) when the queue failed."""
    if not accepted:
        return
    try:
        _enqueue(kind, accepted)
    except Exception as e:  # noqa: BLE001 - any broker failure means "not durably enqueued"
        raise _NotEnqueued(accepted) from e


class _NotEnqueued(Exception):
    def __init__(self, accepted: list[tuple[ChangeNotification, Target]]) -> None:
        super().__init__("not enqueued")
        self.accepted = accepted


async def _intake(request: Request, kind: str) -> Response:
    """Database or queue unreachable → 503 + Retry-After (`answer_outages` on the routes below), so Graph retries."""
    if request.scope.get("query_string"):  # a notification has no query
        handshake = validation_response(request)
        if handshake is not None:
            return handshake
    body = await _read_body(request)
    try:
        items, malformed = parse_batch(body)
    except MalformedPayload as e:
        raise ApiError(400, "malformed_json", str(e)) from None
    received = len(items) + malformed
    rt = current()
    checked = [i for i in items if well_formed(i, kind)]
    known, missing = _cached_lookup(rt, checked)
    queue: AsyncQueue | None = getattr(request.app.state, "async_queue", None) if rt.redis is not None else None
    # Embedded: the queue is memory, so a request runs whole on the loop but for a cache miss's database read (in the
    # thread pool, one at a time per subscription). With Redis: the hint claims and enqueues run on the loop too.
    try:
        if queue is not None:
            if missing:
                known = {**known, **await _read_missing_async(rt, missing)}
            accepted = _accept(checked, known)
            if accepted:
                jobs, hints = _plan(kind, accepted)
                gate = rt.hints
                if hints and gate.needs_io():  # duplicates this process knows: no I/O, no task
                    now = time.monotonic()
                    hints = [h for h in hints if not gate.known_duplicate(h[0], h[1], now)]
                if jobs or hints:
                    # Shielded: a cancelled request must not leave a claimed hint without its job.
                    await asyncio.shield(_enqueue_async(queue, rt, jobs, hints, accepted))
        elif rt.redis is None:  # embedded: the in-process queue is memory
            if missing:
                known = {**known, **await _read_missing_async(rt, missing)}
            accepted = _lookup_and_enqueue(rt, kind, checked, known, set())
        else:  # Redis without the event loop's client (not built by this app's lifespan): the thread pool
            if missing:
                known = {**known, **await _read_missing_async(rt, missing)}
            accepted = _accept(checked, known)
            if accepted:
                await run_in_threadpool(_enqueue_all, kind, accepted)
    except _NotEnqueued as e:  # any broker failure means "not durably enqueued": let Graph retry
        _count_rejected(kind, received, len(e.accepted))
        log.error("queue unavailable", kind=kind, error=type(e.__cause__).__name__)
        return unavailable("queue")
    _count_rejected(kind, received, len(accepted))
    if accepted:
        _counter(kind, "accepted").inc(len(accepted))
    return Response(status_code=202)


_counters: dict[tuple[str, str], Any] = {}


def _counter(kind: str, outcome: str) -> Any:
    """`NOTIFICATIONS.labels(kind, outcome)`, looked up once per process (a labels lookup takes a lock and more)."""
    counter = _counters.get((kind, outcome))
    if counter is None:
        counter = _counters[(kind, outcome)] = NOTIFICATIONS.labels(kind, outcome)
    return counter


def _count_rejected(kind: str, received: int, accepted: int) -> None:
    rejected = received - accepted
    if rejected:
        _counter(kind, "rejected").inc(rejected)
        log.warning("notification items rejected", kind=kind, rejected=rejected, received=received)


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
        actors.send_event_hint(target.integration_id, target.room_id, event_id, change_type or "", item.change_tag())


_Hint = tuple[str, str, tuple[str, str, str, str]]  # (hint key, change tag, process_room_event's args)


def _plan(kind: str, accepted: list[tuple[ChangeNotification, Target]]) -> tuple[list[Job], list[_Hint]]:
    """What `_enqueue` would send, for `_enqueue_async`: the lifecycle jobs, and the event hints to claim."""
    jobs: list[Job] = []
    hints: list[_Hint] = []
    for item, target in accepted:
        if kind == "lifecycle":
            jobs.append(Job(actors.handle_lifecycle, (item.subscription_id, item.lifecycle_event or "")))
            continue
        event_id = item.event_id()
        if event_id is None:
            log.warning("notification without event id", subscription_id=item.subscription_id)
            continue
        change_type = item.change_type if _CHANGE_TYPE.fullmatch(item.change_type or "") else ""  # a hint only
        hints.append((hints_mod.key(target.room_id, event_id), item.change_tag(),
                      (target.integration_id, target.room_id, event_id, change_type or "")))
    return jobs, hints


async def _enqueue_async(queue: AsyncQueue, rt: Runtime, jobs: list[Job], hints: list[_Hint],
                         accepted: list[tuple[ChangeNotification, Target]]) -> None:
    """`_enqueue` from the event loop: the hints' claims in one round trip (none for the duplicates this process
    already knows: `HintGate.claim_async`), then the jobs of the claimed ones in another (`send_event_hint`'s
    semantics: a claimed hint whose job was not stored is forgotten). Raises `_NotEnqueued` when any job that should
    exist was not stored."""
    gate = rt.hints
    keys: list[str | None] = [None] * len(jobs)  # the claimed hint key of each job (None: a lifecycle job)
    try:
        if hints:
            claims = await gate.claim_async(queue.client, [(k, t) for k, t, _ in hints])
            for (key, tag, args), ok in zip(hints, claims, strict=True):
                if ok:
                    jobs.append(Job(actors.process_room_event, args, gate.delay_ms(tag)))
                    keys.append(key)
        errors = await queue.send(jobs)
    except Exception as e:  # noqa: BLE001 - any broker failure means "not durably enqueued"
        await gate.forget_async(queue.client, [k for k in keys if k is not None])
        raise _NotEnqueued(accepted) from e
    failed = [(key, error) for key, error in zip(keys, errors, strict=True) if error is not None]
    if failed:  # a claimed hint whose job was not stored must not swallow the next hint
        await gate.forget_async(queue.client, [k for k, _ in failed if k is not None])
        raise _NotEnqueued(accepted) from failed[0][1]


@answer_outages(unexpected_as_503=True)
async def notifications(request: Request) -> Response:
    return await _intake(request, "change")


@answer_outages(unexpected_as_503=True)
async def lifecycle(request: Request) -> Response:
    return await _intake(request, "lifecycle")
