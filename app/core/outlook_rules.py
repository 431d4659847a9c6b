"""Pure rules of SPEC §6: from one Outlook copy of a meeting to the loan it should be (or why there is none).

No I/O here: availability (rule 4) is asked by the caller and applied with `apply_availability`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.core.actions import Refusal
from app.core.contract import WorkingHours
from app.core.desired import DesiredLoan, Requester, round_slot
from app.core.graph import OutlookEvent
from app.core.link import LinkState
from app.core.policy import Policy

__all__ = ["DesiredLoan", "Gone", "Outcome", "Refusal", "Requester", "apply_availability", "evaluate",
           "decline_comment", "full_days", "holds_live_copy", "room_left", "round_slot"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # date.weekday() order
DECLINED_RULES = frozenset({"availability", "organizer", "dates", "refused"})  # decisions a room declines for


@dataclass(frozen=True)
class Gone:
    """The meeting occurrence no longer exists, or is cancelled: its loan (if any) is cancelled."""

    reason: str


Outcome = DesiredLoan | Refusal | Gone


def holds_live_copy(event: OutlookEvent) -> bool:
    """Whether the room whose calendar `event` was read from still holds the meeting (GRAPH-NOTES: a room belongs to
    a loan when its own calendar holds a live copy; the statuses of other rooms inside a copy can be stale)."""
    return not event.is_cancelled and event.response != "declined"


def evaluate(event: OutlookEvent, policy: Policy, live_rooms: Collection[str], now: datetime,
             zone: str | None = None, hours: WorkingHours | None = None) -> Outcome:
    """Apply eligibility and validity rules 1–3 to one copy of a meeting, read from a room's calendar.

    `event.mailbox` is that room's e-mail; `live_rooms` are the imported rooms whose own calendars hold a live copy
    of this meeting, this room included if it does (rule 3: rooms that declined or left are not part of the loan).
    `zone`, `hours`: the room's IANA time zone and working hours, for all-day meetings (`Policy.all_day`).
    """
    if event.type == "seriesMaster":
        return Refusal("skipped", "series_master", "a series master is never a loan; its occurrences are")
    if event.mailbox.lower() not in {a.email for a in event.attendees}:
        # An entry written straight into the room's calendar, not a meeting the room was invited to.
        return Refusal("skipped", "not_eligible", "the room is not an attendee of this event")
    rooms = tuple(sorted(live_rooms))
    if not rooms:
        if event.is_cancelled:
            return Gone("cancelled in Outlook")
        return Refusal("invalid", "rooms", "every imported room declined or left the meeting")
    pattern = policy.excluded_subject(event.subject)
    if pattern is not None:
        return Refusal("skipped", "exclude_subjects", f"subject matches exclusion pattern {pattern!r}")
    if event.sensitivity in ("private", "confidential") and policy.private_events == "skip":
        return Refusal("skipped", "private_events", "private event and private_events=skip")

    # Rule 1: organiser.
    if event.organizer_email and policy.in_tenant(event.organizer_email):
        requester = Requester(event.organizer_email, event.organizer_name or event.organizer_email)
    elif policy.default_user_email:
        requester = Requester(policy.default_user_email, policy.default_user_email)
    else:
        return Refusal(
            "invalid", "organizer", f"organiser {event.organizer_email or '(none)'} is outside the tenant "
            "and no default user is set"
        )

    # Rule 2: dates.
    if event.start is None or event.end is None:
        return Refusal("invalid", "dates", "start or end missing")
    if event.start >= event.end:
        return Refusal("invalid", "dates", "start is not before end")
    slot_start, slot_end = event.start, event.end
    if event.is_all_day:
        if policy.all_day == "skip":
            return Refusal("skipped", "all_day", "all-day meeting and all_day=skip")
        slot_start, slot_end = full_days(event.start, event.end, zone, hours)
    if slot_end <= now:
        return Refusal("skipped", "past", "the meeting is over")
    if slot_start > now + timedelta(days=policy.horizon_days):
        return Refusal("invalid", "dates", f"starts beyond the {policy.horizon_days}-day horizon")

    start, end = round_slot(slot_start, slot_end, policy.block_minutes)
    return DesiredLoan(event.ical_uid, requester, start, end, rooms)


def apply_availability(
    desired: DesiredLoan, available: dict[str, bool], updating: bool
) -> DesiredLoan | Refusal | Gone:
    """Rule 4. At create every room must be free; at update the rooms no longer free are dropped (none left: cancel)."""
    busy = [r for r in desired.rooms if not available.get(r, False)]
    if not busy:
        return desired
    if not updating:
        return Refusal("invalid", "availability", "not available in the booking system: " + ", ".join(busy))
    remaining = tuple(r for r in desired.rooms if r not in busy)
    if not remaining:
        return Gone("no room remains available: " + ", ".join(busy))
    return replace(desired, rooms=remaining)


def room_left(link: LinkState, room_id: str, room_email: str, active_rooms: Collection[str],
              block_minutes: int) -> Outcome | None:
    """A room's copy is no longer live (declined, cancelled, removed): the loan loses that room, nothing else.

    A copy that is not live may only remove its own room. It never supplies the meeting's slot, requester or other
    rooms: Exchange leaves a cancelled copy with the slot it had when the room was taken off, so believing it would
    move the loan back (issue 7's flip-flop). The rest comes from what was last synced. None: nothing to change
    (the room was not part of the loan).
    """
    if link.copy_of(room_id) is None:
        return None
    others = tuple(sorted(link.rooms_other_than(room_id) & set(active_rooms)))
    if not others or link.synced is None:
        return Gone(f"the meeting is gone from {room_email}")
    s = link.synced
    start, end = round_slot(s.start, s.end, block_minutes)
    return DesiredLoan(link.ical_uid, Requester(s.requester_email, s.requester_name), start, end, others)


def full_days(start: datetime, end: datetime, zone: str | None,
              hours: WorkingHours | None = None) -> tuple[datetime, datetime]:
    """An all-day meeting as whole days in the room's time zone (UTC when unknown): Graph gives midnight to midnight
    in the zone the organiser wrote it in, so the day is the one its middle falls on in the room's zone.

    With working hours (the room's, wall-clock in its zone, issue 11.5) the loan starts when the first day's working
    hours start and ends when the last day's end, each only if that day is a working day (a loan is one slot: the
    nights between the days of a multi-day meeting stay in it). Hours whose end is not after their start are
    ignored."""
    try:
        tz = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    days = max(1, round((end - start) / timedelta(days=1)))
    first = (start + timedelta(hours=12)).astimezone(tz).date()
    last = first + timedelta(days=days - 1)
    day_start = datetime.combine(first, time(0), tzinfo=tz)
    day_end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    if hours is not None and hours.start < hours.end:
        working = set(hours.days)
        if WEEKDAYS[first.weekday()] in working:
            day_start = datetime.combine(first, hours.start.replace(tzinfo=None), tzinfo=tz)
        if WEEKDAYS[last.weekday()] in working:
            day_end = datetime.combine(last, hours.end.replace(tzinfo=None), tzinfo=tz)
    return day_start.astimezone(UTC), day_end.astimezone(UTC)


def declines(refusal: Refusal) -> bool:
    """Whether a refusal is a decision a room declines the meeting for (SPEC §6 "Refusals reach the organiser"):
    busy in the booking system, a failed validity rule, a refused loan. Skips (exclusions, private, past, not a
    meeting of the room) are not refusals, and an outage is never a refusal (it raises before any decision)."""
    return refusal.status == "invalid" and refusal.rule in DECLINED_RULES


def decline_comment(refusal: Refusal, room_name: str) -> str:
    """What the organiser reads in the room's answer: which rule, and what to do."""
    what = {
        "availability": f"{room_name} is already booked at this time in the booking system. Please choose another "
                        "time or another room.",
        "organizer": f"{room_name} can only be booked by members of the organisation, and no default user is set "
                     "for outside organisers. Please ask a colleague in the organisation to book it.",
        "dates": f"{room_name} cannot be booked for these dates ({refusal.message}). Please change the dates.",
        "refused": f"The booking of {room_name} was refused in the booking system. Please contact the room's "
                   "administrators or choose another room.",
    }.get(refusal.rule, f"{room_name} could not be booked: {refusal.message}.")
    return f"Declined by RoomBridge: {what}"
