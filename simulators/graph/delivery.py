"""Background delivery of change and lifecycle notifications, with the imperfections Graph shows in real life.

Notifications are queued by whoever changed an event and POSTed later by one daemon thread, never inside the request
that caused them. `DeliveryFaults` (mutable at run time) adds duplicates, drops, delay, reordering and the spurious
`updated` that Exchange often sends after `created`. Lifecycle notifications go through the same queue but ignore
the faults, so tests can rely on them.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from simulators.graph.stats import GraphStats

DELIVERY_TIMEOUT_S = 3.0  # Graph counts a delivery as failed if the endpoint doesn't answer 2xx within 3 s
DEFAULT_MAX_ATTEMPTS = 3  # Graph retries for hours; a few attempts are enough to exercise the receiver
RETRY_BACKOFF_S = 0.2  # doubled at each attempt
HOLD_POLL_S = 0.05  # while notifications are held, how often the sender looks whether they were let go


@dataclass
class DeliveryFaults:
    duplicates: int = 1  # POSTs per notification
    drop_probability: float = 0.0
    drop_next: int = 0  # drop the next N notifications, then deliver normally
    delay: float = 0.0  # seconds before a notification is sent
    reorder_window: float = 0.0  # > 0: notifications queued within this many seconds are sent newest first
    spurious_updated: bool = False  # follow every `created` with an `updated` for the same event
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # True: change notifications are queued but not sent until it is False again (lifecycle ones still go), so a
    # test can make several changes "at once" whatever the machine's load, and choose what the bridge hears first.
    held: bool = False


@dataclass(order=True)
class _Post:
    due: float
    order: int  # enqueue order; negated inside a reordered batch
    url: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False)
    lifecycle: bool = field(compare=False)
    attempt: int = field(default=1, compare=False)


class Delivery:
    def __init__(self, stats: GraphStats) -> None:
        self.stats = stats
        self.faults = DeliveryFaults()
        self.verify: ssl.SSLContext | bool = True  # set before start() to trust the test CA
        self._queue: list[_Post] = []
        self._cond = threading.Condition()
        self._sending = 0
        self._order = itertools.count()
        self._batch_closes = 0.0
        self._random = random.Random()
        self._running = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._running = True
        self.set_senders(1)

    def set_senders(self, count: int) -> None:
        """How many notifications may be in flight at once (Graph sends concurrently; 1 keeps them in order)."""
        while len(self._threads) < count:
            thread = threading.Thread(target=self._run, name=f"graph-sim-delivery-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._queue.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=DELIVERY_TIMEOUT_S * 2)

    def notify(self, url: str, payload: dict[str, Any]) -> None:
        """Queue a change notification, applying the faults."""
        with self._cond:
            faults = self.faults
            if faults.drop_next > 0 or self._random.random() < faults.drop_probability:
                faults.drop_next = max(0, faults.drop_next - 1)
                self.stats.add("notifications_dropped")
                return
            for _ in range(max(1, faults.duplicates)):
                self._push(url, payload, lifecycle=False)
            if faults.spurious_updated and any(item["changeType"] == "created" for item in payload["value"]):
                self._push(url, _as_updated(payload), lifecycle=False)

    def lifecycle(self, url: str, payload: dict[str, Any]) -> None:
        with self._cond:
            self._push(url, payload, lifecycle=True)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once nothing is queued or being sent (delayed and retried notifications included)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._sending, timeout)

    def _push(self, url: str, payload: dict[str, Any], lifecycle: bool, attempt: int = 1, after: float = 0.0) -> None:
        now = time.monotonic()
        order = next(self._order)
        due = now + after + (0.0 if lifecycle else self.faults.delay)
        if self.faults.reorder_window > 0 and not lifecycle and attempt == 1:
            if now >= self._batch_closes:
                self._batch_closes = now + self.faults.reorder_window
            due, order = self._batch_closes + self.faults.delay, -order
        heapq.heappush(self._queue, _Post(due, order, url, payload, lifecycle, attempt))
        self._cond.notify_all()

    def _run(self) -> None:
        with httpx.Client(verify=self.verify, timeout=DELIVERY_TIMEOUT_S) as client:
            while True:
                with self._cond:
                    while self._running and (self._next_due() is None or self._next_due() > time.monotonic()):
                        due = self._next_due()
                        if self.faults.held and any(not p.lifecycle for p in self._queue):
                            due = min(due, time.monotonic() + HOLD_POLL_S) if due is not None \
                                else time.monotonic() + HOLD_POLL_S  # held: look again shortly
                        self._cond.wait(due - time.monotonic() if due is not None else None)
                    if not self._running:
                        return
                    post = self._pop_next()
                    self._sending += 1
                delivered = self._send(client, post)
                with self._cond:
                    self._sending -= 1
                    if not delivered and post.attempt < self.faults.max_attempts:
                        backoff = RETRY_BACKOFF_S * 2 ** (post.attempt - 1)
                        self._push(post.url, post.payload, post.lifecycle, post.attempt + 1, after=backoff)
                    elif not delivered:
                        self.stats.add("notifications_failed")
                    self._cond.notify_all()

    def _next_due(self) -> float | None:
        """When the next sendable notification is due (None: nothing to send; held change notifications wait)."""
        if not self.faults.held:
            return self._queue[0].due if self._queue else None
        return min((p.due for p in self._queue if p.lifecycle), default=None)

    def _pop_next(self) -> _Post:
        if not self.faults.held:
            return heapq.heappop(self._queue)
        post = min(p for p in self._queue if p.lifecycle)
        self._queue.remove(post)
        heapq.heapify(self._queue)
        return post

    def _send(self, client: httpx.Client, post: _Post) -> bool:
        try:
            response = client.post(post.url, json=post.payload)
        except httpx.HTTPError:
            return False
        if not response.is_success:
            return False
        self.stats.add("lifecycle_delivered" if post.lifecycle else "notifications_delivered")
        return True


def _as_updated(payload: dict[str, Any]) -> dict[str, Any]:
    spurious = copy.deepcopy(payload)
    for item in spurious["value"]:
        item["changeType"] = "updated"
    return spurious
