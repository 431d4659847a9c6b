"""Reverse-hook delivery (SPEC §7) from a background thread, with the misbehaviours tests need.

Delivery modes (attributes, settable at any time):
- `duplicate = N`: each hook is POSTed N times, with the same `RoomBridge-Delivery` id (a redelivery) or,
  with `duplicate_new_id = True`, a new id each time (the same change announced twice);
- `delay = S`: each hook waits S seconds before its first attempt (late delivery);
- `before_response = True`: a change made through the API is delivered synchronously before the API answers;
- `drop = True`: hooks are lost (the bridge's reconciliation must catch up);
- `hold()` / `release(order)`: park hooks, then send them in `fifo`, `reverse` or `shuffle` order.
Failed attempts (no answer, 429 or 5xx) are retried `max_attempts` times in all, with a short back-off.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

import httpx

from app.core.contract import HookPayload, HookType, Loan
from app.core.signing import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from simulators.booking.state import BookingStats

Order = Literal["fifo", "reverse", "shuffle"]


@dataclass
class HookDelivery:
    """One POST of one hook (duplicates are separate records). `status` is the last HTTP status, None if none."""

    delivery_id: str
    type: HookType
    loan_id: str
    version: int
    body: bytes
    not_before: float = 0.0
    attempts: int = 0
    status: int | None = None
    ok: bool = False


class HookDispatcher:
    def __init__(self, stats: BookingStats) -> None:
        self._stats = stats
        self._cond = threading.Condition()
        self._queue: deque[HookDelivery] = deque()
        self._held: list[HookDelivery] | None = None
        self._busy = 0  # queued + in flight
        self._closed = False
        self._target: tuple[str, str] | None = None  # (url, secret)
        self._http = httpx.Client(timeout=5.0)
        self.deliveries: list[HookDelivery] = []
        self._defaults()
        self._thread = threading.Thread(target=self._run, name="booking-sim-hooks", daemon=True)
        self._thread.start()

    def _defaults(self) -> None:
        self.duplicate = 1
        self.duplicate_new_id = False
        self.delay = 0.0
        self.before_response = False
        self.drop = False
        self.max_attempts = 4
        self.retry_backoff = 0.05  # seconds, doubled after each failed attempt

    def set_target(self, url: str | None, secret: str | None) -> None:
        self._target = (url, secret) if url and secret else None

    # -- emitting ---------------------------------------------------------------------------------------------

    def _build(self, hook_type: HookType, loan: Loan) -> list[HookDelivery]:
        if self._target is None or self.drop:
            return []
        body = HookPayload(type=hook_type, loan=loan).model_dump_json().encode()
        first = HookDelivery(str(uuid.uuid4()), hook_type, loan.id, loan.version, body,
                             not_before=time.monotonic() + self.delay)
        copies = [first]
        for _ in range(self.duplicate - 1):
            copies.append(replace(first, delivery_id=str(uuid.uuid4())) if self.duplicate_new_id else replace(first))
        return copies

    def emit(self, hook_type: HookType, loan: Loan) -> None:
        """Queue a hook for the background thread."""
        jobs = self._build(hook_type, loan)
        with self._cond:
            if self._held is not None:
                self._held.extend(jobs)
                return
            self._queue.extend(jobs)
            self._busy += len(jobs)
            self._cond.notify_all()

    def emit_for_api(self, hook_type: HookType, loan: Loan) -> None:
        """A change made through the API; blocks until delivered when `before_response` is on (call off the loop)."""
        if not self.before_response or self._held is not None:
            self.emit(hook_type, loan)
            return
        for job in self._build(hook_type, loan):
            self._deliver(job)

    def hold(self) -> None:
        with self._cond:
            if self._held is None:
                self._held = []

    def release(self, order: Order = "fifo") -> int:
        """Stop holding; send the parked hooks in `order`. Returns how many were parked."""
        with self._cond:
            held, self._held = self._held or [], None
            if order == "reverse":
                held.reverse()
            elif order == "shuffle":
                random.shuffle(held)
            now = time.monotonic()
            for job in held:
                job.not_before = now + self.delay
            self._queue.extend(held)
            self._busy += len(held)
            self._cond.notify_all()
            return len(held)

    def send(self, hook_type: HookType, loan: Loan, *, timestamp: int | None = None, secret: str | None = None,
             delivery_id: str | None = None) -> HookDelivery:
        """One synchronous POST, now, with optional overrides (stale timestamp, wrong secret, replayed id)."""
        if self._target is None:
            raise RuntimeError("no hook target: call set_hook_target() first")
        body = HookPayload(type=hook_type, loan=loan).model_dump_json().encode()
        job = HookDelivery(delivery_id or str(uuid.uuid4()), hook_type, loan.id, loan.version, body)
        self._attempt(job, secret=secret, timestamp=timestamp)
        return job

    # -- delivering -------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
            try:
                self._deliver(job)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, job: HookDelivery) -> None:
        wait = job.not_before - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        backoff = self.retry_backoff
        while True:
            if self._target is None:  # reset or switched off meanwhile: abandon quietly, count nothing
                return
            self._attempt(job)
            if job.ok:
                return
            if job.attempts >= self.max_attempts or (job.status is not None and _permanent(job.status)):
                self._stats.add("hooks_failed")
                return
            time.sleep(backoff)
            backoff *= 2

    def _attempt(self, job: HookDelivery, *, secret: str | None = None, timestamp: int | None = None) -> None:
        target = self._target
        if target is None:
            return
        url, target_secret = target
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret if secret is not None else target_secret, job.body, timestamp),
            DELIVERY_HEADER: job.delivery_id,
        }
        job.attempts += 1
        if job.attempts == 1:
            with self._cond:
                self.deliveries.append(job)
        self._stats.add("hooks_sent")
        try:
            job.status = self._http.post(url, content=job.body, headers=headers).status_code
        except httpx.HTTPError:
            job.status = None
        job.ok = job.status is not None and 200 <= job.status < 300
        if job.ok:
            self._stats.add("hooks_delivered")

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once every queued hook has been delivered or given up (held hooks excepted)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def reset(self) -> None:
        """Forget queued and held hooks, the record of deliveries and the delivery modes (not the target)."""
        with self._cond:
            self._busy -= len(self._queue)
            self._queue.clear()
            self._held = None
            self.deliveries = []
            self._defaults()
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)
        self._http.close()


def _permanent(status: int) -> bool:
    # A 4xx other than 429 (bad signature, unknown integration) will not succeed on retry.
    return 400 <= status < 500 and status != 429
