"""Coalescing of Graph notifications (SPEC §6): N notifications for one event within a short window cost one read.

The first hint for (room, event) marks it pending and enqueues one job, delayed by the window; further hints while it
is pending are dropped. The job clears the mark before it reads Graph, so a change made after the read began still
gets its own job. Marks live in Redis (scale-out) or in memory (embedded mode, where intake and jobs share a process).
"""

from __future__ import annotations

import threading
import time

import redis

DEFAULT_WINDOW_MS = 500
# A mark outlives the window in case the queue is backed up; if it expires first, the cost is one extra read.
PENDING_TTL_MS = 60_000


def key(room_id: str, event_id: str) -> str:
    return f"{room_id}:{event_id}"


class HintGate:
    def __init__(self, client: redis.Redis | None, window_ms: int = DEFAULT_WINDOW_MS,
                 prefix: str = "roombridge:hint:") -> None:
        self._redis = client
        self.window_ms = window_ms
        self._prefix = prefix
        self._local: dict[str, float] = {}
        self._guard = threading.Lock()

    def claim(self, key: str) -> bool:
        """True if this hint is the first of its window (the caller enqueues the job)."""
        if self.window_ms == 0:
            return True  # coalescing off: every hint is a job
        if self._redis is not None:
            return bool(self._redis.set(self._prefix + key, b"1", nx=True, px=PENDING_TTL_MS))
        now = time.monotonic()
        with self._guard:
            expires = self._local.get(key)
            if expires is not None and expires > now:
                return False
            self._local[key] = now + PENDING_TTL_MS / 1000
            if len(self._local) > 10_000:
                self._local = {k: v for k, v in self._local.items() if v > now}
            return True

    def release(self, key: str) -> None:
        if self._redis is not None:
            self._redis.delete(self._prefix + key)
            return
        with self._guard:
            self._local.pop(key, None)
