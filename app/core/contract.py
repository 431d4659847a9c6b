"""Booking API v1 contract (SPEC §8) as pydantic models, shared by the bridge's client and the simulator.

Times are timezone-aware, normalised to UTC on input, and serialised as ISO 8601 with an explicit `+00:00`
offset, so that any booking system can parse them without knowing the `Z` shorthand.
Unknown fields in input are ignored (pydantic's default) so that either side can add fields without breaking
the other.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field, PlainSerializer

API_PREFIX: Final = "/v1"


def _as_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00; as a ValueError it becomes a validation error
        raise ValueError("date-time out of range in UTC") from None


UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_as_utc),
    PlainSerializer(lambda value: value.isoformat(), return_type=str),
]

LoanStatus = Literal["new", "pending", "approved", "cancelled", "refused", "returned"]
# A loan in one of these statuses holds its places (availability) and can still be changed.
ACTIVE_STATUSES: Final[frozenset[str]] = frozenset({"new", "pending", "approved"})
CLOSED_STATUSES: Final[frozenset[str]] = frozenset({"cancelled", "refused", "returned"})

HookType = Literal["loan.created", "loan.updated", "loan.cancelled", "loan.refused"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

NonEmpty = Annotated[str, Field(min_length=1)]
Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]


class Requester(BaseModel):
    email: Email
    name: str


class LoanItem(BaseModel):
    kind: Literal["place", "asset"]
    id: str
    name: str
    place_email: str | None = None


class LoanItemRef(BaseModel):
    """An item in a write request: v1 lets the bridge book places only, by their booking `id`."""

    kind: Literal["place"] = "place"
    id: NonEmpty


class Origin(BaseModel):
    """Where a loan came from (e.g. `{"system": "outlook", "ref": "<iCalUId>"}`), kept verbatim."""

    system: NonEmpty
    ref: NonEmpty


class Loan(BaseModel):
    id: str
    number: str
    status: LoanStatus
    requester: Requester
    start: UtcDatetime
    end: UtcDatetime
    store_id: str
    items: list[LoanItem]
    url: str
    version: int
    updated_at: UtcDatetime
    origin: Origin | None = None
    # Contract additions (optional: a booking system that never sends them keeps working).
    title: str | None = None  # the loan's own title, for `subject_mode: loan_title`
    returned_at: UtcDatetime | None = None  # when a `returned` loan was brought back (early return)
    cancel_reason: str | None = None  # why a `cancelled` loan was closed: `no_show`, or free text

    @property
    def place_ids(self) -> list[str]:
        return [item.id for item in self.items if item.kind == "place"]

    @property
    def freed_at(self) -> datetime | None:
        """When the room was given back before the end: an early return, or a no-show closed after the start (at
        `updated_at`). None otherwise (a no-show before the start is a plain cancellation)."""
        if self.status == "returned" and self.returned_at is not None:
            at = self.returned_at
        elif self.status == "cancelled" and self.cancel_reason == NO_SHOW and self.updated_at > self.start:
            at = self.updated_at
        else:
            return None
        return at if at < self.end else None


class LoanCreate(BaseModel):
    requester: Requester
    start: UtcDatetime
    end: UtcDatetime
    store_id: NonEmpty
    items: list[LoanItemRef] = Field(min_length=1)
    status: Literal["new", "pending", "approved"] = "new"
    origin: Origin | None = None


class LoanPatch(BaseModel):
    """A partial update: an omitted (or null) field is unchanged. `items` replaces the loan's places;
    assets added by the booking system's users are kept."""

    requester: Requester | None = None
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    items: list[LoanItemRef] | None = Field(default=None, min_length=1)


NO_SHOW: Final = "no_show"


class CancelRequest(BaseModel):
    """`reason: "no_show"` closes a loan whose requester never came (the booking system keeps it as `cancel_reason`)."""

    reason: str | None = None


class ReturnRequest(BaseModel):
    """Body of `POST /v1/loans/{id}/return` (the simulator's and the documented way to close a loan as returned)."""

    returned_at: UtcDatetime | None = None  # default: now


NoteKind = Literal["conflict"]


class LoanNote(BaseModel):
    """Body of `POST /v1/loans/{id}/notes`: the bridge marks a loan (e.g. a room declined its event in Outlook)."""

    kind: NoteKind
    message: Annotated[str, Field(min_length=1, max_length=2000)]


class WorkingHours(BaseModel):
    """Graph `mailboxSettings.workingHours`, flattened; times are wall-clock in the place's `time_zone`."""

    days: list[Weekday]
    start: time
    end: time


def _floor_label(value: object) -> object:
    # Graph gives `floorNumber` (int) or `floorLabel` (str); the contract keeps one label.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class PlaceUpsert(BaseModel):
    """Body of `PUT /v1/places/{email}`; `email` must match the path (case-insensitively)."""

    email: Email
    name: NonEmpty
    address: str | None = None
    capacity: Annotated[int, Field(ge=0)] | None = None
    building: str | None = None
    floor: Annotated[str | None, BeforeValidator(_floor_label)] = None
    tags: list[str] = Field(default_factory=list)
    working_hours: WorkingHours | None = None
    time_zone: str | None = None  # IANA name, e.g. "Europe/Paris"
    active: bool = True


class Place(PlaceUpsert):
    id: str


class AvailabilityResponse(BaseModel):
    available: dict[str, bool]


class LoanPage(BaseModel):
    items: list[Loan]
    next_cursor: str | None = None


class HookPayload(BaseModel):
    type: HookType
    loan: Loan


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def hook_type_for(loan: Loan) -> HookType:
    """The reverse-hook type that announces a change to an existing `loan` (creation is `loan.created`)."""
    if loan.status == "cancelled":
        return "loan.cancelled"
    if loan.status == "refused":
        return "loan.refused"
    return "loan.updated"


def to_utc(value: datetime) -> datetime:
    """`value` in UTC; naive datetimes are refused (their meaning depends on the machine)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return _as_utc(value)


def utc_iso(value: datetime) -> str:
    """ISO 8601 in UTC with an explicit offset, as sent on the wire."""
    return to_utc(value).isoformat()
