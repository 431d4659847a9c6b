"""Mutual exclusion per meeting, across threads (embedded mode) or across worker processes (Redis).

Copies of one meeting on several room calendars can be processed at the same moment by different workers; the lock
keyed by the meeting's iCalUId makes their read-decide-write sequences run one after the other.

A Redis lock has a TTL, so that a killed worker's lock frees itself. While held, it is extended once it is TTL/3
old (checked every TTL/6) by one renewing thread per process, so a job may hold it longer than the TTL (up to its
time limit). If the lock is lost anyway (a stall
longer than the TTL, Redis flushed, the key deleted), `LockLost` is raised on leaving the `with` block — at the latest
— and `Held.check()` raises it while still inside: the failure policy retries the job (it is idempotent).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock

from app.platform.logging import get_logger

LOCK_TTL_S = 60.0  # a killed worker's lock frees itself after this
LOCK_WAIT_S = 30.0

log = get_logger("roombridge.locks")


class LockTimeout(Exception):
    """The lock stayed busy for the whole wait: come back later (a wait, not a failure)."""


class LockLost(LockTimeout):
    """A held lock expired or passed to someone else: the work done under it must be done again."""


class WriteInFlight(LockTimeout):
    """Another job's write to this meeting is in flight (recorded before it was sent, not yet confirmed): wait for it
    and retry, as for a busy lock (the failure policy counts it as a wait, not a failure).

    `loan_id`: the loan whose job is writing. The writing job may have died with its retry lost (an embedded
    process killed), so whoever waits runs that loan's job again (idempotent: the write is replayed under its
    key) instead of waiting for the pending write to go stale."""

    def __init__(self, message: str, loan_id: str | None = None) -> None:
        super().__init__(message)
        self.loan_id = loan_id


class Held:
    """What `hold()` yields: `check()` raises `LockLost` once the lock is known to be lost."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.lost = threading.Event()

    def check(self) -> None:
        if self.lost.is_set():
            raise LockLost(self.key)


class LocalLocks:
    """Threads of one process: no TTL, a held lock cannot be lost."""

    def __init__(self, wait_s: float = LOCK_WAIT_S) -> None:
        self._wait_s = wait_s
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[Held]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            if not lock.acquire(timeout=self._wait_s):
                raise LockTimeout(key)
            try:
                yield Held(key)
            finally:
                lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class _Renewal:
    """One held Redis lock, as the renewer sees it. `guard` orders a renewal in flight with the holder's release."""

    __slots__ = ("lock", "held", "renewed_at", "guard", "done")

    def __init__(self, lock: Lock, held: Held) -> None:
        self.lock = lock
        self.held = held
        self.renewed_at = time.monotonic()
        self.guard = threading.Lock()
        self.done = False


class RedisLocks:
    """Held locks are renewed by one thread per instance (started while any is held), not one thread per hold:
    starting and joining a thread for every meeting's read-decide-write was a measurable share of a worker's CPU."""

    def __init__(self, client: redis.Redis, prefix: str = "roombridge:lock:", *, ttl_s: float = LOCK_TTL_S,
                 wait_s: float = LOCK_WAIT_S) -> None:
        self._client = client
        self._prefix = prefix
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self._held: dict[int, _Renewal] = {}
        self._guard = threading.Lock()
        self._renewer: threading.Thread | None = None

    @contextmanager
    def hold(self, key: str) -> Iterator[Held]:
        # thread_local=False: the renewing thread must see the token of the thread that acquired the lock.
        lock = self._client.lock(self._prefix + key, timeout=self.ttl_s, blocking_timeout=self.wait_s,
                                 thread_local=False)
        if not lock.acquire():
            raise LockTimeout(key)
        held = Held(key)
        entry = _Renewal(lock, held)
        self._register(entry)
        failed = False
        try:
            yield held
        except BaseException:
            failed = True  # the body's own error is the one to report; the lock is released all the same
            raise
        finally:
            with entry.guard:  # a renewal of this lock in flight ends first; none starts after
                entry.done = True
            with self._guard:
                self._held.pop(id(entry), None)
            try:
                lock.release()
            except LockError:  # not ours any more: expired, deleted, or taken by the next holder
                held.lost.set()
            if held.lost.is_set() and not failed:
                raise LockLost(key)

    def _register(self, entry: _Renewal) -> None:
        with self._guard:
            self._held[id(entry)] = entry
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_held, name="lock-renewer", daemon=True)
                self._renewer.start()

    def _renew_held(self) -> None:
        """Every TTL/6, renew each held lock last renewed TTL/3 ago or more (so none goes TTL/2 unrenewed); end
        when none is held (the next hold starts another)."""
        while True:
            time.sleep(self.ttl_s / 6)
            with self._guard:
                if not self._held:
                    self._renewer = None
                    return
                entries = list(self._held.values())
            for entry in entries:
                if time.monotonic() - entry.renewed_at < self.ttl_s / 3:
                    continue
                with entry.guard:
                    if not entry.done:
                        self._renew(entry)

    def _renew(self, entry: _Renewal) -> None:
        held = entry.held
        try:
            entry.lock.reacquire()  # back to the full TTL, only if the token is still ours
            entry.renewed_at = time.monotonic()
        except LockNotOwnedError:
            log.warning("meeting lock lost while held", key=held.key)
            held.lost.set()
            entry.done = True
        except redis.exceptions.RedisError as e:
            # Unreachable Redis: keep trying; past the TTL without a renewal the lock may be someone else's.
            if time.monotonic() - entry.renewed_at >= self.ttl_s:
                log.warning("meeting lock could not be renewed within its TTL", key=held.key, error=str(e))
                held.lost.set()
                entry.done = True
