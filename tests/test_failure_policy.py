"""The failure policy of jobs (app/workers/failures.py), run by a real worker on the in-process broker (SQLite) and on
Redis (PostgreSQL): bounded retries that end in the journal, waits that don't use the retry budget but are bounded in
time, errors no retry can fix journaled once under the integration of jobs keyed by a room or a subscription."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import pytest
from sqlmodel import Session, select

from app.adapters.booking.client import BookingUnavailable
from app.adapters.graph.errors import GraphAuthError, GraphThrottled
from app.platform.locks import LockLost
from app.platform.migrate import upgrade
from app.platform.models import Integration, JournalEntry, Room, Subscription
from app.platform.throttle import MailboxBusy
from app.sync import journal, reconcile, runtime, subscriptions
from app.sync.runtime import Runtime
from app.workers import actors, failures
from app.workers.broker import bind, make_broker, start_worker
from tests.conftest import make_settings
from tests.helpers import seed_subscription

FAST = dict(min_backoff=10, max_backoff=50)  # real failures retried within milliseconds in these tests


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


@dataclass
class Stack:
    rt: Runtime
    broker: dramatiq.Broker
    integration: Integration
    room: Room
    subscription: Subscription
    runs: Counter[str] = field(default_factory=Counter)
    worker: dramatiq.Worker | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def actor(self, name: str, body: Callable[[int], None], **options: Any) -> dramatiq.Actor:
        """A test job on this broker; `body` gets the run number (1, 2, ...)."""

        def fn(integration_id: str | None = None, room_id: str | None = None) -> None:
            with self._guard:
                self.runs[name] += 1
                run = self.runs[name]
            body(run)

        fn.__name__ = name
        return dramatiq.actor(fn, actor_name=name, queue_name="policy-test", broker=self.broker, **options)

    def start(self) -> None:
        self.worker = start_worker(self.broker, 2)

    def journal(self, action: str | None = None) -> list[JournalEntry]:
        with Session(self.rt.engine) as s:
            q = select(JournalEntry).where(JournalEntry.integration_id == self.integration.id)
            rows = list(s.exec(q).all())
        return [e for e in rows if action is None or e.action == action]


@pytest.fixture(params=["embedded", "redis"])
def make_stack(request: pytest.FixtureRequest, tmp_path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(**settings: Any) -> Stack:
        if request.param == "embedded":
            s = make_settings(f"sqlite:///{tmp_path / 'rb.db'}", **settings)
        else:
            s = make_settings(request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url"), **settings)
        upgrade(s.database_url)
        rt = Runtime(s)
        runtime.install(rt)
        integration, room, sub = seed_subscription(rt.engine)
        stack = Stack(rt, make_broker(s), integration, room, sub)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        if stack.worker is not None:
            stack.worker.stop()
        stack.broker.close()
        stack.rt.close()
    runtime.install(None)


def test_retry_exhaustion_is_journaled_once(make_stack) -> None:
    stack = make_stack(retry_limit=3)

    def always_fails(run: int) -> None:
        raise RuntimeError(f"boom {run}; Authorization: Bearer eyJ-secret-token")

    job = stack.actor("always_fails", always_fails, journal_by="room_id", journal_direction="reconcile", **FAST)
    stack.start()
    job.send(room_id=stack.room.id)  # keyed by a room: journaled under the room's integration

    [entry] = wait_for(lambda: stack.journal(failures.GAVE_UP), 30, "the give-up in the journal")
    assert stack.runs["always_fails"] == 4  # the first run and retry_limit retries
    assert entry.status == "error" and entry.direction == "reconcile"
    assert "always_fails" in entry.message and "4 run(s)" in entry.message and "retries exhausted" in entry.message
    assert "boom 4" in entry.message and "eyJ-secret-token" not in entry.message
    if stack.rt.redis is None:
        stack.broker.join("policy-test", fail_fast=False)
    assert stack.runs["always_fails"] == 4 and len(stack.journal()) == 1


@pytest.mark.parametrize("limit", [0, 2])
def test_the_integrations_retry_limit_overrides_the_setting(make_stack, limit: int) -> None:
    stack = make_stack(retry_limit=5)
    with Session(stack.rt.engine) as s:
        row = s.get(Integration, stack.integration.id)
        assert row is not None and row.retry_limit is None  # the setting applies until the admin sets one
        row.retry_limit = limit
        s.add(row)
        s.commit()

    def always_fails(run: int) -> None:
        raise RuntimeError(f"boom {run}")

    job = stack.actor("always_fails", always_fails, journal_by="room_id", journal_direction="reconcile", **FAST)
    stack.start()
    job.send(room_id=stack.room.id)

    [entry] = wait_for(lambda: stack.journal(failures.GAVE_UP), 30, "the give-up in the journal")
    assert f"{limit + 1} run(s)" in entry.message
    if stack.rt.redis is None:
        stack.broker.join("policy-test", fail_fast=False)
    assert stack.runs["always_fails"] == limit + 1  # the first run and the integration's retries, not the setting's 5


def test_waits_do_not_use_the_retry_budget(make_stack) -> None:
    stack = make_stack(retry_limit=1)
    done = threading.Event()

    def waits_then_works(run: int) -> None:
        if run <= 3:
            raise GraphThrottled("429 Too Many Requests", retry_after=0.01, status=429)
        if run == 4:
            raise MailboxBusy("room-a@contoso.com")
        if run == 5:
            raise LockLost("meeting")
        if run == 6:
            raise RuntimeError("one real failure: within the budget of 1")
        if run <= 9:
            raise dramatiq.Retry(delay=10)
        done.set()

    job = stack.actor("waits_then_works", waits_then_works, journal_by="integration_id", **FAST)
    stack.start()
    job.send(stack.integration.id)
    assert done.wait(60), stack.runs
    assert stack.runs["waits_then_works"] == 10
    assert stack.journal() == []  # nothing gave up, nothing to tell the admin


def test_the_wait_limit_ends_a_job_that_keeps_waiting(make_stack) -> None:
    stack = make_stack(retry_limit=1, wait_limit_s=1)

    def always_throttled(run: int) -> None:
        raise GraphThrottled("503 Service Unavailable", retry_after=0.1, status=503)

    job = stack.actor("always_throttled", always_throttled, journal_by="integration_id",
                      journal_direction="outlook_to_booking")
    started = time.monotonic()
    stack.start()
    job.send(stack.integration.id)

    [entry] = wait_for(lambda: stack.journal(failures.GAVE_UP), 30, "the give-up in the journal")
    assert time.monotonic() - started >= 1
    assert stack.runs["always_throttled"] > 2  # far more waits than the retry limit: they were not counted as such
    assert "still waiting" in entry.message and "GraphThrottled" in entry.message
    assert entry.direction == "outlook_to_booking" and entry.status == "error"


def test_a_booking_outage_is_journaled_once_per_change(make_stack) -> None:
    stack = make_stack()
    done = threading.Event()

    def outage(run: int) -> None:
        if run <= 4:
            raise BookingUnavailable("booking system unreachable", retry_after=0.01)
        done.set()

    job = stack.actor("outage", outage, journal_by="integration_id", journal_direction="outlook_to_booking")
    stack.start()
    job.send(stack.integration.id)
    assert done.wait(60), stack.runs
    # The change went through at its fifth run: the entry no longer lists as an open error (issue 8, point 4).
    [entry] = wait_for(lambda: [e for e in stack.journal() if e.status == journal.RESOLVED], 30,
                       "the outage entry marked resolved")
    assert len(stack.journal()) == 1
    assert entry.action == "wait" and entry.direction == "outlook_to_booking"
    assert "the change waits and is retried" in entry.message and "the job went through at run 5" in entry.message


def test_a_change_that_goes_through_resolves_the_errors_of_that_change_only(make_stack) -> None:
    stack = make_stack()
    with Session(stack.rt.engine) as s:
        journal.record(s, stack.integration.id, "outlook_to_booking", "gave_up", "error", "x", ical_uid="uid-1")
        journal.record(s, stack.integration.id, "booking_to_outlook", "gave_up", "error", "y", loan_id="loan-1")
        journal.record(s, stack.integration.id, "outlook_to_booking", "gave_up", "error", "z", ical_uid="uid-2")
        s.commit()
    with Session(stack.rt.engine) as s:
        journal.record(s, stack.integration.id, "outlook_to_booking", "create", "ok", "done", ical_uid="uid-1",
                       loan_id="loan-1")
        s.commit()
    status = {e.message.split(" ")[0]: e.status for e in stack.journal() if e.action == "gave_up"}
    assert status == {"x": journal.RESOLVED, "y": journal.RESOLVED, "z": "error"}


@pytest.mark.parametrize("job", ["renew_subscription", "handle_lifecycle", "reconcile_room", "ensure_subscription"])
def test_auth_failure_of_a_job_keyed_by_room_or_subscription_is_journaled_under_its_integration(
        make_stack, monkeypatch: pytest.MonkeyPatch, job: str) -> None:
    stack = make_stack()
    calls = Counter[str]()

    def refused(*args: Any, **kwargs: Any) -> Any:
        calls[job] += 1
        raise GraphAuthError("invalid client secret", 401)

    target = {"renew_subscription": (subscriptions, "renew"), "handle_lifecycle": (subscriptions, "handle_lifecycle"),
              "reconcile_room": (reconcile, "reconcile_room"),
              "ensure_subscription": (subscriptions, "ensure_subscription")}[job]
    monkeypatch.setattr(*target, refused)
    bind(stack.broker)  # the real actors, with their options
    stack.start()
    actor = getattr(actors, job)
    args = {"renew_subscription": (stack.subscription.id,), "handle_lifecycle": (stack.subscription.id, "missed"),
            "reconcile_room": (stack.room.id,), "ensure_subscription": (stack.room.id,)}[job]
    actor.send(*args)

    [entry] = wait_for(lambda: stack.journal(), 30, "the refusal in the journal")
    assert entry.action == "fail" and entry.status == "error" and "invalid client secret" in entry.message
    assert entry.direction == ("reconcile" if job == "reconcile_room" else subscriptions.DIRECTION)
    assert calls[job] == 1  # not retried
    if stack.rt.redis is None:
        stack.broker.join(actor.queue_name, fail_fast=False)
    assert calls[job] == 1 and len(stack.journal()) == 1


def test_exhaustion_of_a_job_keyed_by_subscription_is_journaled_under_its_integration(
        make_stack, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = make_stack(retry_limit=1)
    calls = Counter[str]()

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls["renew"] += 1
        raise KeyError("unexpected")

    monkeypatch.setattr(subscriptions, "renew", broken)
    bind(stack.broker)
    stack.start()
    actors.renew_subscription.send(stack.subscription.id)

    [entry] = wait_for(lambda: stack.journal(failures.GAVE_UP), 30, "the give-up in the journal")
    assert calls["renew"] == 2 and entry.direction == subscriptions.DIRECTION
    assert "renew_subscription" in entry.message and "KeyError" in entry.message


def test_settings_of_the_policy(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    defaults = make_settings(f"sqlite:///{tmp_path / 'rb.db'}")
    assert defaults.retry_limit == 10 and defaults.wait_limit_s == 6 * 3600
    monkeypatch.setenv("RETRY_LIMIT", "3")
    monkeypatch.setenv("WAIT_LIMIT_S", "600")
    s = make_settings(f"sqlite:///{tmp_path / 'rb.db'}")
    broker = make_broker(s)
    try:
        [policy] = [m for m in broker.middleware if isinstance(m, failures.FailurePolicy)]
        assert (policy.retry_limit, policy.wait_limit_s) == (3, 600)
        assert not [m for m in broker.middleware if isinstance(m, dramatiq.middleware.Retries)]
    finally:
        broker.close()


def test_error_descriptions_mask_credentials() -> None:
    text = failures.describe(RuntimeError("GET /x?api_key=abc123&x=1 failed; token=t0k; client_secret: s3cr3t"))
    assert "abc123" not in text and "t0k" not in text and "s3cr3t" not in text
    assert text.startswith("RuntimeError: GET /x?api_key=***")
    assert len(failures.describe(RuntimeError("x" * 1000))) == 300
