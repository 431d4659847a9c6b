"""`app.sync.state` on both databases: a link with a write recorded before it was sent (`Pending`) reads back as it
was stored, the placeholder of an event create is found by its organiser, and `forget` removes it with its copies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core.link import LinkState, Pending, RoomCopy, Synced
from app.platform.db import make_engine
from app.platform.migrate import upgrade
from app.sync import state
from tests.helpers import seed_subscription

AT = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
SYNCED = Synced("alice@contoso.com", "Alice", AT, AT + timedelta(hours=1), ("atlas@contoso.com",))


def test_a_pending_write_is_stored_with_the_link_and_cleared_by_the_write_it_records(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    integration, room, _ = seed_subscription(engine)
    pending = Pending("loan_update", AT, synced=SYNCED, outlook_hash="h2")
    link = LinkState("uid-1", "outlook", loan_id="L1", synced=SYNCED, outlook_hash="h1", booking_version=3,
                     copies=(RoomCopy(room.id, room.email, "ev-1"),))
    stored = state.save(engine, integration.id, link.writing(pending))
    assert stored is not None
    again = state.by_meeting(engine, integration.id, "uid-1")
    assert again is not None and again.pending == pending and again.synced == SYNCED
    assert again.pending_of("loan_update") == pending and again.pending_of("event_update") is None
    done = state.save(engine, integration.id, again.loan_written("L1", 4, AT, "h2", SYNCED))
    assert done is not None and done.pending is None
    reread = state.by_meeting(engine, integration.id, "uid-1")
    assert reread is not None and reread.pending is None and reread.booking_version == 4
    engine.dispose()


def test_an_event_create_placeholder_is_found_by_its_organiser_and_forgotten(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    integration, room, _ = seed_subscription(engine)
    intent = LinkState("roombridge-creating:L7", "booking", loan_id="L7").creating_event(
        Pending("event_create", AT, transaction_id="tx-7", organizer="alice@contoso.com"))
    stored = state.save(engine, integration.id, intent)
    assert stored is not None and stored.status == "creating"
    [found] = state.pending_event_creates(engine, integration.id, "alice@contoso.com")
    assert found.loan_id == "L7" and found.pending is not None and found.pending.transaction_id == "tx-7"
    assert state.pending_event_creates(engine, integration.id, "bob@contoso.com") == []
    assert state.by_loan(engine, integration.id, "L7") == found
    state.forget(engine, integration.id, found)
    assert state.by_loan(engine, integration.id, "L7") is None
    engine.dispose()


def test_a_pending_write_goes_stale_after_its_grace() -> None:
    p = Pending("event_update", AT, synced=SYNCED, outlook_hash="h", version=2)
    assert not p.stale(AT + timedelta(minutes=9), timedelta(minutes=10))
    assert p.stale(AT + timedelta(minutes=11), timedelta(minutes=10))
    assert Pending.from_json(p.as_json()) == p
    assert Pending.from_json({"kind": "unknown"}) is None and Synced.from_json({"pending": p.as_json()}) is None
