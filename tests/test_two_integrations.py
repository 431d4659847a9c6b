"""Two integrations (two tenants on one Graph host, two booking systems) in one deployment, end to end over HTTP
with a real worker (issue 10.9): a loan of A's booking system becomes an event in A's tenant only, a meeting in B's
tenant a loan in B's booking system only, each journal holds only its own, and disabling A deletes A's subscriptions
and leaves B's. On SQLite + in-process queue and on PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from sqlmodel import Session, select

from app.platform.migrate import upgrade
from app.platform.models import Integration, JournalEntry, Link, Subscription
from app.sync import rooms, subscriptions
from app.sync.integrations import IntegrationCreate, new_integration
from app.sync.runtime import Runtime
from app.web.app import create_app
from app.workers import actors
from app.workers.broker import start_worker
from simulators import sandbox as sandbox_module
from simulators.sandbox import GraphHost, Sandbox
from simulators.server import ServerThread, free_port
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.simulators.graph_helpers import shared_ca
from tests.test_rooms_import import JUPITER, stack_urls_fixture  # noqa: F401 - fixture
from tests.test_worklist import ALICE, slot, wait_for

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def two(monkeypatch: pytest.MonkeyPatch, stack_urls: tuple[str, str | None]) -> Iterator[SimpleNamespace]:
    monkeypatch.setattr(sandbox_module, "TestCA", SimpleNamespace(create=shared_ca))
    host = GraphHost(shared_ca()).start()
    a, b = Sandbox.start(host=host), Sandbox.start(host=host)
    monkeypatch.setenv("SSL_CERT_FILE", str(host.ca.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(host.ca.ca_file))
    database_url, redis_url = stack_urls
    port = free_port()
    settings = make_settings(database_url, redis_url, public_base_url=f"http://127.0.0.1:{port}",
                             graph_base_url=a.graph.graph_base_url, graph_authority_host=a.graph.authority_host)
    upgrade(database_url)
    rt = Runtime(settings)
    app = create_app(settings, runtime=rt, run_worker=False)
    server = ServerThread(app, port=port).start()
    worker = None
    try:
        ids = []
        for sandbox in (a, b):
            integration, _ = new_integration(IntegrationCreate.model_validate(sandbox.integration()), rt.box)
            with Session(rt.engine, expire_on_commit=False) as s:
                s.add(integration)
                s.commit()
            ids.append(integration.id)
            for room_id in rooms.import_rooms(rt, integration.id):
                subscriptions.ensure_subscription(rt, room_id)
        app.state.broker.flush_all()
        worker = start_worker(app.state.broker, 2)
        yield SimpleNamespace(rt=rt, a=a, b=b, a_id=ids[0], b_id=ids[1], base_url=server.base_url)
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        rt.close()
        a.stop()
        b.stop()
        host.stop()


def _links(rt: Runtime, integration_id: str) -> list[Link]:
    with Session(rt.engine) as s:
        return list(s.exec(select(Link).where(Link.integration_id == integration_id)).all())


def test_two_integrations_side_by_side_stay_apart(two: SimpleNamespace) -> None:
    rt = two.rt
    window = (datetime.now(UTC), datetime.now(UTC) + timedelta(days=30))

    loan = two.a.booking.create_loan(ALICE, *slot(3, 9), places=[JUPITER])
    actors.process_loan.send(two.a_id, loan.id)  # as A's hook would
    wait_for("A's loan an event in A's tenant", lambda: len(two.a.graph.calendar_view(ALICE["email"], *window)) == 1)

    start, end = slot(4, 14)
    two.b.graph.create_meeting(ALICE["email"], "Réunion B", start, end, rooms=[JUPITER])
    wait_for("B's meeting a loan in B's booking system, linked",
             lambda: len(two.b.booking.loans) == 1
             and [lk.loan_id for lk in _links(rt, two.b_id)] == list(two.b.booking.loans))
    wait_for("A's loan linked to its event", lambda: [lk.loan_id for lk in _links(rt, two.a_id)] == [loan.id])

    assert two.b.graph.calendar_view(ALICE["email"], *window)[0]["subject"] == "Réunion B"  # nothing of A's in B
    assert len(two.b.graph.calendar_view(ALICE["email"], *window)) == 1
    assert list(two.a.booking.loans) == [loan.id]  # nothing of B's in A's booking system
    assert [lk.loan_id for lk in _links(rt, two.a_id)] == [loan.id]
    assert [lk.loan_id for lk in _links(rt, two.b_id)] == list(two.b.booking.loans)
    with Session(rt.engine) as s:
        a_loans = {e.loan_id for e in s.exec(select(JournalEntry).where(JournalEntry.integration_id == two.a_id))}
        assert not a_loans & set(two.b.booking.loans)

    r = httpx.patch(f"{two.base_url}/api/integrations/{two.a_id}", json={"enabled": False}, headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.json()["disabled"]["subscriptions_deleted"] == 2
    with Session(rt.engine) as s:
        by = {(sub.integration_id, sub.status) for sub in s.exec(select(Subscription)).all()}
        assert by == {(two.a_id, "removed"), (two.b_id, "active")}
        assert s.get(Integration, two.b_id).enabled


def test_a_room_of_another_integration_is_no_context_for_a_change(database_url: str) -> None:
    """A job names its integration and its room: a room that belongs to another integration is not handled with the
    first one's settings (the one query that reads both joins them)."""
    from app.platform.db import make_engine
    from app.sync.outlook_to_booking import room_context
    from tests.helpers import seed_subscription

    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        a, room_a, _ = seed_subscription(engine, subscription_id="sub-a")
        b, room_b, _ = seed_subscription(engine, subscription_id="sub-b")
        rt = SimpleNamespace(engine=engine)
        found = room_context(rt, a.id, room_a.id)  # type: ignore[arg-type]
        assert found is not None and found[0].id == a.id and found[2].id == room_a.id
        assert room_context(rt, a.id, room_b.id) is None  # type: ignore[arg-type]
        assert room_context(rt, b.id, room_a.id) is None  # type: ignore[arg-type]
    finally:
        engine.dispose()
