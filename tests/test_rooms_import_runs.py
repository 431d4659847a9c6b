"""SPEC §3 at scale (issue 9.3): the rooms import as a run of short jobs — /places streamed page by page, one job per
page, user ids and mailboxSettings through `$batch`, unchanged rooms written nowhere, one run per integration, a page
done never redone — against the simulated tenant and booking system over HTTP, on SQLite + in-process queue and on
PostgreSQL + Redis (the `live` fixture of tests/test_rooms_import.py: the real app serves the webhooks, no worker
runs, the tests run the queued jobs themselves).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from app.adapters.booking.client import BookingUnavailable
from app.adapters.graph.gateway import to_graph_room
from app.core.graph import GraphRoom
from app.platform import leases
from app.platform.models import Integration, Lease, Room, RoomsImport, utcnow
from app.sync import rooms
from app.workers import actors
from tests.test_rooms_import import JUPITER, SATURNE, Live, live_fixture, stack_urls_fixture  # noqa: F401


def listing(live: Live, run_id: str) -> tuple[bool, list[tuple[int, list[GraphRoom]]]]:
    """Run the listing of `run_id`, keeping the pages it hands over instead of running them."""
    pages: list[tuple[int, list[GraphRoom]]] = []
    started = rooms.list_for_import(live.rt, live.integration_id, run_id, lambda n, r: pages.append((n, r)))
    return started, pages


def run_pages(live: Live, run_id: str, pages: list[tuple[int, list[GraphRoom]]]) -> None:
    for number, listed in pages:
        rooms.import_page(live.rt, live.integration_id, run_id, number, listed)


def the_run(live: Live, run_id: str) -> RoomsImport:
    with Session(live.rt.engine) as s:
        run = s.get(RoomsImport, run_id)
        assert run is not None
        return run


def integration(live: Live) -> Integration:
    with Session(live.rt.engine) as s:
        row = s.get(Integration, live.integration_id)
        assert row is not None
        return row


def test_the_listing_streams_pages_and_each_page_job_imports_and_subscribes(live: Live) -> None:
    live.sandbox.graph.tunables.places_page_size = 1  # three /places pages: Jupiter, Saturne, the ignored Atelier
    actors.import_rooms.fn(live.integration_id)

    jobs = live.messages("import_rooms_page")
    assert sorted(len(j["args"][3]) for j in jobs) == [1, 1]  # one job per page of importable rooms
    assert live.count("ensure_subscription") == 0
    assert live.sandbox.graph.stats.requests[("GET", "places")] == 3

    assert live.run("import_rooms_page") == 2

    assert {p.email for p in live.sandbox.booking.places.values() if p.active} == {JUPITER, SATURNE}
    assert len(live.subs(JUPITER)) == 1 and len(live.subs(SATURNE)) == 1
    assert len(live.sandbox.graph.subscriptions) == 2
    [summary] = [e for e in live.journal("ok") if e.action == "import"]
    assert summary.message.startswith("2 rooms imported (2 new or changed, 0 unchanged), 0 deactivated, "
                                      "1 ignored by tag")
    run_id = jobs[0]["args"][1]
    run = the_run(live, run_id)
    assert (run.pages, run.pages_done, run.finished_at is not None) == (2, 2, True)
    assert integration(live).rooms_synced_at is not None
    holder, expires_at = leases.current_holder(live.rt.engine, rooms.lease_name(live.integration_id)) or ("", None)
    assert holder == run_id and expires_at <= utcnow()  # released: the next import may start at once


def test_mailbox_ids_and_settings_are_read_through_batch(live: Live) -> None:
    stats = live.sandbox.graph.stats
    rooms.import_rooms(live.rt, live.integration_id)
    # 2 rooms: 2 user lookups + 2 mailboxSettings, every one of them an item of a $batch, no direct call.
    assert stats.batch_items == 4
    assert stats.requests[("GET", "mailboxSettings")] == 2 and stats.requests[("GET", "user")] == 2
    assert stats.requests[("POST", "batch")] >= 1
    jupiter = next(p for p in live.sandbox.booking.places.values() if p.email == JUPITER)
    assert jupiter.working_hours is not None and jupiter.working_hours.days == ["monday", "tuesday", "thursday"]


def test_a_throttled_batch_item_is_read_again_after_its_retry_after(live: Live) -> None:
    graph = live.sandbox.graph
    graph.inject(429, count=1, retry_after=1, mailbox=JUPITER)  # Jupiter's first read: 429 inside the 200 batch

    assert len(rooms.import_rooms(live.rt, live.integration_id)) == 2

    assert graph.stats.faults_injected == 1
    assert graph.stats.batch_items == 5  # the throttled item once more
    jupiter = next(p for p in live.sandbox.booking.places.values() if p.email == JUPITER)
    assert jupiter.time_zone == "Europe/Paris" and jupiter.working_hours is not None


def test_an_import_while_another_runs_does_nothing(live: Live) -> None:
    started, pages = listing(live, "run-a")
    assert started and len(pages) == 1

    assert listing(live, "run-b") == (False, [])
    actors.import_rooms.fn(live.integration_id)  # e.g. the scheduler's, or the admin's sync-rooms meanwhile
    assert live.count("import_rooms_page") == 0

    run_pages(live, "run-a", pages)  # run A ends: the lease is free
    started, _ = listing(live, "run-b")
    assert started


def test_a_page_done_is_never_redone(live: Live) -> None:
    _, pages = listing(live, "run-a")
    run_pages(live, "run-a", pages)
    graph, booking = live.sandbox.graph.stats, live.sandbox.booking.stats
    requests, upserts = sum(graph.requests.values()), booking.places_upserted

    number, listed = pages[0]
    assert rooms.import_page(live.rt, live.integration_id, "run-a", number, listed) == ([], [])

    assert sum(graph.requests.values()) == requests and booking.places_upserted == upserts


def test_a_page_that_failed_half_way_keeps_the_rooms_it_finished(live: Live) -> None:
    _, [(number, listed)] = listing(live, "run-a")
    live.sandbox.booking.inject(503, count=1)  # one of the two places is refused for now

    with pytest.raises(BookingUnavailable):
        rooms.import_page(live.rt, live.integration_id, "run-a", number, listed)
    assert live.sandbox.booking.stats.places_upserted == 1
    with Session(live.rt.engine) as s:
        [finished] = s.exec(select(Room)).all()

    rooms.import_page(live.rt, live.integration_id, "run-a", number, listed)  # the queue's retry

    assert live.sandbox.booking.stats.places_upserted == 2  # the finished room was not written again
    assert live.room(finished.email).updated_at == finished.updated_at
    assert the_run(live, "run-a").finished_at is not None
    assert len(live.sandbox.graph.subscriptions) == 2


def test_unchanged_rooms_cost_no_writes(live: Live) -> None:
    rooms.import_rooms(live.rt, live.integration_id, subscribe=True)
    graph, booking = live.sandbox.graph.stats, live.sandbox.booking.stats
    upserts, creates = booking.places_upserted, graph.requests[("POST", "subscriptions")]
    before = {e: live.room(e).updated_at for e in (JUPITER, SATURNE)}

    rooms.import_rooms(live.rt, live.integration_id, subscribe=True)

    assert booking.places_upserted == upserts and graph.requests[("POST", "subscriptions")] == creates
    assert {e: live.room(e).updated_at for e in (JUPITER, SATURNE)} == before
    last = max((e for e in live.journal("ok") if e.action == "import"), key=lambda e: e.at)
    assert "(0 new or changed, 2 unchanged)" in last.message

    live.sandbox.graph.set_room_tags(SATURNE, ["visio"])  # one room changes in Graph: that one is written
    rooms.import_rooms(live.rt, live.integration_id, subscribe=True)
    assert booking.places_upserted == upserts + 1
    assert live.room(JUPITER).updated_at == before[JUPITER] and live.room(SATURNE).updated_at > before[SATURNE]


def test_a_page_of_a_run_that_was_replaced_does_nothing(live: Live) -> None:
    _, pages = listing(live, "run-a")
    with Session(live.rt.engine) as s:  # run A stopped showing progress: its lease lapsed, run B took over
        s.execute(update(Lease).where(Lease.name == rooms.lease_name(live.integration_id))
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    started, _ = listing(live, "run-b")
    assert started

    number, listed = pages[0]
    assert rooms.import_page(live.rt, live.integration_id, "run-a", number, listed) == ([], [])
    assert live.sandbox.booking.stats.places_upserted == 0


def test_the_raw_reads_give_what_the_sdk_models_give(live: Live) -> None:
    """The hot reads skip kiota's models: they must give exactly the plain values the SDK path gives."""
    graph = live.rt.graph(integration(live))

    async def sdk_rooms() -> list[GraphRoom]:
        page = await graph._client.places.graph_room.get()
        return [to_graph_room(r) for r in (page.value or [])] if page else []

    assert live.rt.run(graph.list_rooms()) == live.rt.run(sdk_rooms())
    jupiter_id = live.sandbox.graph.user_id(JUPITER)
    many = live.rt.run(graph.mailbox_settings_many([jupiter_id, SATURNE]))
    assert many[jupiter_id] == live.rt.run(graph.mailbox_settings(jupiter_id))
    assert many[SATURNE] == live.rt.run(graph.mailbox_settings(SATURNE))
    assert live.rt.run(graph.user_ids([JUPITER, "nobody@contoso.com"]))[JUPITER] == jupiter_id
