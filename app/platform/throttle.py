"""Graph is a shared, throttled resource (SPEC §1.5): at most 4 concurrent requests per mailbox, across every worker
thread and process. Slots live in Redis in scale-out mode and in memory in embedded mode.

In Redis a mailbox's slots are a sorted set of holders scored by when their hold lapses (a killed worker's slot frees
itself `SLOT_TTL_MS` after it was taken); taking and giving back a slot are one script each, so the limit is exact
across processes. A busy slot is waited for without polling: the waiter blocks on the mailbox's wake-up list
(`BLPOP`), into which every release pushes a token (the list is trimmed to the limit and expires). A token pushed
between a failed take and the `BLPOP` stays in the list, so no release is missed; a spare token only costs one more
take. In memory, a condition variable per mailbox does the same.

A job that cannot get a slot within `SLOT_WAIT_S` does not sleep on it: it raises `MailboxBusy`, and the queue
retries it later.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

MAILBOX_CONCURRENCY = 4  # Graph's Outlook limit per app per mailbox
# A killed worker's slot frees itself once its hold is this old (STACK-NOTES: keep it short).
SLOT_TTL_MS = 30_000
SLOT_WAIT_S = 1.0  # how long a job may wait for a slot before handing back to the queue

# KEYS: holders, wake. ARGV: holder id, limit, ttl ms. 1 = taken.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
"""
# KEYS: holders, wake. ARGV: holder id, limit, ttl ms.
_GIVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
"""


class MailboxBusy(Exception):
    def __init__(self, mailbox: str) -> None:
        super().__init__(f"mailbox {mailbox} already has {MAILBOX_CONCURRENCY} Graph requests in flight")
        self.mailbox = mailbox


class MailboxSlots:
    """`hold(mailbox)`: a context holding one of the mailbox's slots. `client` None: in memory (one process)."""

    def __init__(self, client: redis.Redis | None, limit: int = MAILBOX_CONCURRENCY,
                 prefix: str = "roombridge:graph-mailbox:", wait_s: float = SLOT_WAIT_S) -> None:
        self._redis = client
        self._limit = limit
        self._prefix = prefix
        self._wait_s = wait_s
        self._take: Any = client.register_script(_TAKE) if client is not None else None
        self._give: Any = client.register_script(_GIVE) if client is not None else None
        self._cond = threading.Condition()
        self._held: dict[str, int] = {}

    @contextmanager
    def hold(self, mailbox: str) -> Iterator[None]:
        if self._limit == 0:
            yield
            return
        name = mailbox.lower()
        if self._redis is None:
            self._take_local(name, mailbox)
            try:
                yield
            finally:
                with self._cond:
                    self._held[name] -= 1
                    if not self._held[name]:
                        del self._held[name]
                    self._cond.notify_all()
            return
        keys = [self._prefix + name, self._prefix + "wake:" + name]
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait_s
        while not self._take(keys=keys, args=[holder, self._limit, SLOT_TTL_MS]):
            left = deadline - time.monotonic()
            if left <= 0:
                raise MailboxBusy(mailbox)
            self._redis.blpop([keys[1]], timeout=max(0.01, min(left, self._wait_s)))
        try:
            yield
        finally:
            self._give(keys=keys, args=[holder, self._limit, SLOT_TTL_MS])

    def _take_local(self, name: str, mailbox: str) -> None:
        deadline = time.monotonic() + self._wait_s
        with self._cond:
            while self._held.get(name, 0) >= self._limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MailboxBusy(mailbox)
                self._cond.wait(left)
            self._held[name] = self._held.get(name, 0) + 1
