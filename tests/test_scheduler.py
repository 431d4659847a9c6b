"""The scheduler (SPEC §9): what is due, from the database; the lease that keeps exactly one scheduler active, on
SQLite and PostgreSQL; and two real `roombridge scheduler` processes on one PostgreSQL database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from apscheduler.schedulers.base import STATE_STOPPED  # type: ignore[import-untyped]
from sqlmodel import Session

from app.platform import leases
from app.platform.db import make_engine
from app.platform.migrate import upgrade
from app.platform.models import Integration, Room, Subscription, utcnow
from app.sync.runtime import Runtime
from app.workers.scheduler import LEASE_NAME, Memo, Scheduler, due_work, older_than
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, make_settings
from tests.helpers import seed_subscription

TTL = timedelta(seconds=30)


@pytest.fixture
def engine(database_url: str):
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


# --- pure rules -----------------------------------------------------------------------------------------------------


def test_older_than() -> None:
    now = utcnow()
    assert older_than(None, timedelta(hours=6), now)
    assert older_than(now - timedelta(hours=6), timedelta(hours=6), now)
    assert not older_than(now - timedelta(hours=5), timedelta(hours=6), now)


def test_memo_does_not_resend_work_still_in_the_queue() -> None:
    memo, now = Memo(), utcnow()
    assert memo.fresh(["a", "b"], "renew", timedelta(minutes=5), now) == ["a", "b"]
    assert memo.fresh(["a", "c"], "renew", timedelta(minutes=5), now + timedelta(minutes=1)) == ["c"]
    assert memo.fresh(["a"], "poll", timedelta(minutes=5), now) == ["a"]  # another kind of work
    assert memo.fresh(["a"], "renew", timedelta(minutes=5), now + timedelta(minutes=5)) == ["a"]


# --- leases ---------------------------------------------------------------------------------------------------------


def test_a_dead_holder_of_this_host_is_recognised_and_replaced_once(engine) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    gone = f"{socket.gethostname()}:{dead.pid}:deadbeef"
    assert leases.holder_is_dead(gone)
    assert not leases.holder_is_dead(leases.holder_id())  # this process, this run
    assert leases.holder_is_dead(f"{socket.gethostname()}:{os.getpid()}:0ldrun00")  # this pid, an earlier run
    assert not leases.holder_is_dead(f"{socket.gethostname()}:1:abcdef12")  # alive (or not ours to signal)
    assert not leases.holder_is_dead(f"another-host:{dead.pid}:deadbeef")  # elsewhere: only its TTL tells

    assert leases.acquire(engine, "job", gone, TTL)
    assert not leases.acquire(engine, "job", "b", TTL)
    assert leases.acquire(engine, "job", "b", TTL, replacing=gone)
    assert not leases.acquire(engine, "job", "c", TTL, replacing=gone)  # only one takes over the dead holder
    assert leases.current_holder(engine, "job")[0] == "b"


def test_lease_has_one_holder_and_passes_on_when_it_expires(engine) -> None:
    assert leases.acquire(engine, "job", "a", TTL)
    assert not leases.acquire(engine, "job", "b", TTL)
    assert leases.acquire(engine, "job", "a", TTL)  # renewal by the holder
    assert leases.current_holder(engine, "job")[0] == "a"

    assert leases.acquire(engine, "job", "a", timedelta(seconds=-1))  # as if "a" stopped renewing long ago
    assert leases.acquire(engine, "job", "b", TTL)
    assert not leases.acquire(engine, "job", "a", TTL)
    assert leases.acquire(engine, "other", "a", TTL)  # leases are independent

    leases.release(engine, "job", "b")
    assert leases.acquire(engine, "job", "a", TTL)


def test_racing_for_a_free_or_expired_lease_gives_one_winner(engine) -> None:
    for round_ in range(3):
        barrier = threading.Barrier(8)
        wins: list[str] = []

        def race(holder: str, barrier: threading.Barrier = barrier, wins: list[str] = wins) -> None:
            barrier.wait()
            if leases.acquire(engine, "race", holder, TTL):
                wins.append(holder)

        threads = [threading.Thread(target=race, args=(f"h{round_}-{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, wins
        leases.release(engine, "race", wins[0])  # free again for the next round (expired, row kept)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def test_two_schedulers_in_one_database_one_is_active(database_url: str, monkeypatch) -> None:
    upgrade(database_url)
    rt = Runtime(make_settings(database_url))
    attempts: dict[str, list[bool]] = {}
    real_acquire = leases.acquire

    def counted_acquire(engine, name, holder, ttl) -> bool:
        held = real_acquire(engine, name, holder, ttl)
        attempts.setdefault(holder, []).append(held)
        return held

    monkeypatch.setattr(leases, "acquire", counted_acquire)
    # A TTL far longer than any stall of a loaded machine (a standby retries every TTL/15): only the clean release
    # is under test here, not expiry (the processes test below covers that).
    ttl = timedelta(seconds=15)
    first = Scheduler(rt, lease_ttl=ttl, tick_every=timedelta(hours=1)).start()
    second = Scheduler(rt, lease_ttl=ttl, tick_every=timedelta(hours=1)).start()
    try:
        _wait(lambda: first.active or second.active, 60, "a scheduler to become active")
        active, standby = (first, second) if first.active else (second, first)
        # The standby keeps trying, and keeps failing.
        _wait(lambda: attempts.get(standby.holder, []).count(False) >= 2, 60, "the standby to retry")
        assert True not in attempts[standby.holder]
        assert active.active and not standby.active
        assert leases.current_holder(rt.engine, LEASE_NAME)[0] == active.holder

        active.stop()  # a clean stop releases the lease at once...
        holder, expires_at = leases.current_holder(rt.engine, LEASE_NAME)
        assert holder == active.holder and expires_at <= utcnow()
        _wait(lambda: standby.active, 60, "the standby to take over")  # ... and the standby takes it
        assert leases.current_holder(rt.engine, LEASE_NAME)[0] == standby.holder
    finally:
        first.stop()
        second.stop()
        rt.close()


def test_stopping_while_the_lease_job_takes_the_lease_does_not_deadlock(sqlite_url: str, monkeypatch) -> None:
    """A lease job that becomes active schedules the first tick at once (`modify_job`). APScheduler's
    `shutdown(wait=True)` holds its job store lock while it waits for running jobs: a job calling `modify_job` then
    waited forever and `stop()` hung (the 300 s timeout under load). Here the lease write completes exactly while
    `stop()` is inside `shutdown`."""
    upgrade(sqlite_url)
    rt = Runtime(make_settings(sqlite_url))
    scheduler = Scheduler(rt, lease_ttl=timedelta(seconds=30), tick_every=timedelta(hours=1))
    real_acquire = leases.acquire
    in_acquire = threading.Event()

    def acquire_during_shutdown(*args, **kwargs) -> bool:
        in_acquire.set()
        aps = scheduler._aps
        lock = aps._jobstores_lock
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until shutdown() has stopped the scheduler and holds the lock
            if aps.state == STATE_STOPPED and not lock.acquire(blocking=False):
                break
            if aps.state == STATE_STOPPED:
                lock.release()
            time.sleep(0.01)
        return real_acquire(*args, **kwargs)

    monkeypatch.setattr(leases, "acquire", acquire_during_shutdown)
    scheduler.start()
    try:
        assert in_acquire.wait(60)
        stopper = threading.Thread(target=scheduler.stop, daemon=True)
        stopper.start()
        stopper.join(120)
        assert not stopper.is_alive(), "Scheduler.stop() deadlocked"
        # It took the lease as it stopped: stop() still released it, so a standby need not wait for the TTL.
        holder, expires_at = leases.current_holder(rt.engine, LEASE_NAME)
        assert holder == scheduler.holder and expires_at <= utcnow()
    finally:
        rt.close()


# --- what is due ----------------------------------------------------------------------------------------------------


def test_due_work_from_the_database(engine) -> None:
    integration, room, sub = seed_subscription(engine)
    now = utcnow()
    with Session(engine) as s:
        due = due_work(s, now)
    assert due.imports == [integration.id]  # never imported
    assert due.renewals == []  # created now for 3 days: not due
    assert due.subscribe == [] and due.poll == []
    assert due.reconcile == [room.id]  # never reconciled

    with Session(engine) as s:
        s.get(Integration, integration.id).rooms_synced_at = now - timedelta(hours=1)
        s.get(Room, room.id).reconciled_at = now - timedelta(hours=1)
        row = s.get(Subscription, sub.id)
        row.created_at, row.expires_at = now - timedelta(days=5), now + timedelta(days=2)
        s.commit()
    with Session(engine) as s:
        due = due_work(s, now)
    assert (due.imports, due.renewals, due.reconcile) == ([], [sub.id], [])

    with Session(engine) as s:
        s.get(Subscription, sub.id).status = "removed"
        s.get(Integration, integration.id).rooms_synced_at = now - timedelta(hours=7)
        s.commit()
    with Session(engine) as s:
        due = due_work(s, now)
    assert due.subscribe == [room.id] and due.renewals == [] and due.imports == [integration.id]

    with Session(engine) as s:
        s.get(Integration, integration.id).enabled = False
        s.commit()
    with Session(engine) as s:
        due = due_work(s, now)
    assert due.imports == due.subscribe == due.reconcile == []


# --- `roombridge scheduler` processes -------------------------------------------------------------------------------


def _env(database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATABASE_URL=database_url, ADMIN_TOKEN=ADMIN_TOKEN, SECRET_KEY=SECRET_KEY, LOG_FORMAT="json")
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def test_scheduler_without_redis_says_serve_schedules_itself(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "app.cli", "scheduler"], capture_output=True, text=True, check=False,
                            env=_env(f"sqlite:///{tmp_path / 'rb.db'}", None), timeout=60)
    assert result.returncode == 2
    assert "serve" in result.stderr and "REDIS_URL" in result.stderr


@pytest.mark.slow
def test_two_scheduler_processes_one_active_and_a_standby_takes_over(pg_url: str, redis_url: str, tmp_path) -> None:
    ttl = 10.0
    upgrade(pg_url)
    engine = make_engine(pg_url)
    env = _env(pg_url, redis_url)
    command = [sys.executable, "-m", "app.cli", "scheduler", "--lease-ttl", str(ttl)]
    logs = [tmp_path / f"scheduler-{i}.log" for i in range(2)]
    procs = [subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT) for log in logs]
    by_pid = {p.pid: p for p in procs}

    def holder_pid() -> int | None:
        found = leases.current_holder(engine, LEASE_NAME)
        if found is None or found[1] <= utcnow():
            return None
        return int(found[0].split(":")[-2])

    def wait_until(check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := check():
                return found
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: "
                             + " | ".join(log.read_text() for log in logs))

    def wait_holder(timeout: float) -> int:
        return wait_until(holder_pid, timeout, "a scheduler to hold the lease")

    try:
        active = wait_holder(120)
        assert active in by_pid
        first_expiry = leases.current_holder(engine, LEASE_NAME)[1]
        # The holder renews (every TTL/3) and keeps it; the other stands by.
        wait_until(lambda: leases.current_holder(engine, LEASE_NAME)[1] > first_expiry, 120, "a renewal")
        assert holder_pid() == active
        assert all(p.poll() is None for p in procs)

        by_pid[active].send_signal(signal.SIGKILL)  # no clean release
        by_pid[active].wait(30)
        successor = wait_until(lambda: (pid := holder_pid()) != active and pid, ttl + 120, "the standby to take over")
        assert successor in by_pid
        # The dead holder was a process of this host: the standby sees it is gone and takes over without waiting for
        # its lease to lapse (a holder on another host is waited for: test_a_dead_holder_* below).
        log_text = "\n".join(log.read_text() for log in logs)
        assert log_text.count('"scheduler active"') == 2
        assert '"scheduler lease taken over from a dead process"' in log_text
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        engine.dispose()
