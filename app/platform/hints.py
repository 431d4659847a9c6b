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
from collections.abc import Sequence
from typing import Any

import redis

from app.platform import aredis

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
_CLAIM_SCRIPT = aredis.Script.of(_CLAIM)


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

    async def claim_async(self, client: aredis.Client, claims: Sequence[tuple[str, str]]) -> list[bool]:
        """`claim` for each (key, tag), from an event loop: on Redis, one round trip for all of them. If it fails,
        the marks it may have set are dropped (best effort: at worst a later hint gets a job of its own) and the error
        raised, so that nothing is swallowed by a mark without a job."""
        if self.window_ms == 0 or self._redis is None:
            return [self.claim(k, t) for k, t in claims]  # no I/O: coalescing off, or marks in memory
        calls = [aredis.Call(_CLAIM_SCRIPT, [self._prefix + k, self._prefix + "seen:" + k], [t, PENDING_TTL_MS])
                 for k, t in claims]
        try:
            replies = await client.run(calls)
        except Exception:
            await self.forget_async(client, [k for k, _ in claims])
            raise
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            await self.forget_async(client, [k for (k, _), r in zip(claims, replies, strict=True) if r == 1])
            raise failed[0]
        return [r == 1 for r in replies]

    async def forget_async(self, client: aredis.Client, keys: Sequence[str]) -> None:
        """`forget` for each key, from an event loop; best effort (errors are swallowed: this runs on a failure)."""
        if not keys:
            return
        if self._redis is None:
            for k in keys:
                self.forget(k)
            return
        try:
            await client.command("DEL", *(self._prefix + k for k in keys))
        except Exception:  # noqa: BLE001, S110 - Redis is failing already; the mark expires (PENDING_TTL_MS)
            pass

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
