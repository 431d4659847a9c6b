"""SPEC case 13 end to end: subscriptions that expired while the bridge was down are recreated when it starts again,
and the meeting booked meanwhile — of which no notification ever came — still becomes a loan (reconciliation).

Embedded: `roombridge serve` schedules itself. PostgreSQL + Redis: `roombridge serve` + `worker` + `scheduler`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from app.platform.db import make_engine
from app.platform.models import Subscription, utcnow
from simulators.sandbox import Sandbox
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.e2e.harness import WAIT, run_bridge, wait_for

PARIS = ZoneInfo("Europe/Paris")
pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox():
    with Sandbox.start() as sb:
        yield sb


@contextmanager
def scheduler_process(sandbox: Sandbox, tmp_path: Path, database_url: str, redis_url: str) -> Iterator[None]:
    env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}, **sandbox.bridge_env(),
           "DATABASE_URL": database_url, "REDIS_URL": redis_url, "ADMIN_TOKEN": ADMIN_TOKEN,
           "SECRET_KEY": SECRET_KEY, "LOG_FORMAT": "json"}
    log = tmp_path / "scheduler.log"
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "scheduler"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _case_13(sandbox: Sandbox, tmp_path: Path, database_url: str, redis_url: str | None) -> None:
    with run_bridge(sandbox, tmp_path, database_url, redis_url) as bridge:
        r = bridge.api("POST", "/api/integrations", json=sandbox.integration())
        assert r.status_code == 201, r.text
        integration_id = r.json()["id"]
        wait_for(lambda: len(sandbox.graph.subscriptions) == 2, WAIT, "two subscriptions")
    before = set(sandbox.graph.subscriptions)

    # While the bridge is down, the subscriptions expire (in Graph and by their stored date)...
    for sub_id in before:
        sandbox.graph.expire_subscription(sub_id)
    engine = make_engine(database_url)
    with Session(engine) as s:
        for row in s.exec(select(Subscription)).all():
            row.expires_at = utcnow() - timedelta(hours=1)
            s.add(row)
        s.commit()
    # ... and a meeting is booked: nobody is told.
    day = (datetime.now(PARIS) + timedelta(days=2)).date()
    start = datetime(day.year, day.month, day.day, 14, 0, tzinfo=PARIS)
    meeting = sandbox.graph.create_meeting("bob@contoso.com", "Revue", start, start + timedelta(hours=1),
                                           rooms=["salle-saturne@contoso.com"], time_zone="Romance Standard Time")
    assert sandbox.booking.loans == {}

    with run_bridge(sandbox, tmp_path, database_url, redis_url) as bridge, \
            periodic_jobs(sandbox, tmp_path, database_url, redis_url):
        # At start: new subscriptions for both rooms...
        wait_for(lambda: len(sandbox.graph.subscriptions) == 2 and not before & set(sandbox.graph.subscriptions),
                 WAIT, "the subscriptions recreated")

        def stored() -> list[dict]:
            subs = bridge.api("GET", f"/api/integrations/{integration_id}/subscriptions").json()["items"]
            active = {s["id"] for s in subs if s["status"] == "active"}
            return subs if active == set(sandbox.graph.subscriptions) else []

        subs = wait_for(stored, WAIT, "the new subscriptions stored")
        assert {s["id"] for s in subs if s["status"] == "removed"} == before
        # ... and the rooms reconciled: the meeting booked meanwhile is a loan. Nothing lost.
        loan = wait_for(lambda: next(iter(sandbox.booking.loans.values()), None), WAIT, "the missed meeting's loan")
        assert loan.origin is not None and loan.origin.ref == meeting["iCalUId"]
        assert [i.place_email for i in loan.items] == ["salle-saturne@contoso.com"]
        sandbox.settle()  # anything still on its way has arrived: still one loan
        assert len(sandbox.booking.loans) == 1
    engine.dispose()


@contextmanager
def periodic_jobs(sandbox: Sandbox, tmp_path: Path, database_url: str, redis_url: str | None) -> Iterator[None]:
    """With Redis, periodic work is `roombridge scheduler`'s; embedded, `serve` does it itself."""
    if redis_url is None:
        yield
        return
    with scheduler_process(sandbox, tmp_path, database_url, redis_url):
        yield


def test_case_13_expired_while_down_recreated_at_start_embedded(sandbox, tmp_path) -> None:
    _case_13(sandbox, tmp_path, f"sqlite:///{tmp_path / 'roombridge.db'}", None)


def test_case_13_expired_while_down_recreated_at_start_postgres_redis(sandbox, tmp_path, pg_url, redis_url) -> None:
    _case_13(sandbox, tmp_path, pg_url, redis_url)
