"""The meeting lock (app/platform/locks.py): renewed while held on the real Redis, so it outlives its TTL; a lost lock
raises `LockLost` (a wait for the failure policy); the in-process variant for embedded mode."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
import redis

from app.platform.locks import Held, LocalLocks, LockLost, LockTimeout, RedisLocks


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def prefix(redis_url: str) -> str:
    return f"{os.environ['REDIS_NAMESPACE']}:lock:"  # removed with the namespace after the test


# --- Redis ----------------------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_held_lock_outlives_its_ttl_and_nobody_else_gets_it(client: redis.Redis, prefix: str) -> None:
    # A TTL of seconds, not fractions: the renewing thread must get the CPU within TTL/3 on a loaded machine (with
    # 0.6 s, load 17 on 2 cores once starved it long enough to lose a lock).
    locks = RedisLocks(client, prefix, ttl_s=3, wait_s=5)
    other = RedisLocks(client, prefix, ttl_s=3, wait_s=0.05)
    key = prefix + "meeting-1"
    with locks.hold("meeting-1") as held:
        started = time.monotonic()
        ttls: list[int] = []
        refused = 0
        while time.monotonic() - started < 7.5:  # two and a half TTLs
            with pytest.raises(LockTimeout):
                with other.hold("meeting-1"):
                    pass
            refused += 1
            ttls.append(client.pttl(key))
            held.check()
        # The key never expired: every reading had a TTL, and past the first TTL it was still there (renewed).
        assert refused > 5 and all(0 < t <= 3000 for t in ttls), ttls
        assert client.exists(key)
    assert not client.exists(key)  # released on leaving
    with other.hold("meeting-1"):  # free for the next holder at once
        pass


@pytest.mark.redis
def test_a_lock_deleted_while_held_raises_lock_lost(client: redis.Redis, prefix: str) -> None:
    locks = RedisLocks(client, prefix, ttl_s=0.6)
    with pytest.raises(LockLost):
        with locks.hold("meeting-2") as held:
            client.delete(prefix + "meeting-2")

            def noticed() -> bool:
                try:
                    held.check()
                except LockLost:
                    return True
                return False

            wait_for(noticed, 10, "the renewal to notice the loss")
    assert issubclass(LockLost, LockTimeout)  # the failure policy treats it as a wait: the job runs again


@pytest.mark.redis
def test_a_lock_lost_to_another_holder_is_noticed_on_leaving(client: redis.Redis, prefix: str) -> None:
    locks = RedisLocks(client, prefix, ttl_s=30)  # no renewal happens during this test
    with pytest.raises(LockLost):
        with locks.hold("meeting-3") as held:
            client.set(prefix + "meeting-3", "someone-else")  # as if it had expired and been taken
            held.check()  # not known yet: only the renewal or the release find out
    assert client.get(prefix + "meeting-3") == b"someone-else"  # the other holder's lock is left alone


@pytest.mark.redis
def test_the_body_error_is_not_hidden_by_a_lost_lock(client: redis.Redis, prefix: str) -> None:
    locks = RedisLocks(client, prefix, ttl_s=30)
    with pytest.raises(ValueError, match="boom"):
        with locks.hold("meeting-4"):
            client.delete(prefix + "meeting-4")
            raise ValueError("boom")


@pytest.mark.redis
def test_a_busy_lock_times_out(client: redis.Redis, prefix: str) -> None:
    first, second = RedisLocks(client, prefix, ttl_s=5), RedisLocks(client, prefix, ttl_s=5, wait_s=0.1)
    with first.hold("meeting-5"):
        with pytest.raises(LockTimeout) as e:
            with second.hold("meeting-5"):
                pass
        assert not isinstance(e.value, LockLost)


@pytest.mark.redis
def test_one_thread_renews_every_held_lock(client: redis.Redis, prefix: str) -> None:
    locks = RedisLocks(client, prefix, ttl_s=3, wait_s=1)  # seconds: see the test above
    before = set(threading.enumerate())  # other tests' renewers may still be ending
    with ExitStack() as stack:
        helds = [stack.enter_context(locks.hold(f"meeting-many-{i}")) for i in range(5)]
        renewers = [t for t in set(threading.enumerate()) - before if t.name.startswith("lock-renew")]
        assert len(renewers) == 1, [t.name for t in renewers]
        time.sleep(7.5)  # the scenario: held for two and a half TTLs, each renewed by that one thread
        for i, held in enumerate(helds):
            held.check()
            assert client.exists(prefix + f"meeting-many-{i}")
    assert not any(client.exists(prefix + f"meeting-many-{i}") for i in range(5))
    wait_for(lambda: not renewers[0].is_alive(), 10, "the renewer to end once nothing is held")


# --- in-process (embedded mode) -------------------------------------------------------------------------------------


def test_local_locks_exclude_each_other_and_time_out() -> None:
    locks = LocalLocks(wait_s=0.1)
    inside = threading.Event()
    leave = threading.Event()

    def holder() -> None:
        with locks.hold("m") as held:
            assert isinstance(held, Held)
            held.check()  # never lost in one process
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert inside.wait(10)
        with pytest.raises(LockTimeout):
            with locks.hold("m"):
                pass
        with locks.hold("another meeting"):
            pass
    finally:
        leave.set()
        t.join(10)
    with locks.hold("m"):
        pass
    assert locks._locks == {}  # nothing left behind
