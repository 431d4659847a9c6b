"""Graph is a shared, throttled resource (SPEC §1.5): at most 4 concurrent requests per mailbox, across every worker
thread and process. Slots live in Redis in scale-out mode and in memory in embedded mode (dramatiq's concurrent
rate limiter over either backend).

A job that cannot get a slot quickly does not sleep on it: it raises `MailboxBusy`, and the queue retries it later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from dramatiq.rate_limits import ConcurrentRateLimiter
from dramatiq.rate_limits.backend import RateLimiterBackend

MAILBOX_CONCURRENCY = 4  # Graph's Outlook limit per app per mailbox
# A killed worker's slot frees itself once the key has gone untouched this long (STACK-NOTES: keep it short).
SLOT_TTL_MS = 30_000
SLOT_WAIT_S = 1.0  # how long a job may wait for a slot before handing back to the queue
_POLL_S = 0.02


class MailboxBusy(Exception):
    def __init__(self, mailbox: str) -> None:
        super().__init__(f"mailbox {mailbox} already has {MAILBOX_CONCURRENCY} Graph requests in flight")
        self.mailbox = mailbox


class MailboxSlots:
    def __init__(self, backend: RateLimiterBackend, limit: int = MAILBOX_CONCURRENCY,
                 prefix: str = "roombridge:graph-mailbox:") -> None:
        self._backend = backend
        self._limit = limit
        self._prefix = prefix

    @contextmanager
    def hold(self, mailbox: str) -> Iterator[None]:
        if self._limit == 0:
            yield
            return
        # dramatiq's ConcurrentRateLimiter.__init__ has no annotations (the rest of dramatiq is typed).
        limiter = ConcurrentRateLimiter(self._backend, self._prefix + mailbox.lower(),  # type: ignore[no-untyped-call]
                                        limit=self._limit, ttl=SLOT_TTL_MS)
        deadline = time.monotonic() + SLOT_WAIT_S
        while True:
            with limiter.acquire(raise_on_failure=False) as acquired:
                if acquired:
                    yield
                    return
            if time.monotonic() >= deadline:
                raise MailboxBusy(mailbox)
            time.sleep(_POLL_S)
