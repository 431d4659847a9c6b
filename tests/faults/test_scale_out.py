"""Scale-out faults (PostgreSQL + Redis, separate processes), issue 8 points 1 and 6:

- SPEC case 18: a worker killed with SIGKILL in a burst of 500 changes, both directions: its jobs run again
  elsewhere; nothing lost, nothing doubled.
- Redis restarted empty (no persistence) while accepted jobs wait in it: the active scheduler finds the bridge's
  marker key gone and catches up (app/workers/catchup.py); nothing lost, nothing doubled.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from simulators.processes import wait_for
from simulators.sandbox import Sandbox
from simulators.server import free_port
from tests.faults.harness import WAIT, Stack, make_burst, merge, progress, settled_counts, wait_applied

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_worker_killed_in_a_burst_of_500_changes_both_directions(tmp_path, pg_url, redis_url) -> None:
    """SPEC case 18, and every other process of the stack stopped in the same burst: a worker SIGKILLed (its jobs
    come back after the heartbeat timeout), another stopped with SIGTERM (it finishes its jobs and hands the
    prefetched ones back), `serve` SIGKILLed (the senders retry what it did not acknowledge)."""
    meetings, loans = 300, 200
    with Sandbox.start() as sb:
        stack = Stack(sb, tmp_path, pg_url, redis_url)
        try:
            stack.start("serve")
            victim = stack.start("worker")
            graceful = stack.start("worker")
            stack.setup_integration()
            sb.settle()
            # Senders that retry while `serve` restarts, as Graph (for hours) and a booking system do.
            sb.graph.delivery.max_attempts = 10  # back-off 0.2 s doubled: ~100 s of attempts
            sb.booking.hooks.max_attempts = 12  # back-off 0.05 s doubled: ~100 s of attempts
            burst = make_burst(sb, meetings, loans)
            total = meetings + loans
            wait_for(lambda: progress(sb, burst) >= 75, WAIT, "the burst to be under way", interval=0.05)
            done_at_kill = progress(sb, burst)
            stack.stop(victim, signal.SIGKILL)
            t0 = time.monotonic()
            stack.start("worker")  # its replacement, as a supervisor would start it
            wait_for(lambda: progress(sb, burst) >= 200, WAIT, "the burst to go on", interval=0.05)
            done_at_term = progress(sb, burst)
            term_s = stack.stop(graceful, signal.SIGTERM)
            stack.start("worker")
            wait_for(lambda: progress(sb, burst) >= 300, WAIT, "the burst to go on", interval=0.05)
            done_at_serve_kill = progress(sb, burst)
            stack.stop(stack.running("serve")[0], signal.SIGKILL)
            stack.start("serve")
            applied_s = wait_applied(sb, burst, t0, timeout=240)
            print(f"[fault] scale-out burst of {total}: worker SIGKILL at {done_at_kill}, worker SIGTERM at "
                  f"{done_at_term} (stopped in {term_s:.1f}s), serve SIGKILL at {done_at_serve_kill}; every change "
                  f"applied {applied_s:.1f}s after the first kill")
            counts = settled_counts(sb, burst, f"worker SIGKILL + worker SIGTERM + serve SIGKILL in a burst of "
                                               f"{meetings} meetings + {loans} loans")
            assert (counts.lost, counts.doubled) == (0, 0), counts
            assert len(sb.booking.loans) == meetings + loans
        finally:
            stack.close()


class RedisServer:
    """A redis-server of the test's own, without persistence (what the README's quick start runs): restarting it
    loses every key. Never the machine's shared Redis."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), 30, "redis-server to answer")
        client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


def test_redis_restarted_empty_while_jobs_wait_is_detected_and_caught_up(tmp_path, pg_url, own_redis,
                                                                          monkeypatch) -> None:
    monkeypatch.setenv("REDIS_NAMESPACE", "rbfault")
    meetings, loans = 30, 10
    with Sandbox.start() as sb:
        stack = Stack(sb, tmp_path, pg_url, own_redis.url)
        try:
            stack.start("serve")
            worker = stack.start("worker")
            stack.start("scheduler")
            stack.setup_integration()
            client = own_redis.client()
            wait_for(lambda: client.exists("rbfault:bridge-marker"), WAIT, "the scheduler's marker key")
            sb.settle()

            # No worker for now: what is accepted waits in Redis.
            stack.stop(worker, signal.SIGKILL)
            notified, hooked = sb.graph.stats.notifications_delivered, sb.booking.stats.hooks_sent
            burst = make_burst(sb, meetings, loans)
            wait_for(lambda: sb.graph.stats.notifications_delivered >= notified + meetings
                     and sum(1 for d in sb.booking.hooks.deliveries if d.ok) >= loans, WAIT,
                     "every notification and hook acknowledged")
            waiting = sum(client.hlen(k) for k in client.scan_iter("rbfault:*.msgs"))  # dramatiq's message hashes
            assert waiting > 0
            assert progress(sb, burst) == 0
            print(f"[fault] Redis restarted empty: {meetings} meetings + {loans} loans acknowledged "
                  f"(hooks sent {sb.booking.stats.hooks_sent - hooked}), {waiting} entries waiting in Redis")

            own_redis.kill()
            # Redis down during intake: webhooks answer 503 (never 500), the senders retry (as Graph does, for
            # hours), and what they retry is accepted once Redis is back.
            sb.graph.delivery.max_attempts = 10  # back-off 0.2 s doubled: ~100 s of attempts
            sb.booking.hooks.max_attempts = 12  # back-off 0.05 s doubled: ~100 s of attempts
            sub_id, sub = next(iter(sb.graph.subscriptions.items()))
            notification = {"value": [{"subscriptionId": sub_id, "clientState": sub["clientState"],
                                       "changeType": "updated", "resource": f"{sub['resource']}/AAMkprobe",
                                       "resourceData": {"id": "AAMkprobe"}}]}
            down: list[int] = []
            with httpx.Client(base_url=stack.base_url, timeout=10) as http:
                for _ in range(3):
                    r = http.post("/graph/notifications", json=notification)
                    down.append(r.status_code)
                    assert r.status_code != 503 or r.headers.get("Retry-After", "").isdigit()
            during = make_burst(sb, 10, 5, tag="D", meeting_day=20, loan_day=60)
            wait_for(lambda: any(d.attempts > 1 for d in sb.booking.hooks.deliveries[-5:]), WAIT,
                     "hooks refused while Redis is down")
            print(f"[fault] Redis down: notifications answered {down}")
            assert down == [503, 503, 503]
            own_redis.start()  # empty: no persistence
            t0 = time.monotonic()
            stack.start("worker")
            everything = merge(burst, during)
            applied_s = wait_applied(sb, everything, t0)
            print(f"[fault] Redis restarted empty: every change applied {applied_s:.1f}s after the restart")
            assert client.exists("rbfault:bridge-marker")  # written again after the catch-up
            assert '"Redis has lost its data' in stack.log_text()
            counts = settled_counts(sb, everything, f"Redis restarted empty with {meetings} meetings + {loans} "
                                                    "loans waiting, 10 + 5 more made while it was down")
            assert (counts.lost, counts.doubled) == (0, 0), counts
            client.close()
        finally:
            stack.close()
