"""Outlook throttling: at most 4 concurrent requests per app per mailbox, plus injected 429/503 faults.

A request over the limit is refused at once (429 + Retry-After), like Exchange's MailboxConcurrency limit, rather than
queued; the in-flight count is released in a `finally` so errors inside a handler never leak a slot.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from simulators.graph.errors import GraphError
from simulators.graph.stats import GraphStats

DEFAULT_MAILBOX_CONCURRENCY = 4
DEFAULT_RETRY_AFTER_S = 2

_FAULT_MESSAGES = {
    429: ("TooManyRequests", "Please retry again later."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
}


@dataclass
class Injection:
    status: int
    remaining: int
    retry_after: int
    mailbox_id: str | None  # None: any request under /v1.0


def throttled(status: int, message: str, retry_after: int) -> GraphError:
    code = _FAULT_MESSAGES[status][0]
    return GraphError(
        status,
        code,
        message,
        headers={"Retry-After": str(retry_after)},
        inner={"code": str(status), "status": str(status), "message": "Please retry after"},
    )


class Throttle:
    def __init__(self, stats: GraphStats) -> None:
        self.stats = stats
        self.limit = DEFAULT_MAILBOX_CONCURRENCY
        self.retry_after = DEFAULT_RETRY_AFTER_S
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._injections: list[Injection] = []
        self._lock = threading.Lock()

    def inject(self, status: int, count: int, retry_after: int | None, mailbox_id: str | None) -> None:
        if status not in _FAULT_MESSAGES:
            raise ValueError(f"can only inject {sorted(_FAULT_MESSAGES)}")
        with self._lock:
            self._injections.append(Injection(status, count, retry_after or self.retry_after, mailbox_id))

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()

    @asynccontextmanager
    async def admit(self, app_id: str, mailbox_id: str | None) -> AsyncIterator[None]:
        """Raise the injected fault or the concurrency 429, else hold a slot of the mailbox while the body runs."""
        key = (app_id, mailbox_id or "")
        with self._lock:
            self._raise_injected(mailbox_id)
            if mailbox_id is not None:
                if self._in_flight[key] >= self.limit:
                    self.stats.add("throttled")
                    raise throttled(429, "Application is over its MailboxConcurrency limit.", self.retry_after)
                self._in_flight[key] += 1
                self.stats.record_in_flight(mailbox_id, self._in_flight[key])
        try:
            yield
        finally:
            if mailbox_id is not None:
                with self._lock:
                    self._in_flight[key] -= 1

    def _raise_injected(self, mailbox_id: str | None) -> None:
        for injection in self._injections:
            if injection.mailbox_id in (None, mailbox_id) and injection.remaining > 0:
                injection.remaining -= 1
                if injection.remaining == 0:
                    self._injections.remove(injection)
                self.stats.add("faults_injected")
                if injection.status == 429:
                    self.stats.add("throttled")
                raise throttled(injection.status, _FAULT_MESSAGES[injection.status][1], injection.retry_after)
