"""Graph `dateTimeTimeZone` values and timestamps.

Graph accepts Windows zone names ("Romance Standard Time") and IANA names; we map Windows names with the CLDR table
shipped in tzlocal, so conversions are exact (DST included) rather than fixed offsets.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from simulators.graph.errors import GraphError

# Graph writes 7 fractional digits; Python parses at most 6.
_EXTRA_DIGITS = re.compile(r"(\.\d{6})\d+")
NULL_TIME = "0001-01-01T00:00:00Z"


def resolve_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(win_tz.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'.",
        ) from None


def parse_iso(text: str, default_zone: ZoneInfo | None = None) -> datetime:
    """An ISO 8601 timestamp; a naive one is read in `default_zone` (UTC if none)."""
    try:
        value = datetime.fromisoformat(_EXTRA_DIGITS.sub(r"\1", text.strip()))
    except ValueError:
        raise GraphError(400, "ErrorInvalidRequest", f"Cannot convert the literal '{text}' to a DateTime.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_zone or UTC)
    return value.astimezone(UTC)


def parse_date_time_time_zone(value: object) -> tuple[datetime, str]:
    """`{"dateTime": "...", "timeZone": "..."}` → (aware UTC datetime, zone name as given)."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise GraphError(400, "ErrorInvalidRequest", "A dateTimeTimeZone value needs dateTime and timeZone.")
    zone_name = value.get("timeZone") or "UTC"
    return parse_iso(value["dateTime"], resolve_zone(zone_name)), zone_name


def to_date_time_time_zone(moment: datetime, zone_name: str) -> dict[str, str]:
    local = moment.astimezone(resolve_zone(zone_name))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0", "timeZone": zone_name}


def graph_timestamp(moment: datetime) -> str:
    """UTC with Graph's 7 fractional digits: `2024-05-01T09:00:00.1234560Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
