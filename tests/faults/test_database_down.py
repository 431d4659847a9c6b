"""PostgreSQL refusing connections for 20 s under a scale-out bridge (issue 8 points 2 and 6): the webhooks answer
503 + Retry-After (never 500), the senders retry, and once the database is back every change made during the outage is
applied: nothing lost, nothing doubled.

The outage is real: the bridge's database refuses new connections and its open sessions are cut (ALLOW_CONNECTIONS
false + pg_terminate_backend), as in a PostgreSQL restart or failover. The simulators retry like the real senders
do (Graph for hours; here long enough to outlast the outage).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import psycopg
import pytest

from simulators.processes import wait_for
from simulators.sandbox import Sandbox
from tests.faults.harness import Stack, make_burst, settled_counts, wait_applied

pytestmark = pytest.mark.slow

OUTAGE_S = 20.0


def _allow_connections(pg_server: str, database_url: str, allow: bool) -> None:
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}')
        if not allow:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                         "AND pid <> pg_backend_pid()", (name,))


def test_postgresql_refusing_connections_503_then_nothing_lost(tmp_path, pg_server, pg_url, redis_url) -> None:
    meetings, loans = 20, 10
    with Sandbox.start() as sb:
        stack = Stack(sb, tmp_path, pg_url, redis_url)
        try:
            stack.start("serve")
            stack.start("worker")
            stack.setup_integration()
            sb.settle()
            # Senders that retry for longer than the outage, as Graph (hours) and a booking system would.
            sb.graph.delivery.max_attempts = 10  # back-off 0.2 s doubled: ~100 s of attempts
            sb.booking.hooks.max_attempts = 12  # back-off 0.05 s doubled: ~100 s of attempts

            statuses: Counter[int] = Counter()
            outage = threading.Event()
            during: Counter[int] = Counter()
            stop = threading.Event()

            def probe() -> None:
                payload = {"value": [{"subscriptionId": "00000000-0000-0000-0000-000000000000",
                                      "clientState": "x", "changeType": "updated",
                                      "resource": "Users/x/Events/y", "resourceData": {"id": "y"}}]}
                with httpx.Client(base_url=stack.base_url, timeout=10) as client:
                    while not stop.is_set():
                        for r in (client.post("/graph/notifications", json=payload),
                                  client.post(f"/hooks/booking/{stack.integration_id}", content=b"{}")):
                            statuses[r.status_code] += 1
                            if outage.is_set():
                                during[r.status_code] += 1
                                if r.status_code == 503 and not r.headers.get("Retry-After", "").isdigit():
                                    during[-1] += 1  # a 503 without Retry-After
                        time.sleep(0.1)

            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            _allow_connections(pg_server, pg_url, False)
            outage.set()
            t_down = time.monotonic()
            try:
                burst = make_burst(sb, meetings, loans)
                wait_for(lambda: time.monotonic() - t_down >= OUTAGE_S, OUTAGE_S + 10, "the outage to last",
                         interval=0.5)
            finally:
                outage.clear()
                _allow_connections(pg_server, pg_url, True)
            t_up = time.monotonic()
            applied_s = wait_applied(sb, burst, t_up)
            stop.set()
            prober.join(30)
            print(f"[fault] PostgreSQL refusing connections {OUTAGE_S:.0f}s: webhook answers during the outage "
                  f"{dict(during)}, overall {dict(statuses)}; every change applied {applied_s:.1f}s after it ended")
            assert 500 not in statuses and not any(s > 503 for s in statuses), statuses
            assert during[503] > 0 and during[-1] == 0, during
            counts = settled_counts(sb, burst, f"PostgreSQL refusing connections {OUTAGE_S:.0f}s ({meetings} "
                                               f"meetings + {loans} loans)")
            assert (counts.lost, counts.doubled) == (0, 0), counts
        finally:
            stack.close()
