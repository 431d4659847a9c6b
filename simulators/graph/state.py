"""The simulated tenant: directory, calendars, the change sequence and who listens to changes.

One re-entrant lock guards all of it: the server thread, the delivery thread and the tests' thread all touch it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from simulators.graph.clock import SimClock
from simulators.graph.directory import Directory, Mailbox
from simulators.graph.events import Calendar


@dataclass(frozen=True)
class Change:
    mailbox_id: str
    event_id: str
    change_type: str  # created | updated | deleted
    etag: str


ChangeListener = Callable[[Change], None]


class Tenant:
    def __init__(self, tenant_id: str, domain: str) -> None:
        self.id = tenant_id
        self.domain = domain
        self.lock = threading.RLock()
        self.clock = SimClock()
        self.directory = Directory()
        self.calendars: dict[str, Calendar] = {}
        self.seq = 0  # tenant-wide change counter; delta tokens remember the value they have seen
        self.listeners: list[ChangeListener] = []

    def calendar(self, mailbox: Mailbox) -> Calendar:
        return self.calendars.setdefault(mailbox.id, Calendar())

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def publish(self, change: Change) -> None:
        for listener in self.listeners:
            listener(change)
