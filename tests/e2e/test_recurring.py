"""Recurring meetings (SPEC §6, cases 20 and 21): each occurrence in the horizon is its own loan, at its own
wall-clock time in the meeting's zone across DST; one cancelled occurrence cancels only its loan."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import WAIT, wait_for

pytestmark = pytest.mark.slow
PARIS = ZoneInfo("Europe/Paris")
JUPITER = "salle-jupiter@contoso.com"


def next_monday_before_dst() -> date:
    """A Monday two weeks before the next spring DST change in Paris (last Sunday of March)."""
    today = datetime.now(PARIS).date()
    year = today.year + (1 if today >= date(today.year, 3, 1) else 0)
    last_sunday = max(date(year, 3, d) for d in range(25, 32) if date(year, 3, d).weekday() == 6)
    return last_sunday - timedelta(days=13)


def weekly(setup, first: date, weeks: int):
    start = datetime(first.year, first.month, first.day, 9, 0, tzinfo=PARIS)
    return setup.graph.create_meeting(
        "alice@contoso.com", "Comité", start, start + timedelta(hours=1), rooms=[JUPITER],
        time_zone="Romance Standard Time",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                    "range": {"type": "numbered", "startDate": first.isoformat(), "numberOfOccurrences": weeks}})


def loans_by_day(setup) -> dict[date, object]:
    return {loan.start.astimezone(PARIS).date(): loan for loan in setup.booking.loans.values()}


@pytest.mark.both_stacks
def test_case_20_weekly_meeting_across_dst_keeps_its_wall_clock_time(setup) -> None:
    first = next_monday_before_dst()
    if (first - datetime.now(PARIS).date()).days + 28 > 180:
        assert setup.api("PATCH", "", json={"horizon_days": 365}).status_code == 200
    weekly(setup, first, 4)
    wait_for(lambda: len(setup.booking.loans) == 4, WAIT, "four loans, one per occurrence")
    setup.settle()
    loans = loans_by_day(setup)
    assert sorted(loans) == [first + timedelta(weeks=w) for w in range(4)]
    for loan in loans.values():
        assert (loan.start.astimezone(PARIS).hour, loan.end.astimezone(PARIS).hour) == (9, 10)
    utc_hours = sorted({loan.start.hour for loan in loans.values()})
    assert utc_hours == [7, 8]  # 08:00 UTC in winter, 07:00 UTC in summer
    assert len({loan.origin.ref for loan in loans.values()}) == 4  # one iCalUId per occurrence


def test_case_21_one_cancelled_occurrence_cancels_only_its_loan(setup) -> None:
    first = (datetime.now(PARIS) + timedelta(days=7 - datetime.now(PARIS).weekday())).date()  # next Monday
    series = weekly(setup, first, 3)
    wait_for(lambda: len(setup.booking.loans) == 3, WAIT, "three loans")
    setup.settle()
    second = first + timedelta(weeks=1)
    setup.graph.cancel_occurrence("alice@contoso.com", series["id"], second)
    wait_for(lambda: loans_by_day(setup)[second].status == "cancelled", WAIT, "the second occurrence's loan cancelled")
    setup.settle()
    statuses = {day: loan.status for day, loan in loans_by_day(setup).items()}
    assert statuses == {first: "new", second: "cancelled", first + timedelta(weeks=2): "new"}


def test_an_exception_moves_only_its_own_loan(setup) -> None:
    first = (datetime.now(PARIS) + timedelta(days=7 - datetime.now(PARIS).weekday())).date()
    series = weekly(setup, first, 3)
    wait_for(lambda: len(setup.booking.loans) == 3, WAIT, "three loans")
    setup.settle()
    third = first + timedelta(weeks=2)
    moved_start = datetime(third.year, third.month, third.day, 14, 0, tzinfo=PARIS)
    setup.graph.update_occurrence("alice@contoso.com", series["id"], third, start=moved_start,
                                  end=moved_start + timedelta(hours=1), time_zone="Romance Standard Time")
    wait_for(lambda: loans_by_day(setup)[third].start == moved_start, WAIT, "the exception's loan to move")
    setup.settle()
    hours = {day: loan.start.astimezone(PARIS).hour for day, loan in loans_by_day(setup).items()}
    assert hours == {first: 9, first + timedelta(weeks=1): 9, third: 14}
    assert setup.booking.stats.loans_created == 3
