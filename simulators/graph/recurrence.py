"""Graph `patternedRecurrence`: parsing, Graph JSON, and the expansion of a series into occurrence dates.

Occurrences keep their wall-clock time in the recurrence time zone (`range.recurrenceTimeZone`, by default the zone
the series start was written in): a weekly 09:00 Europe/Paris meeting is 08:00 UTC in winter, 07:00 UTC in summer.

Supported patterns: daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly, relativeYearly; ranges:
endDate, numbered, noEnd. Monthly days past the end of a month (31 in April) fall on the month's last day.
"""

from __future__ import annotations

import base64
import calendar as calendars
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulators.graph.errors import GraphError
from simulators.graph.timezones import resolve_zone

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # index = date.weekday()
INDEXES = ("first", "second", "third", "fourth", "last")
PATTERNS = ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly")
RANGES = ("endDate", "noEnd", "numbered")
NO_DATE = "0001-01-01"
MAX_EXPANSION = 20_000  # occurrences walked for one expansion at most (noEnd series and huge windows)
_ID_PREFIX = "AAMkAD"
_OCCURRENCE_TAG = 0x01


def _bad(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", message)


@dataclass(frozen=True)
class Recurrence:
    pattern_type: str
    interval: int
    days_of_week: tuple[int, ...]  # date.weekday() numbers, sorted
    day_of_month: int
    month: int
    index: str
    first_day_of_week: int
    range_type: str
    start_date: date
    end_date: date | None
    count: int
    zone: str  # recurrenceTimeZone as given (Windows or IANA name)

    @classmethod
    def parse(cls, value: object, series_start: datetime, start_zone: str) -> Recurrence:
        """A Graph `patternedRecurrence`; `range.startDate` defaults to the start's local date."""
        if not isinstance(value, dict):
            raise _bad("recurrence must be an object with pattern and range.")
        pattern, rng = value.get("pattern"), value.get("range")
        if not isinstance(pattern, dict) or not isinstance(rng, dict):
            raise _bad("recurrence needs both pattern and range.")
        pattern_type = pattern.get("type")
        if pattern_type not in PATTERNS:
            raise _bad(f"Invalid recurrence pattern type '{pattern_type}'.")
        range_type = rng.get("type")
        if range_type not in RANGES:
            raise _bad(f"Invalid recurrence range type '{range_type}'.")
        zone = str(rng.get("recurrenceTimeZone") or start_zone)
        local_start = series_start.astimezone(resolve_zone(zone))
        interval = pattern.get("interval", 1)
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise _bad("recurrence pattern interval must be a positive integer.")
        days = []
        for day in pattern.get("daysOfWeek") or []:
            if str(day).lower() not in DAYS:
                raise _bad(f"Invalid day of week '{day}'.")
            days.append(DAYS.index(str(day).lower()))
        if pattern_type in ("weekly", "relativeMonthly", "relativeYearly") and not days:
            raise _bad(f"A {pattern_type} recurrence needs daysOfWeek.")
        day_of_month = int(pattern.get("dayOfMonth") or 0)
        month = int(pattern.get("month") or 0)
        if pattern_type in ("absoluteMonthly", "absoluteYearly") and not 1 <= day_of_month <= 31:
            raise _bad(f"A {pattern_type} recurrence needs dayOfMonth (1-31).")
        if pattern_type in ("absoluteYearly", "relativeYearly") and not 1 <= month <= 12:
            raise _bad(f"A {pattern_type} recurrence needs month (1-12).")
        index = str(pattern.get("index") or "first")
        if index not in INDEXES:
            raise _bad(f"Invalid week index '{index}'.")
        first_day = str(pattern.get("firstDayOfWeek") or "sunday").lower()
        if first_day not in DAYS:
            raise _bad(f"Invalid firstDayOfWeek '{first_day}'.")
        start_date = _date(rng.get("startDate")) or local_start.date()
        end_date = _date(rng.get("endDate")) if range_type == "endDate" else None
        if range_type == "endDate" and (end_date is None or end_date < start_date):
            raise _bad("An endDate recurrence range needs an endDate on or after its startDate.")
        count = rng.get("numberOfOccurrences") or 0
        if range_type == "numbered" and (not isinstance(count, int) or count < 1):
            raise _bad("A numbered recurrence range needs numberOfOccurrences > 0.")
        return cls(
            pattern_type=pattern_type,
            interval=interval,
            days_of_week=tuple(sorted(set(days))),
            day_of_month=day_of_month,
            month=month,
            index=index,
            first_day_of_week=DAYS.index(first_day),
            range_type=range_type,
            start_date=start_date,
            end_date=end_date,
            count=int(count) if range_type == "numbered" else 0,
            zone=zone,
        )

    def json(self) -> dict[str, Any]:
        return {
            "pattern": {
                "type": self.pattern_type,
                "interval": self.interval,
                "month": self.month,
                "dayOfMonth": self.day_of_month,
                "daysOfWeek": [DAYS[d] for d in self.days_of_week],
                "firstDayOfWeek": DAYS[self.first_day_of_week],
                "index": self.index,
            },
            "range": {
                "type": self.range_type,
                "startDate": self.start_date.isoformat(),
                "endDate": self.end_date.isoformat() if self.end_date else NO_DATE,
                "recurrenceTimeZone": self.zone,
                "numberOfOccurrences": self.count,
            },
        }

    # -- expansion -----------------------------------------------------------------------------------------------

    def dates(self) -> Iterator[date]:
        """Every occurrence date, in order, within the range (endless for noEnd: callers stop)."""
        produced = 0
        for day in self._pattern_dates():
            if day < self.start_date:
                continue
            if self.end_date is not None and day > self.end_date:
                return
            yield day
            produced += 1
            if (self.count and produced >= self.count) or produced >= MAX_EXPANSION:
                return

    def slots(self, series_start: datetime, series_end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """(start, end) in UTC of each occurrence: the series' local start time and wall-clock duration on each date.

        The start is the occurrence's `originalStart`. A local time that doesn't exist (spring-forward gap) is
        shifted forward by the gap, as Exchange does.
        """
        zone = resolve_zone(self.zone)
        local_start = series_start.astimezone(zone).replace(tzinfo=None)
        local_end = series_end.astimezone(zone).replace(tzinfo=None)
        duration = local_end - local_start
        for day in self.dates():
            start = datetime.combine(day, local_start.time())
            yield _to_utc(start, zone), _to_utc(start + duration, zone)

    def _pattern_dates(self) -> Iterator[date]:
        first = self.start_date
        kind, step = self.pattern_type, self.interval
        if kind == "daily":
            day = first
            while True:
                yield day
                day += timedelta(days=step)
        elif kind == "weekly":
            week = first - timedelta(days=(first.weekday() - self.first_day_of_week) % 7)
            order = sorted(self.days_of_week, key=lambda d: (d - self.first_day_of_week) % 7)
            while True:
                for weekday in order:
                    yield week + timedelta(days=(weekday - self.first_day_of_week) % 7)
                week += timedelta(weeks=step)
        elif kind in ("absoluteMonthly", "relativeMonthly"):
            year, month = first.year, first.month
            while year <= 9999:
                yield self._day_in_month(year, month)
                month += step
                year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        else:  # yearly
            year = first.year
            while year <= 9999:
                yield self._day_in_month(year, self.month)
                year += step

    def _day_in_month(self, year: int, month: int) -> date:
        last = calendars.monthrange(year, month)[1]
        if self.pattern_type in ("absoluteMonthly", "absoluteYearly"):
            return date(year, month, min(self.day_of_month, last))
        matching = [d for d in range(1, last + 1) if date(year, month, d).weekday() in self.days_of_week]
        return date(year, month, matching[-1 if self.index == "last" else INDEXES.index(self.index)])


def _date(value: object) -> date | None:
    if value in (None, "", NO_DATE):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _bad(f"Cannot convert the literal '{value}' to a Date.") from None


def _to_utc(local: datetime, zone: Any) -> datetime:
    aware = local.replace(tzinfo=zone)
    back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != local:  # in a spring-forward gap: move forward by the gap
        aware = (local + (local - back)).replace(tzinfo=zone)
    return aware.astimezone(UTC)


# -- occurrence identity -------------------------------------------------------------------------------------------


def occurrence_id(master_id: str, original_day: date) -> str:
    """Deterministic per (series master, original local date) — patterns give at most one occurrence a day — so the
    id survives a change of the series' time of day; decodable, so GET /events/{id} works without a registry."""
    blob = bytes([_OCCURRENCE_TAG]) + struct.pack(">i", original_day.toordinal()) + master_id.encode()
    return _ID_PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")


def parse_occurrence_id(event_id: str) -> tuple[str, date] | None:
    """(master id, original local date) of an occurrence id, or None for any other id."""
    if not event_id.startswith(_ID_PREFIX):
        return None
    body = event_id.removeprefix(_ID_PREFIX)
    try:
        blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        return None
    if len(blob) < 6 or blob[0] != _OCCURRENCE_TAG:
        return None
    (ordinal,) = struct.unpack(">i", blob[1:5])
    try:
        original_day = date.fromordinal(ordinal)
        master_id = blob[5:].decode("ascii")
    except (OverflowError, ValueError):
        return None
    return master_id, original_day


def occurrence_ical_uid(series_uid: str, local_date: date) -> str:
    """Outlook's GlobalObjectId of one instance: the series' with bytes 16-19 set to the instance date (YYMD)."""
    stamp = f"{local_date.year:04X}{local_date.month:02X}{local_date.day:02X}"
    if len(series_uid) >= 40 and series_uid[32:40] == "00000000":
        return series_uid[:32] + stamp + series_uid[40:]
    return f"{series_uid}-{local_date.isoformat()}"  # not a GlobalObjectId (never produced by the simulator)
