"""Mutual exclusion per meeting, across threads (embedded mode) or across worker processes (Redis).

Copies of one meeting on several room calendars can be processed at the same moment by different workers; the lock
keyed by the meeting's iCalUId makes their read-decide-write sequences run one after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

LOCK_TTL_S = 60  # a killed worker's lock frees itself after this
LOCK_WAIT_S = 30


class LockTimeout(Exception):
    pass


class LocalLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            if not lock.acquire(timeout=LOCK_WAIT_S):
                raise LockTimeout(key)
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class RedisLocks:
    def __init__(self, client: redis.Redis, prefix: str = "roombridge:lock:") -> None:
        self._client = client
        self._prefix = prefix

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        lock = self._client.lock(self._prefix + key, timeout=LOCK_TTL_S, blocking_timeout=LOCK_WAIT_S)
        if not lock.acquire():
            raise LockTimeout(key)
        try:
            yield
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                pass  # expired while we worked: the next holder already has it
