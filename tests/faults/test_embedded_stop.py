"""Issue 8, point 1: the embedded default (`roombridge serve`, SQLite, in-process queue) stopped mid-burst — SIGKILL,
or SIGTERM as in any redeploy — then started again: every change whose notification or hook was acknowledged is
applied, with no admin action, and nothing is applied twice.

The burst is 150 Outlook meetings and 60 booking loans. The restarted process catches up by itself (room deltas +
the booking cursor, app/workers/catchup.py); a SIGTERM first drains (webhooks answered 503 + Retry-After).
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from simulators.processes import wait_for
from simulators.sandbox import Sandbox
from tests.faults.harness import WAIT, Stack, make_burst, progress, settled_counts, wait_applied

pytestmark = pytest.mark.slow

MEETINGS, LOANS = 150, 60


def _acknowledged(sb: Sandbox) -> tuple[int, int]:
    return sb.graph.stats.notifications_delivered, sum(1 for d in sb.booking.hooks.deliveries if d.ok)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_embedded_serve_stopped_mid_burst_loses_and_doubles_nothing(tmp_path, sig) -> None:
    with Sandbox.start() as sb:
        stack = Stack(sb, tmp_path, f"sqlite:///{tmp_path / 'roombridge.db'}")
        try:
            serve = stack.start("serve")
            stack.setup_integration()
            sb.settle()
            if sig == signal.SIGTERM:
                # Slow enough that the burst is still being worked on when the stop comes, and the drain is seen.
                sb.booking.latency = 0.05
            burst = make_burst(sb, MEETINGS, LOANS)
            total = MEETINGS + LOANS
            # Mid-burst: some of it applied, most of it acknowledged and waiting in the in-process queue.
            wait_for(lambda: progress(sb, burst) >= total // 10, WAIT, "the burst to be under way", interval=0.05)
            acked = _acknowledged(sb)
            done_at_stop = progress(sb, burst)

            statuses: list[int] = []
            stopped = threading.Event()

            def probe() -> None:  # new webhooks while the process stops: 503 (draining), never a 500
                with httpx.Client(base_url=stack.base_url, timeout=5) as client:
                    while not stopped.is_set():
                        try:
                            statuses.append(client.post(f"/hooks/booking/{stack.integration_id}",
                                                        content=b"{}").status_code)
                        except httpx.HTTPError:
                            pass
                        time.sleep(0.02)

            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            stop_s = stack.stop(serve, sig)
            stopped.set()
            prober.join(10)
            drained = '"drained"' in stack.log_text()
            print(f"[fault] embedded {sig.name}: {done_at_stop}/{total} applied at the stop, "
                  f"{acked[0]} notifications and {acked[1]} hooks acknowledged; stopped in {stop_s:.1f}s"
                  + (f", drain {'complete' if drained else 'timed out'}" if sig == signal.SIGTERM else ""))
            assert all(s < 500 or s == 503 for s in statuses), statuses
            if sig == signal.SIGTERM:
                assert 503 in statuses, "new webhooks were not answered 503 while draining"
                sb.booking.latency = 0.0

            t0 = time.monotonic()
            stack.start("serve")
            ready_s = time.monotonic() - t0
            applied_s = wait_applied(sb, burst, t0)
            print(f"[fault] embedded {sig.name}: restart ready in {ready_s:.1f}s, every change applied "
                  f"{applied_s:.1f}s after the restart")
            counts = settled_counts(sb, burst, f"embedded serve {sig.name} mid-burst ({MEETINGS} meetings + "
                                               f"{LOANS} loans)")
            assert (counts.lost, counts.doubled) == (0, 0), counts
            assert len(sb.booking.loans) == MEETINGS + LOANS  # nothing else was created either
        finally:
            stack.close()
