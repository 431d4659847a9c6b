"""The middle test tier: the real flows, in-process, against the Graph and booking twins (tests/twins)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.twins import World


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    with World(tmp_path) as w:
        yield w


def at(hour: int, minute: int = 0, days: int = 2) -> datetime:
    """`days` ahead at hour:minute UTC."""
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def rooms_of(loan) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(item.place_email.split("@")[0] for item in loan.items if item.kind == "place")


def active_loans(world: World) -> list:  # type: ignore[type-arg]
    return [loan for loan in world.booking.store.loans.values() if loan.status in ("new", "pending", "approved")]


def live_copy(world: World, room: str, ical_uid: str):  # type: ignore[no-untyped-def]
    copy = world.room_copy(room, ical_uid)
    return copy if copy is not None and not copy.is_cancelled and copy.response != "declined" else None


def assert_quiet(world: World) -> None:
    """A full reconciliation (and what it causes) writes nothing on either side."""
    before = world.writes
    world.reconcile()
    world.settle()
    assert world.writes == before, "a reconciliation of a synced world wrote"
