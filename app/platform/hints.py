"""Coalescing of hints (SPEC §6, §7): N notifications of one change cost one read, without waiting a window for it.

A hint names an object (room + event, or integration + loan) and, when the sender gives one, a **tag** of the change
it reports: the event's `@odata.etag` in a Graph notification, the loan's version in a reverse hook. Duplicates of one
change carry the same tag.

- The first hint for a key marks it *pending* (remembering its tag) and the caller enqueues one job: at once when the
  hint is tagged, after the window (`HINT_COALESCE_MS`) when it is not (then the window is what absorbs duplicates).
- Further hints while the key is pending are dropped: the job has not read yet, so it will see their change too.
- When the job starts (`release`), before it reads, the pending mark becomes *seen* with its tag: a later hint with
  the same tag is a duplicate of a change the job reads (dropped); any other hint (another tag, or none) gets a job.
  So a change made after the read began always gets its own job, and a duplicate arriving after the job started
  costs no read.

Marks live in Redis (scale-out: atomic scripts) or in memory (embedded mode, where intake and jobs share a process).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

DEFAULT_WINDOW_MS = 500
# A mark outlives the window in case the queue is backed up; if it expires first, the cost is one extra read.
PENDING_TTL_MS = 60_000
# How long the tag of the last change read is remembered against late duplicates.
SEEN_TTL_MS = 60_000

# KEYS: pending, seen. ARGV: tag, pending ttl. 1 = enqueue a job.
_CLAIM = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
# KEYS: pending, seen. ARGV: seen ttl.
_RELEASE = """
local tag = redis.call('GET', KEYS[1])
if tag and tag ~= '' then redis.call('SET', KEYS[2], tag, 'PX', ARGV[1]) end
redis.call('DEL', KEYS[1])
return 1
"""


def key(room_id: str, event_id: str) -> str:
    return f"{room_id}:{event_id}"


class HintGate:
    def __init__(self, client: redis.Redis | None, window_ms: int = DEFAULT_WINDOW_MS,
                 prefix: str = "roombridge:hint:") -> None:
        self._redis = client
        self.window_ms = window_ms
        self._prefix = prefix
        self._pending: dict[str, tuple[float, str]] = {}
        self._seen: dict[str, tuple[float, str]] = {}
        self._guard = threading.Lock()
        self._claim: Any = client.register_script(_CLAIM) if client is not None else None
        self._release: Any = client.register_script(_RELEASE) if client is not None else None

    def delay_ms(self, tag: str) -> int | None:
        """How long the job of a first hint waits before it runs: none for a tagged hint, the window otherwise."""
        return None if tag or self.window_ms == 0 else self.window_ms

    def claim(self, key: str, tag: str = "") -> bool:
        """True if this hint needs a job (the caller enqueues it, delayed by `delay_ms(tag)`)."""
        if self.window_ms == 0:
            return True  # coalescing off: every hint is a job
        if self._redis is not None:
            return bool(self._claim(keys=[self._prefix + key, self._prefix + "seen:" + key],
                                    args=[tag, PENDING_TTL_MS]))
        now = time.monotonic()
        with self._guard:
            seen = self._seen.get(key)
            if tag and seen is not None and seen[0] > now and seen[1] == tag:
                return False
            pending = self._pending.get(key)
            if pending is not None and pending[0] > now:
                return False
            self._pending[key] = (now + PENDING_TTL_MS / 1000, tag)
            if len(self._pending) > 10_000:
                self._pending = {k: v for k, v in self._pending.items() if v[0] > now}
            return True

    def release(self, key: str) -> None:
        """The job for `key` starts (before it reads): hints from now on need a job unless they repeat the tag."""
        if self.window_ms == 0:
            return
        if self._redis is not None:
            self._release(keys=[self._prefix + key, self._prefix + "seen:" + key], args=[SEEN_TTL_MS])
            return
        now = time.monotonic()
        with self._guard:
            pending = self._pending.pop(key, None)
            if pending is not None and pending[1]:
                self._seen[key] = (now + SEEN_TTL_MS / 1000, pending[1])
                if len(self._seen) > 10_000:
                    self._seen = {k: v for k, v in self._seen.items() if v[0] > now}

    def forget(self, key: str) -> None:
        """The job could not be enqueued: drop the pending mark so that the next hint is not swallowed."""
        if self._redis is not None:
            self._redis.delete(self._prefix + key)
            return
        with self._guard:
            self._pending.pop(key, None)
