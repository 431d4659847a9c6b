"""What a process needs to do sync work: settings, database, secrets, clients per integration, the event loops.

One `Runtime` per process (serve, worker, scheduler, demo). Actors reach it with `runtime.current()`.

The Graph SDK is async. Its calls run on a small pool of event-loop threads (as many as the worker threads, at most
`MAX_LOOPS`): each calling thread is bound to one loop for its life, and each loop has its own Graph client per
integration (an httpx/azure-identity client belongs to the loop it was made on). So the Graph calls of several jobs
no longer queue behind one loop thread per process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import redis
from dramatiq.asyncio import EventLoopThread
from sqlalchemy.engine import Engine

from app.adapters.booking.client import BookingClient
from app.adapters.graph.gateway import GraphGateway
from app.platform.crypto import SecretBox
from app.platform.db import make_engine
from app.platform.hints import HintGate
from app.platform.locks import LocalLocks, RedisLocks
from app.platform.models import Integration
from app.platform.settings import Settings
from app.platform.throttle import MailboxSlots

T = TypeVar("T")
MAX_LOOPS = 16

_current: "Runtime | None" = None


class Runtime:
    """`graph_factory` / `booking_factory` replace the real adapters (tests drive the flows against in-memory twins
    with the same methods: see tests/twins/)."""

    def __init__(self, settings: Settings, engine: Engine | None = None, *,
                 graph_factory: Callable[[Integration], Any] | None = None,
                 booking_factory: Callable[[Integration], Any] | None = None) -> None:
        self.settings = settings
        self._graph_factory = graph_factory
        self._booking_factory = booking_factory
        self.engine = engine or make_engine(settings.database_url)
        self.box = SecretBox(settings.secret_key.get_secret_value())
        self.redis = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
        ns = settings.redis_namespace
        self.locks: LocalLocks | RedisLocks = RedisLocks(self.redis, f"{ns}:lock:") if self.redis else LocalLocks()
        self.hints = HintGate(self.redis, settings.hint_coalesce_ms, f"{ns}:hint:")
        self.slots = MailboxSlots(self.redis, settings.graph_mailbox_concurrency, prefix=f"{ns}:graph-mailbox:")
        self._guard = threading.Lock()
        self._loops: list[EventLoopThread] = []
        self._max_loops = max(1, min(settings.worker_threads, MAX_LOOPS))
        self._assigned = 0
        self._bound = threading.local()  # .loop: the index of the calling thread's loop
        # Clients are cached per (loop, integration) and rebuilt when its credentials or endpoints change.
        self._graph: dict[tuple[int, str], tuple[tuple[str, ...], GraphGateway]] = {}
        self._booking: dict[str, tuple[tuple[str, ...], BookingClient]] = {}
        self._retired_graph: list[GraphGateway] = []
        self._retired_booking: list[BookingClient] = []

    # --- the event loop the async Graph SDK runs on ----------------------------------------------------------------

    def _loop_index(self) -> int:
        """The loop the calling thread is bound to (bound at its first call, round robin; started on demand)."""
        index: int | None = getattr(self._bound, "loop", None)
        if index is not None and index < len(self._loops):
            return index
        with self._guard:
            index = self._assigned % self._max_loops
            self._assigned += 1
            while index >= len(self._loops):
                loop = EventLoopThread(logging.getLogger("roombridge.loop"))
                loop.start(timeout=5)
                self._loops.append(loop)
        self._bound.loop = index
        return index

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the calling thread's event loop thread and wait for it (from any worker thread)."""
        index = self._loop_index()
        return self._loops[index].run_coroutine(coro)

    def graph_call(self, mailbox: str, coro: Coroutine[Any, Any, T]) -> T:
        """A Graph request on `mailbox`, holding one of its concurrency slots (raises `MailboxBusy`)."""
        try:
            with self.slots.hold(mailbox):
                return self.run(coro)
        except BaseException:
            coro.close()  # never awaited when no slot was had: close it to avoid a warning
            raise

    # --- clients -----------------------------------------------------------------------------------------------------

    def graph(self, integration: Integration) -> GraphGateway:
        if self._graph_factory is not None:
            return self._graph_factory(integration)  # type: ignore[no-any-return]
        key = (integration.tenant_id, integration.client_id, integration.client_secret_enc,
               self.settings.graph_base_url, self.settings.graph_authority_host)
        slot = (self._loop_index(), integration.id)  # the client of the loop this thread's calls run on
        with self._guard:  # check and create at once: two threads must never build (and race on) two clients
            cached = self._graph.get(slot)
            if cached and cached[0] == key:
                return cached[1]
            gateway = GraphGateway(
                integration.tenant_id,
                integration.client_id,
                self.box.decrypt(integration.client_secret_enc),
                base_url=self.settings.graph_base_url,
                authority_host=self.settings.graph_authority_host,
            )
            if cached:
                self._retired_graph.append(cached[1])  # may still be in use by another thread: closed at exit
            self._graph[slot] = (key, gateway)
            return gateway

    def booking(self, integration: Integration) -> BookingClient:
        if self._booking_factory is not None:
            return self._booking_factory(integration)  # type: ignore[no-any-return]
        key = (integration.booking_base_url, integration.booking_api_key_enc)
        with self._guard:
            cached = self._booking.get(integration.id)
            if cached and cached[0] == key:
                return cached[1]
            client = BookingClient(integration.booking_base_url, self.box.decrypt(integration.booking_api_key_enc))
            if cached:
                self._retired_booking.append(cached[1])
            self._booking[integration.id] = (key, client)
            return client

    def close(self) -> None:
        for (index, _i), (_k, gateway) in self._graph.items():
            try:
                self._loops[index].run_coroutine(gateway.close())  # on the loop its connections belong to
            except Exception:  # noqa: BLE001 - closing on the way out
                pass
        for gateway in self._retired_graph:
            try:
                self.run(gateway.close())
            except Exception:  # noqa: BLE001 - closing on the way out
                pass
        for client in [c for _k, c in self._booking.values()] + self._retired_booking:
            client.close()
        self._graph.clear()
        self._booking.clear()
        self._retired_graph.clear()
        self._retired_booking.clear()
        for loop in self._loops:
            loop.stop()  # type: ignore[no-untyped-call]  # dramatiq: unannotated
        self._loops.clear()
        self._assigned = 0
        if self.redis is not None:
            self.redis.close()
        self.engine.dispose()


def install(rt: Runtime | None) -> None:
    global _current
    _current = rt


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no runtime installed in this process")
    return _current
