"""Mailbox slots (≤ 4 in flight per mailbox across threads, in memory and on the real Redis, a busy slot waited for
without polling) and the hint gate's coalescing by change tag (issue 9.2 and 9.4)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
import redis
import redis.exceptions

from app.platform import aredis
from app.platform.hints import HintGate
from app.platform.throttle import MailboxBusy, MailboxSlots


@pytest.fixture(params=["memory", "redis"])
def client(request: pytest.FixtureRequest) -> redis.Redis | None:
    if request.param == "memory":
        return None
    return redis.Redis.from_url(request.getfixturevalue("redis_url"))


def test_at_most_four_in_flight_per_mailbox_and_every_waiter_served(client: redis.Redis | None) -> None:
    slots = MailboxSlots(client, 4, prefix=f"t-{uuid.uuid4().hex[:8]}:", wait_s=120)
    inflight: dict[str, int] = {"A": 0, "B": 0}
    peak = {"A": 0, "B": 0}
    done = [0]
    guard = threading.Lock()
    release = threading.Event()
    entered = threading.Semaphore(0)

    def work(mailbox: str) -> None:
        with slots.hold(mailbox.lower() if mailbox == "A" else mailbox):
            with guard:
                inflight[mailbox] += 1
                peak[mailbox] = max(peak[mailbox], inflight[mailbox])
            entered.release()
            release.wait(120)
            with guard:
                inflight[mailbox] -= 1
                done[0] += 1

    threads = [threading.Thread(target=work, args=("A" if i % 2 else "B",)) for i in range(16)]
    for t in threads:
        t.start()
    for _ in range(8):  # 4 per mailbox get in; the other 8 wait (blocked, not failing)
        assert entered.acquire(timeout=120)
    with guard:
        assert inflight == {"A": 4, "B": 4}
    release.set()  # each release wakes a waiter
    for t in threads:
        t.join(120)
    assert done[0] == 16
    assert peak == {"A": 4, "B": 4}


def test_no_slot_within_the_wait_raises_mailbox_busy(client: redis.Redis | None) -> None:
    slots = MailboxSlots(client, 1, prefix=f"t-{uuid.uuid4().hex[:8]}:", wait_s=0.2)
    with slots.hold("room@contoso.com"):
        with pytest.raises(MailboxBusy):
            with slots.hold("ROOM@contoso.com"):  # mailboxes are case-insensitive
                pass
        with slots.hold("other@contoso.com"):
            pass
    with slots.hold("room@contoso.com"):  # given back
        pass


def test_a_released_slot_is_not_missed_by_a_waiter_that_had_just_failed(client: redis.Redis | None) -> None:
    """A release between a failed take and the wait leaves a token: the waiter still gets in (Redis: the wake-up
    list keeps it; memory: the condition)."""
    slots = MailboxSlots(client, 1, prefix=f"t-{uuid.uuid4().hex[:8]}:", wait_s=120)
    def other(got: threading.Event) -> None:
        with slots.hold("m"):
            got.set()

    for _ in range(50):
        got = threading.Event()
        with slots.hold("m"):
            t = threading.Thread(target=other, args=(got,))
            t.start()
        t.join(120)
        assert got.is_set()


def test_duplicates_of_a_change_cost_one_job_and_a_new_change_gets_its_own(client: redis.Redis | None) -> None:
    gate = HintGate(client, 500, prefix=f"h-{uuid.uuid4().hex[:8]}:")
    assert gate.delay_ms('W/"1"') is None and gate.delay_ms("") == 500  # tagged: at once; untagged: the window
    assert gate.claim("room:ev", 'W/"1"')
    assert not gate.claim("room:ev", 'W/"1"')  # pending
    assert not gate.claim("room:ev", 'W/"2"')  # pending: the job has not read yet, it will see change 2 too
    gate.release("room:ev")  # the job starts (before it reads)
    assert not gate.claim("room:ev", 'W/"1"')  # a late duplicate of the change it reads
    assert gate.claim("room:ev", 'W/"3"')  # a change after the read began: its own job
    gate.release("room:ev")
    assert gate.claim("room:ev", "")  # no tag: cannot be told from a new change
    assert not gate.claim("room:ev", "")
    gate.forget("room:ev")  # not enqueued: the next hint is not swallowed
    assert gate.claim("room:ev", "")


def test_coalescing_off_makes_every_hint_a_job(client: redis.Redis | None) -> None:
    gate = HintGate(client, 0, prefix=f"h-{uuid.uuid4().hex[:8]}:")
    assert all(gate.claim("k", 'W/"1"') for _ in range(3))
    assert gate.delay_ms('W/"1"') is None and gate.delay_ms("") is None


def test_claims_from_the_event_loop_drop_known_duplicates_without_asking_redis(redis_url: str) -> None:
    """The intake's `claim_async` (Redis): a process that won a claim, or was told a started job reads that very tag,
    drops the next hints with that tag without a round trip; a claim refused only because another caller's job is
    pending is not remembered (that caller may forget it), nor is a forgotten claim."""
    client = redis.Redis.from_url(redis_url)
    prefix = f"h-{uuid.uuid4().hex[:8]}:"
    here, there = HintGate(client, 500, prefix=prefix), HintGate(client, 500, prefix=prefix)  # two processes

    async def scenario() -> None:
        live = aredis.Client(redis_url)
        dead = aredis.Client("redis://127.0.0.1:1/0")  # any round trip to it raises
        try:
            assert await here.claim_async(live, [("room:ev", 'W/"1"')]) == [True]
            assert await here.claim_async(dead, [("room:ev", 'W/"1"'), ("room:ev", 'W/"1"')]) == [False, False]
            with pytest.raises(redis.exceptions.ConnectionError):
                await here.claim_async(dead, [("room:ev", 'W/"2"')])  # another change: Redis is asked
            with pytest.raises(redis.exceptions.ConnectionError):
                await here.claim_async(dead, [("room:ev", "")])  # untagged: never known
            await here.forget_async(live, ["room:ev"])  # its job was not stored
            assert await there.claim_async(live, [("room:ev", 'W/"1"')]) == [True]
            assert await here.claim_async(live, [("room:ev", 'W/"1"')]) == [False]  # pending elsewhere
            await there.forget_async(live, ["room:ev"])  # ... and that job was not stored either
            assert await here.claim_async(live, [("room:ev", 'W/"1"')]) == [True]  # so this hint gets a job
            there.release("room:ev")  # the job starts: W/"1" is read
            assert await there.claim_async(live, [("room:ev", 'W/"1"')]) == [False]  # told so by Redis
            assert await there.claim_async(dead, [("room:ev", 'W/"1"')]) == [False]  # then known
            assert await there.claim_async(live, [("room:ev", 'W/"3"')]) == [True]  # a later change: its job
        finally:
            await live.aclose()
            await dead.aclose()

    asyncio.run(scenario())
