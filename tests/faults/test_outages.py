"""Outages (issue 8 point 6), on the embedded default:

- the booking system down for a while, changes made on both sides meanwhile: all through after it returns, within a
  bounded delay, nothing lost or doubled;
- SPEC case 13: everything down, the subscriptions expire, changes are made on both sides (no notification, no hook
  gets through): at the next start the subscriptions are recreated and every change is applied.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from app.platform.db import make_engine
from app.platform.models import Subscription, utcnow
from simulators.processes import wait_for
from simulators.sandbox import Sandbox
from tests.faults.harness import WAIT, Stack, make_burst, progress, settled_counts, wait_applied

pytestmark = pytest.mark.slow

# The scenario is a 10-minute outage; the suite uses 45 s (the jobs behave the same: they wait, retried every
# 2 s, bounded by WAIT_LIMIT_S = 6 h). ROOMBRIDGE_FAULT_OUTAGE_S=600 runs the full one.
OUTAGE_S = float(os.environ.get("ROOMBRIDGE_FAULT_OUTAGE_S", "45"))


def test_booking_system_down_then_back_everything_goes_through(tmp_path) -> None:
    meetings, loans = 30, 15
    with Sandbox.start() as sb:
        stack = Stack(sb, tmp_path, f"sqlite:///{tmp_path / 'roombridge.db'}")
        try:
            stack.start("serve")
            stack.setup_integration()
            sb.settle()
            sb.booking.down()
            t_down = time.monotonic()
            burst = make_burst(sb, meetings, loans)
            # The bridge accepts the notifications and hooks; its jobs wait for the booking system.
            wait_for(lambda: sum(1 for d in sb.booking.hooks.deliveries if d.ok) >= loans, WAIT, "hooks acknowledged")
            wait_for(lambda: time.monotonic() - t_down >= OUTAGE_S, OUTAGE_S + 5, "the outage to last", interval=0.5)
            print(f"[fault] booking system down: {len(sb.booking.hooks.deliveries)} hooks delivered, "
                  f"{sb.graph.stats.notifications_delivered} notifications acknowledged meanwhile")
            assert progress(sb, burst) == 0
            sb.booking.up()
            t_up = time.monotonic()
            applied_s = wait_applied(sb, burst, t_up)
            print(f"[fault] booking system down {OUTAGE_S:.0f}s: every change applied {applied_s:.1f}s after it "
                  "came back")
            counts = settled_counts(sb, burst, f"booking system down {OUTAGE_S:.0f}s ({meetings} meetings + {loans} "
                                               "loans)")
            assert (counts.lost, counts.doubled) == (0, 0), counts
            assert len(sb.booking.loans) == meetings + loans
        finally:
            stack.close()


def test_case_13_subscriptions_expired_while_everything_was_down(tmp_path) -> None:
    meetings, loans = 20, 10
    database_url = f"sqlite:///{tmp_path / 'roombridge.db'}"
    with Sandbox.start() as sb:
        stack = Stack(sb, tmp_path, database_url)
        try:
            serve = stack.start("serve")
            stack.setup_integration()
            sb.settle()
            before = set(sb.graph.subscriptions)
            stack.stop(serve, signal.SIGKILL)

            # Everything down: the subscriptions expire (in Graph and by their stored date) ...
            for sub_id in before:
                sb.graph.expire_subscription(sub_id)
            engine = make_engine(database_url)
            with Session(engine) as s:
                for row in s.exec(select(Subscription)).all():
                    row.expires_at = utcnow() - timedelta(hours=1)
                    s.add(row)
                s.commit()
            engine.dispose()
            # ... and both sides change: no notification (no live subscription), no hook gets an answer.
            burst = make_burst(sb, meetings, loans)
            wait_for(lambda: sb.booking.hooks.wait_idle(1) and len(sb.booking.hooks.deliveries) >= loans, WAIT,
                     "the hooks to be given up")
            assert not any(d.ok for d in sb.booking.hooks.deliveries[-loans:])

            t0 = time.monotonic()
            stack.start("serve")
            wait_for(lambda: len(sb.graph.subscriptions) == 2 and not before & set(sb.graph.subscriptions), WAIT,
                     "the subscriptions recreated")
            applied_s = wait_applied(sb, burst, t0)
            print(f"[fault] case 13: subscriptions recreated, every change applied {applied_s:.1f}s after the start")
            counts = settled_counts(sb, burst, f"case 13, subscriptions expired while down ({meetings} meetings + "
                                               f"{loans} loans)")
            assert (counts.lost, counts.doubled) == (0, 0), counts
        finally:
            stack.close()
