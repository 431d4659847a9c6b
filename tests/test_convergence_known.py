"""Known defect, found on 2026-12-03 by the convergence test exploring fresh examples (`CONVERGENCE_EXAMPLES=1000`,
seed 287583375131465394940844276184325175169), replayed here as Hypothesis printed it.

A meeting whose every room left it has its loan cancelled by the bridge (SPEC §6; the journal says "the meeting is
gone from boreal" after edits that put it on rooms busy at that time). The organiser then moves it again, to a slot
where Boreal accepts: the meeting is live on Boreal at 12:15-12:45. The bridge makes no new loan: `core.decide` answers
"the loan of this meeting was cancelled" for any link in state `cancelled`. That rule is right when the booking system
cancelled the loan (the organiser's later edits must not bring it back), wrong when the bridge cancelled it because
the rooms had gone. The link does not record which side cancelled. Strict: when this passes, the defect is fixed and
the test becomes a plain one (with a flow test of the two cases)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.test_convergence import DAY, Convergence


def at(hour: int, minute: int, minutes: int) -> tuple:  # type: ignore[type-arg]
    start = DAY + timedelta(hours=hour, minutes=minute)
    return start, start + timedelta(minutes=minutes)


KNOWN = "a loan the bridge cancelled because every room left is not re-created when a room accepts the meeting again"


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=KNOWN)
def test_a_meeting_back_on_a_room_after_its_loan_was_cancelled_by_the_bridge_gets_a_loan() -> None:
    state = Convergence()
    state.deliver_twice(i=146)
    state.deliver_twice(i=156)
    state.book_in_outlook(organiser='alice', rooms=['atlas'], slot=at(10, 0, 30))
    state.deliver_twice(i=202)
    state.book_in_outlook(organiser='alice', rooms=['atlas', 'boreal', 'cirrus'], slot=at(12, 0, 30))
    state.book_in_outlook(organiser='bob', rooms=['atlas'], slot=at(17, 15, 30))
    state.book_in_outlook(organiser='alice', rooms=['cirrus'], slot=at(16, 30, 60))
    state.edit_in_outlook(i=473, rooms=['boreal'], slot=at(8, 0, 60))
    state.deliver_twice(i=821)
    state.book_in_outlook(organiser='alice', rooms=['boreal', 'cirrus'], slot=at(9, 30, 30))
    state.deliver_twice(i=192)
    state.edit_in_outlook(i=83, rooms=['atlas', 'boreal', 'cirrus'], slot=None)
    state.edit_in_outlook(i=443, rooms=None, slot=None)
    state.deliver_twice(i=673)
    state.edit_in_outlook(i=62, rooms=None, slot=at(14, 45, 90))
    state.edit_in_outlook(i=876, rooms=['atlas', 'boreal', 'cirrus'], slot=at(9, 10, 50))
    state.deliver_twice(i=821)
    state.deliver_twice(i=45)
    state.edit_in_outlook(i=251, rooms=['boreal'], slot=at(12, 15, 30))
    state.deliver_twice(i=0)
    state.teardown()
