"""What a process needs to do sync work: settings, database, secrets, clients per integration, one event loop.

One `Runtime` per process (serve, worker, scheduler, demo). Actors reach it with `runtime.current()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import redis
from dramatiq.asyncio import EventLoopThread
from dramatiq.rate_limits.backends import RedisBackend, StubBackend
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
        self.slots = MailboxSlots(RedisBackend(client=self.redis) if self.redis else StubBackend(),  # type: ignore[no-untyped-call]  # dramatiq: unannotated
                                  settings.graph_mailbox_concurrency, prefix=f"{ns}:graph-mailbox:")
        self._guard = threading.Lock()
        self._loop: EventLoopThread | None = None
        # Clients are cached per integration and rebuilt when its credentials or endpoints change.
        self._graph: dict[str, tuple[tuple[str, ...], GraphGateway]] = {}
        self._booking: dict[str, tuple[tuple[str, ...], BookingClient]] = {}
        self._retired_graph: list[GraphGateway] = []
        self._retired_booking: list[BookingClient] = []

    # --- the event loop the async Graph SDK runs on ----------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this process's event loop thread and wait for it (from any worker thread)."""
        with self._guard:
            if self._loop is None:
                self._loop = EventLoopThread(logging.getLogger("roombridge.loop"))
                self._loop.start(timeout=5)
        return self._loop.run_coroutine(coro)

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
        with self._guard:  # check and create at once: two threads must never build (and race on) two clients
            cached = self._graph.get(integration.id)
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
            self._graph[integration.id] = (key, gateway)
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
        for gateway in [g for _k, g in self._graph.values()] + self._retired_graph:
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
        if self._loop is not None:
            self._loop.stop()  # type: ignore[no-untyped-call]  # dramatiq: unannotated
            self._loop = None
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
