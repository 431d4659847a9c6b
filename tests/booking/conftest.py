"""Fixtures: one simulated booking system per session (reset before each test), a client, a hook receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.adapters.booking.client import BookingClient
from app.core.contract import Place, PlaceUpsert
from simulators.booking import BookingSimulator
from tests.booking.booking_helpers import API_KEY, HOOK_SECRET, HookReceiver


@pytest.fixture(scope="session")
def booking_sim() -> Iterator[BookingSimulator]:
    sim = BookingSimulator(api_key=API_KEY, store_id="store-1").start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(booking_sim: BookingSimulator) -> BookingSimulator:
    booking_sim.reset()
    return booking_sim


@pytest.fixture
def client(sim: BookingSimulator) -> Iterator[BookingClient]:
    with BookingClient(sim.base_url, API_KEY, timeout=5.0) as c:
        yield c


@pytest.fixture
def receiver(sim: BookingSimulator) -> Iterator[HookReceiver]:
    rec = HookReceiver().start()
    sim.set_hook_target(rec.url, HOOK_SECRET)
    yield rec
    sim.set_hook_target(None, None)
    rec.stop()


@pytest.fixture
def room_a(client: BookingClient) -> Place:
    return client.upsert_place(PlaceUpsert(email="room-a@contoso.com", name="Room A", capacity=8))


@pytest.fixture
def room_b(client: BookingClient) -> Place:
    return client.upsert_place(PlaceUpsert(email="room-b@contoso.com", name="Room B", capacity=4))
