"""The Redis broker's consumers: the hint queue is looked at every 25 ms when idle (a change's latency, issue 9.4),
the queues nobody waits on less often (each idle look is a Redis script: issue 9.2)."""

from __future__ import annotations

import pytest

from app.workers.broker import IDLE_POLL_MS, WORKER_TIMEOUT_MS, make_broker
from tests.conftest import make_settings


@pytest.mark.redis
def test_each_queue_is_polled_at_its_own_idle_interval(redis_url: str, tmp_path) -> None:
    broker = make_broker(make_settings(f"sqlite:///{tmp_path / 'rb.db'}", redis_url))
    try:
        timeouts = {}
        for queue in ("hints", "hints.DQ", "admin", "admin.DQ"):
            consumer = broker.consume(queue, prefetch=1, timeout=WORKER_TIMEOUT_MS)
            timeouts[queue] = consumer.timeout  # type: ignore[attr-defined]
            consumer.close()
        assert timeouts == {"hints": WORKER_TIMEOUT_MS, "hints.DQ": 50, "admin": 200, "admin.DQ": 200}
        assert all(IDLE_POLL_MS[q] > WORKER_TIMEOUT_MS for q in ("admin", "admin.DQ"))
    finally:
        broker.close()
