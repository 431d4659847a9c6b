"""Exact conversion of Graph `dateTimeTimeZone` values (Windows or IANA zone names) to aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz  # the CLDR windowsZones table, kept up to date by tzlocal

_UTC_NAMES = {"utc", "etc/utc", "z", "gmt", "coordinated universal time", "tzone://microsoft/utc"}


class UnknownTimeZone(ValueError):
    pass


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone for a Windows (`Romance Standard Time`) or IANA (`Europe/Paris`) name."""
    cleaned = name.strip()
    if cleaned.lower() in _UTC_NAMES:
        return ZoneInfo("UTC")
    iana = win_tz.get(cleaned, cleaned)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZone(f"unknown time zone {name!r}") from None


def parse_graph_datetime(value: str, time_zone: str | None) -> datetime:
    """Graph sends `2026-03-29T09:00:00.0000000` (7 fractional digits) plus a separate zone name."""
    text = value.strip().removesuffix("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    local = datetime.fromisoformat(text)
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone(time_zone or "UTC"))
    return local.astimezone(UTC)


def to_graph_datetime(value: datetime) -> dict[str, str]:
    """A `dateTimeTimeZone` in UTC for writes."""
    return {"dateTime": value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}
