"""SPEC §3 rooms import, against the simulated tenant and booking system over HTTP (real msgraph-sdk, real
ClientSecretCredential), on SQLite + in-process queue and on PostgreSQL + Redis.

`live` is also the fixture of tests/test_subscriptions.py: the real app serves the webhooks (Graph's validation
handshake and lifecycle events reach it), but no worker runs, so the tests see exactly which jobs were enqueued and
run them one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import Session, select

from app.platform.migrate import upgrade
from app.platform.models import Integration, JournalEntry, Room, Subscription
from app.sync import rooms, subscriptions
from app.sync.integrations import IntegrationCreate, new_integration
from app.sync.runtime import Runtime
from app.web.app import create_app
from app.workers import actors
from simulators import sandbox as sandbox_module
from simulators.sandbox import ROOMS, Sandbox
from simulators.server import ServerThread, free_port
from tests.conftest import make_settings
from tests.helpers import queued
from tests.simulators.graph_helpers import shared_ca

JUPITER, SATURNE = "salle-jupiter@contoso.com", "salle-saturne@contoso.com"


@dataclass
class Live:
    rt: Runtime
    sandbox: Sandbox
    integration_id: str
    broker: Any
    base_url: str

    # -- the queue ---------------------------------------------------------------------------------------------------

    def messages(self, actor: str | None = None) -> list[dict[str, Any]]:
        """Every message waiting in the broker (delayed ones included), optionally of one actor."""
        return queued(self.broker, actor)

    def count(self, actor: str) -> int:
        return len(self.messages(actor))

    def clear(self) -> None:
        self.broker.flush_all()

    def run(self, actor: str) -> int:
        """Run the waiting jobs of `actor` here (as a worker would), then drop them; returns how many ran."""
        from app.workers import actors

        fn = getattr(actors, actor).fn
        jobs = self.messages(actor)
        self.clear()
        for job in jobs:
            fn(*job["args"], **job.get("kwargs", {}))
        return len(jobs)

    # -- state -------------------------------------------------------------------------------------------------------

    def room(self, email: str) -> Room:
        with Session(self.rt.engine) as s:
            return s.exec(select(Room).where(Room.email == email)).one()

    def subs(self, email: str, status: str = "active") -> list[Subscription]:
        room = self.room(email)
        with Session(self.rt.engine) as s:
            return list(s.exec(select(Subscription).where(Subscription.room_id == room.id,
                                                          Subscription.status == status)).all())

    def journal(self, status: str | None = None) -> list[JournalEntry]:
        with Session(self.rt.engine) as s:
            q = select(JournalEntry).where(JournalEntry.integration_id == self.integration_id)
            if status:
                q = q.where(JournalEntry.status == status)
            return list(s.exec(q).all())

    def update(self, model: type, key: str, **values: Any) -> None:
        with Session(self.rt.engine) as s:
            row = s.get(model, key)
            for k, v in values.items():
                setattr(row, k, v)
            s.add(row)
            s.commit()

    def import_and_subscribe(self) -> list[str]:
        room_ids = rooms.import_rooms(self.rt, self.integration_id)
        for room_id in room_ids:
            _sub_id, followups = subscriptions.ensure_subscription(self.rt, room_id)
            actors.dispatch(followups)
        return room_ids


def start_live(sandbox: Sandbox, database_url: str, redis_url: str | None) -> Iterator[Live]:
    port = free_port()
    settings = make_settings(database_url, redis_url, public_base_url=f"http://127.0.0.1:{port}",
                             graph_base_url=sandbox.graph.graph_base_url,
                             graph_authority_host=sandbox.graph.authority_host)
    upgrade(database_url)
    rt = Runtime(settings)
    app = create_app(settings, runtime=rt, run_worker=False)
    server = ServerThread(app, port=port).start()
    try:
        integration, _ = new_integration(IntegrationCreate.model_validate(sandbox.integration()), rt.box)
        with Session(rt.engine, expire_on_commit=False) as s:
            s.add(integration)
            s.commit()
        broker = app.state.broker
        broker.flush_all()
        yield Live(rt, sandbox, integration.id, broker, server.base_url)
    finally:
        server.stop()
        rt.close()


def make_sandbox(monkeypatch: pytest.MonkeyPatch, rooms_: list[dict[str, Any]] | None = None) -> Sandbox:
    # aiohttp (azure.identity.aio) reads SSL_CERT_FILE once per process: every sandbox of this process shares one CA.
    monkeypatch.setattr(sandbox_module, "TestCA", SimpleNamespace(create=shared_ca))
    sandbox = Sandbox.start(rooms_)
    # Read by httpx and azure-identity when the gateway's clients are created: trust the sandbox's test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(sandbox.ca.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca.ca_file))
    return sandbox


@pytest.fixture(name="stack_urls", params=["embedded", "postgres+redis"])
def stack_urls_fixture(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str | None]:
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'rb.db'}", None
    return request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")


JUPITER_HOURS = {"daysOfWeek": ["monday", "tuesday", "thursday"], "startTime": "07:30:00.0000000",
                 "endTime": "19:00:00.0000000", "timeZone": {"name": "Romance Standard Time"}}


@pytest.fixture(name="live")
def live_fixture(monkeypatch: pytest.MonkeyPatch, stack_urls: tuple[str, str | None]) -> Iterator[Live]:
    rooms_ = [dict(r, working_hours=JUPITER_HOURS) if r["email"] == JUPITER else r for r in ROOMS]
    sandbox = make_sandbox(monkeypatch, rooms_)
    try:
        yield from start_live(sandbox, *stack_urls)
    finally:
        sandbox.stop()


# --- pure rules -----------------------------------------------------------------------------------------------------


def test_booking_options_convert_windows_zone_names_to_iana() -> None:
    hours, zone = rooms.booking_options({"time_zone": "Romance Standard Time", "working_days": ["Monday", "friday"],
                                         "working_start": time(8), "working_end": time(18),
                                         "working_time_zone": "Pacific Standard Time"})
    # The hours are wall-clock in their own zone, so that zone is the place's.
    assert zone == "America/Los_Angeles"
    assert hours is not None and hours.days == ["monday", "friday"] and (hours.start, hours.end) == (time(8), time(18))


def test_booking_options_without_usable_hours_keep_the_zone() -> None:
    assert rooms.booking_options(None) == (None, None)
    assert rooms.booking_options({"time_zone": "Europe/Paris", "working_days": []}) == (None, "Europe/Paris")
    # A custom zone we cannot name: hours dropped rather than sent with a wrong meaning.
    hours, zone = rooms.booking_options({"time_zone": "W. Europe Standard Time", "working_days": ["monday"],
                                         "working_start": time(8), "working_end": time(17),
                                         "working_time_zone": "Customized Time Zone"})
    assert hours is None and zone == "Europe/Berlin"


def test_safety_valve_threshold() -> None:
    assert rooms.safety_valve_trips(10, 0) and rooms.safety_valve_trips(10, 4)
    assert not rooms.safety_valve_trips(10, 5) and not rooms.safety_valve_trips(3, 0)


# --- against the simulators -----------------------------------------------------------------------------------------


def test_import_passes_working_hours_and_iana_zone_with_the_place(live: Live) -> None:
    ids = rooms.import_rooms(live.rt, live.integration_id)
    assert len(ids) == 2  # the "Maintenance" room is ignored
    places = {p.email: p for p in live.sandbox.booking.places.values()}
    jupiter, saturne = places[JUPITER], places[SATURNE]
    assert jupiter.time_zone == "Europe/Paris"
    assert jupiter.working_hours is not None
    assert jupiter.working_hours.days == ["monday", "tuesday", "thursday"]
    assert (jupiter.working_hours.start, jupiter.working_hours.end) == (time(7, 30), time(19, 0))
    # Graph's default working hours for a room that has none configured.
    assert saturne.time_zone == "Europe/Paris" and saturne.working_hours is not None
    assert saturne.working_hours.days == ["monday", "tuesday", "wednesday", "thursday", "friday"]
    with Session(live.rt.engine) as s:
        assert s.get(Integration, live.integration_id).rooms_synced_at is not None


@pytest.mark.parametrize("change", ["ignore_tag", "gone_from_graph"])
def test_room_that_gains_an_ignore_tag_or_disappears_is_deactivated_and_unsubscribed(live: Live, change: str) -> None:
    live.import_and_subscribe()
    [sub] = live.subs(SATURNE)
    assert sub.id in live.sandbox.graph.subscriptions
    if change == "ignore_tag":
        live.sandbox.graph.set_room_tags(SATURNE, ["MAINTENANCE"])  # tags compare case-insensitively
    else:
        live.sandbox.graph.remove_room(SATURNE)

    ids = rooms.import_rooms(live.rt, live.integration_id)

    assert ids == [live.room(JUPITER).id]
    place = next(p for p in live.sandbox.booking.places.values() if p.email == SATURNE)
    assert place.active is False
    assert live.room(SATURNE).active is False
    assert sub.id not in live.sandbox.graph.subscriptions  # deleted in Graph
    assert [s.id for s in live.subs(SATURNE, "removed")] == [sub.id]
    assert len(live.subs(JUPITER)) == 1  # the other room keeps its subscription
    assert any(e.action == "deactivate" and SATURNE in e.message for e in live.journal("ok"))


@pytest.fixture
def many_rooms(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[Live]:
    rooms_ = [{"email": f"room-{i}@contoso.com", "display_name": f"Room {i}", "time_zone": "UTC"} for i in range(6)]
    sandbox = make_sandbox(monkeypatch, rooms_)
    try:
        yield from start_live(sandbox, f"sqlite:///{tmp_path / 'rb.db'}", None)
    finally:
        sandbox.stop()


def test_case_19_graph_listing_zero_rooms_after_many_deactivates_nothing(many_rooms: Live) -> None:
    live = many_rooms
    assert len(live.import_and_subscribe()) == 6
    subs_before = set(live.sandbox.graph.subscriptions)
    for i in range(6):
        live.sandbox.graph.remove_room(f"room-{i}@contoso.com")

    rooms.import_rooms(live.rt, live.integration_id)

    assert all(p.active for p in live.sandbox.booking.places.values())
    assert live.sandbox.booking.stats.places_deactivated == 0
    assert all(live.room(f"room-{i}@contoso.com").active for i in range(6))
    assert set(live.sandbox.graph.subscriptions) == subs_before  # nothing unsubscribed either
    [error] = live.journal("error")
    assert error.direction == "rooms" and "nothing deactivated" in error.message


def test_case_19_fewer_than_half_listed_also_trips_the_valve(many_rooms: Live) -> None:
    live = many_rooms
    live.import_and_subscribe()
    for i in range(4):
        live.sandbox.graph.remove_room(f"room-{i}@contoso.com")
    rooms.import_rooms(live.rt, live.integration_id)
    assert all(live.room(f"room-{i}@contoso.com").active for i in range(6))
    assert len(live.journal("error")) == 1


def test_one_room_leaving_among_many_is_a_real_removal(many_rooms: Live) -> None:
    live = many_rooms
    live.import_and_subscribe()
    live.sandbox.graph.remove_room("room-0@contoso.com")
    rooms.import_rooms(live.rt, live.integration_id)
    assert not live.room("room-0@contoso.com").active
    assert live.journal("error") == []
    assert len(live.sandbox.graph.subscriptions) == 5


def test_periodic_rerun_changes_nothing(live: Live) -> None:
    live.import_and_subscribe()
    before = set(live.sandbox.graph.subscriptions)
    live.import_and_subscribe()
    assert set(live.sandbox.graph.subscriptions) == before
    assert live.sandbox.booking.stats.places_deactivated == 0


# --- sites by room list and the secret's end date (issue 11.7, 11.8) --------------------------------------------------

LYON = "salle-lyon@contoso.com"


def test_an_integration_limited_to_a_room_list_imports_only_its_rooms(live: Live) -> None:
    graph = live.sandbox.graph
    graph.add_room(LYON, "Salle Lyon", capacity=8, building="Lyon", time_zone="Romance Standard Time")
    graph.add_room_list("paris-rooms@contoso.com", "Paris rooms", [JUPITER, SATURNE])
    graph.add_room_list("lyon-rooms@contoso.com", "Lyon rooms", [LYON])
    assert len(rooms.import_rooms(live.rt, live.integration_id)) == 3  # no limit yet: every untagged room
    # Named by display name (case-insensitive): Paris only; Lyon's room is deactivated like an ignored one.
    live.update(Integration, live.integration_id, room_lists=["PARIS ROOMS"])
    ids = rooms.import_rooms(live.rt, live.integration_id)
    assert sorted(live.room(e).id for e in (JUPITER, SATURNE)) == sorted(ids)
    assert not live.room(LYON).active and not live.sandbox.booking.places[LYON].active
    # By e-mail, the other list: only Lyon's room.
    live.update(Integration, live.integration_id, room_lists=["lyon-rooms@contoso.com"])
    assert rooms.import_rooms(live.rt, live.integration_id) == [live.room(LYON).id]
    assert not live.room(JUPITER).active and live.room(LYON).active


def test_a_room_list_graph_does_not_know_deactivates_nothing(live: Live) -> None:
    live.sandbox.graph.add_room_list("paris-rooms@contoso.com", "Paris rooms", [JUPITER])
    assert len(rooms.import_rooms(live.rt, live.integration_id)) == 2
    live.update(Integration, live.integration_id, room_lists=["paris-rooms@contoso.com", "typo-rooms@contoso.com"])
    assert rooms.import_rooms(live.rt, live.integration_id) == [live.room(JUPITER).id]
    assert live.room(SATURNE).active  # a typo (or a renamed list) must not deactivate a site
    assert any("typo-rooms@contoso.com" in e.message for e in live.journal("error"))


def test_the_secrets_end_date_is_read_when_graph_reports_it(live: Live) -> None:
    from datetime import UTC, datetime, timedelta

    with Session(live.rt.engine) as s:
        integration = s.get(Integration, live.integration_id)
    end = (datetime.now(UTC) + timedelta(days=12)).replace(microsecond=0)
    live.sandbox.graph.set_secret_end(live.sandbox.client_id, end)
    assert rooms.check_secret(live.rt, integration) == end
    # Application.Read.All not granted: Graph answers 403, which only means "not reported".
    live.sandbox.graph.backend.issuer.change(live.sandbox.client_id, denied=frozenset({"Application.Read.All"}))
    assert rooms.check_secret(live.rt, integration) is None


def test_the_rooms_working_hours_are_kept_for_all_day_meetings(live: Live) -> None:
    rooms.import_rooms(live.rt, live.integration_id)
    hours = rooms.hours_of(live.room(JUPITER).attributes)
    assert hours is not None and hours.days == ["monday", "tuesday", "thursday"]
    assert (hours.start, hours.end) == (time(7, 30), time(19, 0))
    # A row imported before the hours were kept beside it is written once more (then left alone again).
    room = live.room(SATURNE)
    live.update(Room, room.id, attributes={k: v for k, v in room.attributes.items() if k != "working_hours"})
    assert rooms.hours_of(live.room(SATURNE).attributes) is None
    rooms.import_rooms(live.rt, live.integration_id)
    assert rooms.hours_of(live.room(SATURNE).attributes) is not None
