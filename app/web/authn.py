"""Failed admin authentications (issue 8.8): logged without the token, rate-limited, and answered more slowly after
repeated failures from one client.

Per process and in memory: a client (its address as the server sees it; behind a reverse proxy that is the proxy)
gets `FREE_FAILURES` wrong tokens answered at once, then each further failure waits twice as long as the previous
one, from `BASE_DELAY_S` up to `MAX_DELAY_S`, before its 401. A correct token, or `WINDOW_S` without a failure,
forgets the client. The log says who failed how often, at most once per client every `LOG_EVERY_S` (with the count of
failures not logged in between); the table of clients is bounded (the oldest are forgotten first).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.platform.logging import get_logger

log = get_logger("roombridge.admin.auth")

FREE_FAILURES = 3
BASE_DELAY_S = 0.25
MAX_DELAY_S = 5.0
WINDOW_S = 15 * 60.0
LOG_EVERY_S = 60.0
MAX_CLIENTS = 10_000


@dataclass
class _Client:
    failures: int = 0
    last_failure_at: float = 0.0
    logged_at: float | None = None
    unlogged: int = 0


class FailedAuthentications:
    """The per-client failure counter. `clock` and `sleep` are injectable (tests observe the delays without waiting)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 free_failures: int = FREE_FAILURES, base_delay_s: float = BASE_DELAY_S,
                 max_delay_s: float = MAX_DELAY_S, window_s: float = WINDOW_S, log_every_s: float = LOG_EVERY_S,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.clock = clock
        self.sleep = sleep
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.window_s = window_s
        self.log_every_s = log_every_s
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def delay_for(self, failures: int) -> float:
        """Seconds to wait before answering the `failures`-th failure in a row."""
        extra = failures - self.free_failures
        if extra <= 0:
            return 0.0
        return float(min(self.base_delay_s * 2 ** min(extra - 1, 32), self.max_delay_s))

    def failures_of(self, client: str) -> int:
        entry = self._clients.get(client)
        return entry.failures if entry is not None else 0

    async def failed(self, client: str, reason: str) -> float:
        """Count a failure of `client`, log it (rate-limited) and wait the delay it earned; returns that delay."""
        now = self.clock()
        entry = self._clients.pop(client, None)
        if entry is None or now - entry.last_failure_at > self.window_s:
            entry = _Client()
        entry.failures += 1
        entry.last_failure_at = now
        self._clients[client] = entry  # most recent last
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        delay = self.delay_for(entry.failures)
        if entry.logged_at is None or now - entry.logged_at >= self.log_every_s:
            # Never the token or the Authorization header: only who, why and how often.
            log.warning("admin authentication failed", client=client, reason=reason, failures=entry.failures,
                        not_logged_since_last=entry.unlogged, delay_s=delay)
            entry.logged_at = now
            entry.unlogged = 0
        else:
            entry.unlogged += 1
        if delay > 0:
            await self.sleep(delay)
        return delay

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)
