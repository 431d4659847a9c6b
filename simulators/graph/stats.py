"""Counters that tests read to check what the bridge did to Graph (calls, writes, concurrency, notifications)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, fields


@dataclass
class GraphStats:
    """Updated from the server thread and the delivery thread; read from tests. Mailboxes are keyed by object id."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, kind) → calls
    event_reads: Counter[str] = field(default_factory=Counter)  # mailbox → GETs of events/event/calendarView/delta
    event_writes: Counter[str] = field(default_factory=Counter)  # mailbox → HTTP POST/PATCH/DELETE/cancel on events
    max_in_flight: Counter[str] = field(default_factory=Counter)  # mailbox → highest concurrency observed
    throttled: int = 0  # 429 responses (concurrency limit or injected)
    faults_injected: int = 0  # injected 429/503 responses
    notifications_delivered: int = 0  # change-notification POSTs answered 2xx (duplicates count)
    notifications_dropped: int = 0  # dropped on purpose by the delivery faults
    notifications_failed: int = 0  # given up after the retries
    lifecycle_delivered: int = 0
    tokens_issued: int = 0  # access tokens handed out by the token endpoint
    batch_items: int = 0  # requests received inside JSON $batch envelopes (each also counted in `requests`)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def http_event_writes(self) -> int:
        return sum(self.event_writes.values())

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def record_request(self, method: str, kind: str) -> None:
        with self._lock:
            self.requests[(method, kind)] += 1

    def record_mailbox(self, counter: str, mailbox_id: str) -> None:
        with self._lock:
            getattr(self, counter)[mailbox_id] += 1

    def record_in_flight(self, mailbox_id: str, in_flight: int) -> None:
        with self._lock:
            self.max_in_flight[mailbox_id] = max(self.max_in_flight[mailbox_id], in_flight)

    def reset(self) -> None:
        with self._lock:
            fresh = GraphStats()
            for f in fields(self):
                if f.name != "_lock":
                    setattr(self, f.name, getattr(fresh, f.name))
