"""Fault injection for the simulated booking API: added latency and a budget of forced error responses."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    status: int
    retry_after: float | None


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latency = 0.0  # seconds added before every API response
        self._fault: Fault | None = None
        self._remaining = 0

    def inject(self, status: int = 503, count: int = 1, retry_after: float | None = None) -> None:
        """The next `count` API requests get `status` (with `Retry-After` when given) instead of an answer."""
        if not 400 <= status <= 599:
            raise ValueError("an injected fault must be a 4xx or 5xx status")
        with self._lock:
            self._fault, self._remaining = Fault(status, retry_after), count

    def take(self) -> Fault | None:
        """The fault to answer the current request with, if any is left."""
        with self._lock:
            if self._remaining <= 0 or self._fault is None:
                return None
            self._remaining -= 1
            return self._fault

    def reset(self) -> None:
        with self._lock:
            self.latency, self._fault, self._remaining = 0.0, None, 0
