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

With Redis, a process also remembers, for `DUPLICATE_MEMO_MS`, the (key, tag) pairs it has itself found to need no
further job: a claim it won (its job is enqueued, and reads after that change), or one Redis refused because a started
job reads that very tag. A later hint with the same key and tag is then dropped without a round trip to Redis — the
answer Redis would give, or a dropped duplicate of a change a job is known to read (`claim_async`). Hints refused only
because another caller's job is pending are not remembered (that caller may fail to enqueue and forget its mark), nor
are untagged hints; a claim whose job could not be enqueued is forgotten here too (`forget_async`).
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

# How long a process remembers a duplicate it may drop without asking Redis (see above); at most this many entries.
DUPLICATE_MEMO_MS = 30_000
DUPLICATE_MEMO_MAX = 10_000

# KEYS: pending, seen. ARGV: tag, pending ttl. 1 = enqueue a job; 2 = a started job reads this very tag; 0 = pending.
_CLAIM = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then return 2 end
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
        self._memo: dict[str, tuple[float, str]] = {}  # key -> (until, tag): a duplicate, known without Redis
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
                                    args=[tag, PENDING_TTL_MS]) == 1)
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

    def needs_io(self) -> bool:
        """Whether `claim_async` may talk to Redis (else it answers from memory, without awaiting anything)."""
        return self.window_ms != 0 and self._redis is not None

    def known_duplicate(self, key: str, tag: str, now: float) -> bool:
        """Whether this process already knows that a hint (key, tag) needs no job (the memo: see the module's doc)."""
        if not tag:
            return False
        memo = self._memo.get(key)
        return memo is not None and memo[1] == tag and memo[0] > now

    def _remember(self, pairs: Sequence[tuple[str, str]], now: float) -> None:
        if not pairs:
            return
        until = now + DUPLICATE_MEMO_MS / 1000
        memo = self._memo
        if len(memo) + len(pairs) > DUPLICATE_MEMO_MAX:
            memo = self._memo = {k: v for k, v in memo.items() if v[0] > now}
            if len(memo) + len(pairs) > DUPLICATE_MEMO_MAX:
                memo.clear()
        for key, tag in pairs:
            memo[key] = (until, tag)

    async def claim_async(self, client: aredis.Client, claims: Sequence[tuple[str, str]]) -> list[bool]:
        """`claim` for each (key, tag), from an event loop: on Redis, one round trip for all those this process does
        not already know to be duplicates (none when it knows them all). If it fails, the marks it may have set are
        dropped (best effort: at worst a later hint gets a job of its own) and the error raised, so that nothing is
        swallowed by a mark without a job."""
        if not self.needs_io():
            return [self.claim(k, t) for k, t in claims]  # no I/O: coalescing off, or marks in memory
        now = time.monotonic()
        known = [self.known_duplicate(k, t, now) for k, t in claims]
        asked = [claim for claim, dup in zip(claims, known, strict=True) if not dup]
        if not asked:
            return [False] * len(claims)
        calls = [aredis.Call(_CLAIM_SCRIPT, [self._prefix + k, self._prefix + "seen:" + k], [t, PENDING_TTL_MS])
                 for k, t in asked]
        try:
            replies = await client.run(calls)
        except Exception:
            await self.forget_async(client, [k for k, _ in asked])
            raise
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            await self.forget_async(client, [k for (k, _), r in zip(asked, replies, strict=True) if r == 1])
            raise failed[0]
        # Won (1: its job is enqueued next, or the claim forgotten) or read by a started job (2): duplicates from now.
        self._remember([(k, t) for (k, t), r in zip(asked, replies, strict=True) if t and r in (1, 2)],
                       time.monotonic())
        answers = iter(replies)
        return [False if dup else next(answers) == 1 for dup in known]

    async def forget_async(self, client: aredis.Client, keys: Sequence[str]) -> None:
        """`forget` for each key, from an event loop; best effort (errors are swallowed: this runs on a failure)."""
        if not keys:
            return
        for k in keys:
            self._memo.pop(k, None)
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
