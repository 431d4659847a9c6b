"""Tables. Datetimes are aware UTC and named `*_at`; secrets are stored encrypted (`*_enc`) or as digests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, Column, Text, UniqueConstraint, false
from sqlmodel import AutoString, Field, SQLModel

# Stable constraint names, so that migrations can refer to them on every dialect.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The states a subscription row can be in (the column stays a plain string; see Subscription.status).
SubscriptionStatus = Literal["active", "removed"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Integration(SQLModel, table=True):
    """One Microsoft tenant ⇄ one booking store (SPEC §2)."""

    __tablename__ = "integration"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    enabled: bool = False
    tenant_domain: str = Field(max_length=255)
    extra_domains: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tenant_id: str = Field(max_length=64)
    client_id: str = Field(max_length=64)
    client_secret_enc: str = Field(sa_column=Column(Text, nullable=False))
    booking_base_url: str = Field(max_length=500)
    booking_api_key_enc: str = Field(sa_column=Column(Text, nullable=False))
    hook_secret_enc: str = Field(sa_column=Column(Text, nullable=False))
    default_store_id: str = Field(max_length=200)
    default_user_email: str | None = Field(default=None, max_length=320)
    ignore_tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    block_minutes: int = 15
    horizon_days: int = 180
    direction: str = Field(default="both", max_length=32)
    private_events: str = Field(default="sync_hidden", max_length=32)
    exclude_subjects: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    show_pending_as_tentative: bool = True
    # Issue 11 (migration 0007): what Outlook is told, sites, failure alerts.
    refusal_feedback: str = Field(default="decline", max_length=16, sa_column_kwargs={"server_default": "decline"})
    conflict_note: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    subject_mode: str = Field(default="number_name", max_length=16,
                              sa_column_kwargs={"server_default": "number_name"})
    subject_label: str | None = Field(default=None, max_length=255)
    show_as: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    event_sensitivity: str = Field(default="normal", max_length=16, sa_column_kwargs={"server_default": "normal"})
    all_day: str = Field(default="send", max_length=8, sa_column_kwargs={"server_default": "send"})
    room_lists: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    buildings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    alert_url: str | None = Field(default=None, max_length=500)
    alert_secret_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Automatic retries of a failing change before it waits for an admin (SPEC §2); None: the setting RETRY_LIMIT.
    retry_limit: int | None = None
    # Issue 10.2 (migration 0010): the journal keeps each meeting's subject as its organiser wrote it (off: personal
    # data; on costs one Graph read of the organiser's copy per change, unless exclude_subjects already reads it).
    journal_subjects: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    rooms_synced_at: datetime | None = None
    loans_synced_at: datetime | None = None  # booking-side reconciliation: loans changed since then are re-read
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def domains(self) -> set[str]:
        return {d.lower() for d in [self.tenant_domain, *self.extra_domains]}


class Room(SQLModel, table=True):
    """A room mailbox imported from Graph and upserted as a place in the booking system."""

    __tablename__ = "room"

    __table_args__ = (UniqueConstraint("integration_id", "email"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    integration_id: str = Field(foreign_key="integration.id", index=True, ondelete="CASCADE", max_length=36)
    email: str = Field(max_length=320)  # lower-case
    name: str = Field(max_length=300)
    mailbox_id: str = Field(index=True, max_length=128)  # Graph user object id (subscription resource)
    place_id: str | None = Field(default=None, max_length=128)  # the booking system's id of the place
    active: bool = True
    # Graph refused a subscription: the room is reconciled by periodic delta instead.
    polling: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    delta_link: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # calendarView delta state
    delta_window_start: datetime | None = None  # the window the delta token covers (fixed by the token)
    reconciled_at: datetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class Subscription(SQLModel, table=True):
    """A Graph change-notification subscription on one room's events (SPEC §4)."""

    __tablename__ = "subscription"

    id: str = Field(primary_key=True, max_length=128)  # Graph's subscription id
    integration_id: str = Field(foreign_key="integration.id", index=True, ondelete="CASCADE", max_length=36)
    room_id: str = Field(foreign_key="room.id", index=True, ondelete="CASCADE", max_length=36)
    client_state_digest: str = Field(max_length=64)  # sha-256 hex; the clientState itself is not kept
    resource: str = Field(max_length=300)
    # Typed for the code that compares it; `sa_type` keeps the column the VARCHAR(16) it was (no migration).
    status: SubscriptionStatus = Field(default="active", max_length=16, sa_type=AutoString(length=16))
    expires_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    renewed_at: datetime | None = None
    reauthorized_at: datetime | None = None  # Graph: never a reauthorize and a PATCH within 10 minutes


class Link(SQLModel, table=True):
    """One meeting occurrence (iCalUId) ⇄ one loan, with what was last written/read on each side."""

    __tablename__ = "link"

    __table_args__ = (UniqueConstraint("integration_id", "ical_uid"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    integration_id: str = Field(foreign_key="integration.id", index=True, ondelete="CASCADE", max_length=36)
    ical_uid: str = Field(max_length=1024)
    loan_id: str | None = Field(default=None, index=True, max_length=128)
    origin: str = Field(max_length=16)  # outlook | booking: the side the item was born on
    state: str = Field(default="active", max_length=16)  # active | cancelled
    organizer_email: str | None = Field(default=None, max_length=320)
    organizer_event_id: str | None = Field(default=None, max_length=1024)
    synced: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # last synced loan
    outlook_hash: str | None = Field(default=None, max_length=64)
    outlook_change_key: str | None = Field(default=None, max_length=256)
    outlook_modified_at: datetime | None = None
    booking_hash: str | None = Field(default=None, max_length=64)
    booking_version: int | None = None
    booking_updated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class EventCopy(SQLModel, table=True):
    """One room's copy of a linked meeting (its own event id in that room's calendar)."""

    __tablename__ = "event_copy"
    __table_args__ = (UniqueConstraint("room_id", "event_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    link_id: str = Field(foreign_key="link.id", index=True, ondelete="CASCADE", max_length=36)
    room_id: str = Field(foreign_key="room.id", index=True, ondelete="CASCADE", max_length=36)
    event_id: str = Field(max_length=1024)
    change_key: str | None = Field(default=None, max_length=256)


class JournalEntry(SQLModel, table=True):
    """The sync journal: one row per decision that did something, was refused, or failed (SPEC §2, §6)."""

    __tablename__ = "journal_entry"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    integration_id: str = Field(foreign_key="integration.id", index=True, ondelete="CASCADE", max_length=36)
    at: datetime = Field(default_factory=utcnow, index=True)
    direction: str = Field(max_length=32)  # outlook_to_booking | booking_to_outlook | rooms | subscriptions
    action: str = Field(max_length=32)  # create | update | cancel | skip | import | ...
    status: str = Field(max_length=16, index=True)  # ok | skipped | invalid | error | conflict | handled
    ical_uid: str | None = Field(default=None, max_length=1024)
    loan_id: str | None = Field(default=None, max_length=128)
    rule: str | None = Field(default=None, max_length=64)  # the validity rule that failed
    message: str = Field(default="", sa_column=Column(Text, nullable=False))
    request_id: str | None = Field(default=None, max_length=64)
    # Issue 10 (migration 0008): the journal as the admin's work list. What a retry re-runs (the room and the event
    # id a notification would name), how often the same change failed, when last, and when an admin marked it handled.
    room_id: str | None = Field(default=None, max_length=36)
    event_id: str | None = Field(default=None, max_length=1024)
    attempts: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    last_at: datetime | None = None
    handled_at: datetime | None = None
    subject: str | None = Field(default=None, max_length=255)  # migration 0010: when the integration allows it


class SeenDelivery(SQLModel, table=True):
    """Reverse-hook delivery ids already accepted (SPEC §7: a delivery seen before is acknowledged and ignored).

    A delivery id is the sender's, unique only within one integration: the key is (integration, delivery id), so one
    tenant's ids never make another tenant's deliveries look seen (issue 8).
    """

    __tablename__ = "seen_delivery"

    integration_id: str = Field(foreign_key="integration.id", primary_key=True, index=True, ondelete="CASCADE",
                                max_length=36)
    delivery_id: str = Field(primary_key=True, max_length=128)
    seen_at: datetime = Field(default_factory=utcnow, index=True)


class Lease(SQLModel, table=True):
    """A named lease held by one process at a time (e.g. the active scheduler), renewed before it expires."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: datetime


class RoomsImport(SQLModel, table=True):
    """One run of the rooms import (SPEC §3): the listing sends one job per `/places` page; the run ends when every
    page is done. One run at a time per integration (the lease `rooms-import:{integration}`, held by the run id)."""

    __tablename__ = "rooms_import"

    id: str = Field(primary_key=True, max_length=64)  # the run id (the listing job's message id)
    integration_id: str = Field(foreign_key="integration.id", index=True, ondelete="CASCADE", max_length=36)
    pages: int | None = None  # known once the listing has ended
    pages_done: int = 0
    listed: int = 0  # importable rooms listed
    ignored: int = 0  # listed rooms carrying an ignore-tag
    deactivated: int = 0
    changed: int = 0  # rooms created or changed (written)
    unchanged: int = 0  # rooms read and found as they were: no write
    skipped: int = 0  # rooms that could not be imported (e.g. no mailbox, refused by the booking system)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class RoomsImportPage(SQLModel, table=True):
    """A page of a run that is done: a retried page job finds it and does nothing."""

    __tablename__ = "rooms_import_page"

    run_id: str = Field(foreign_key="rooms_import.id", primary_key=True, ondelete="CASCADE", max_length=64)
    page: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
