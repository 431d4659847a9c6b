"""What the bridge knows of Graph objects: plain, immutable values, independent of the SDK's generated models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Attendee:
    email: str  # lower-case
    name: str
    type: str  # required | optional | resource
    response: str  # none | organizer | tentativelyAccepted | accepted | declined | notResponded


@dataclass(frozen=True)
class OutlookEvent:
    """One copy of a meeting in one mailbox, times in UTC."""

    id: str
    mailbox: str  # the mailbox (object id or e-mail) it was read from
    ical_uid: str
    subject: str
    organizer_email: str
    organizer_name: str
    start: datetime | None
    end: datetime | None
    attendees: tuple[Attendee, ...] = ()
    is_cancelled: bool = False
    is_all_day: bool = False
    response: str = "none"  # this mailbox's own answer (responseStatus)
    change_key: str | None = None
    last_modified: datetime | None = None
    type: str = "singleInstance"  # singleInstance | occurrence | exception | seriesMaster
    series_master_id: str | None = None
    sensitivity: str = "normal"
    transaction_id: str | None = None
    show_as: str | None = None


@dataclass(frozen=True)
class GraphRoom:
    """A room as `/places/microsoft.graph.room` lists it."""

    place_id: str
    email: str  # lower-case
    name: str
    capacity: int | None = None
    building: str | None = None
    floor: str | None = None
    tags: tuple[str, ...] = ()
    address: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphSubscription:
    id: str
    resource: str
    expires_at: datetime


@dataclass(frozen=True)
class EventWrite:
    """The fields the bridge writes on an organiser's event; create and PATCH rewrite the same ones."""

    subject: str
    body_html: str
    start: datetime  # aware
    end: datetime
    rooms: tuple[tuple[str, str], ...]  # (e-mail, display name), invited as `resource` attendees
    show_as: str  # busy | tentative | free | oof | workingElsewhere
    transaction_id: str
    sensitivity: str = "normal"  # normal | private
