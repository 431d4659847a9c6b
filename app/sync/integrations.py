"""Integration settings (SPEC §2): validation of admin input, and the public (secret-free) view."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

from app.core.contract import LoanStatus
from app.core.policy import (
    SUBJECT_FIXED_DEFAULT,
    AllDay,
    Direction,
    EventSensitivity,
    Policy,
    PrivateEvents,
    RefusalFeedback,
    ShowAs,
    SubjectMode,
)
from app.platform.crypto import SecretBox, new_token
from app.platform.models import Integration, utcnow
from app.platform.settings import require_https_unless_loopback
from app.sync.rooms import parse_tags

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _domain(v: str) -> str:
    v = v.strip().lower()
    if not _DOMAIN.match(v):
        raise ValueError("not a domain name")
    return v


def _tags(v: Any) -> list[str]:
    if not isinstance(v, (str, list)) or (isinstance(v, list) and not all(isinstance(t, str) for t in v)):
        raise ValueError("a list of tags (strings) or a comma-separated string")
    tags = parse_tags(v)
    if len(tags) > 100 or any(len(t) > 200 for t in tags):
        raise ValueError("at most 100 tags of at most 200 characters")
    return tags


Domain = Annotated[str, BeforeValidator(_domain)]
Tags = Annotated[list[str], BeforeValidator(_tags)]


class IntegrationFields(BaseModel):
    """Fields an admin may set; all optional here (PATCH), `IntegrationCreate` makes the essential ones required."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    enabled: bool | None = None
    tenant_domain: Domain | None = None
    extra_domains: list[Domain] | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    booking_base_url: str | None = None
    booking_api_key: SecretStr | None = None
    default_store_id: str | None = Field(None, min_length=1, max_length=200)
    default_user_email: str | None = None
    ignore_tags: Tags | None = None
    block_minutes: int | None = Field(None, ge=1, le=240)
    horizon_days: int | None = Field(None, ge=1, le=730)
    direction: Direction | None = None
    private_events: PrivateEvents | None = None
    exclude_subjects: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    show_pending_as_tentative: bool | None = None
    refusal_feedback: RefusalFeedback | None = None
    conflict_note: bool | None = None
    subject_mode: SubjectMode | None = None
    subject_label: str | None = Field(None, min_length=1, max_length=255)
    show_as: dict[LoanStatus, ShowAs] | None = None
    event_sensitivity: EventSensitivity | None = None
    all_day: AllDay | None = None
    buildings: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    # Sites by Graph room list (issue 11.7): each a room list's e-mail address or display name; [] = no limit.
    room_lists: list[Annotated[str, Field(min_length=1, max_length=320)]] | None = Field(None, max_length=100)
    alert_url: str | None = None
    alert_secret: SecretStr | None = None
    # Automatic retries of a failing change before it waits for an admin (SPEC §2); null: the deployment's setting.
    retry_limit: int | None = Field(None, ge=0, le=100)
    # The meeting's subject, as its organiser wrote it, in the journal (issue 10.2); off by default (personal data).
    journal_subjects: bool | None = None

    @field_validator("tenant_id", "client_id")
    @classmethod
    def _guid(cls, v: str | None) -> str | None:
        if v is not None and not _GUID.match(v):
            raise ValueError("must be a GUID")
        return v.lower() if v else v

    @field_validator("exclude_subjects")
    @classmethod
    def _patterns(cls, v: list[str] | None) -> list[str] | None:
        # Seed 004: one wildcard per filter; `*Test*` (contains) and `Test*Test` (starts and ends) are the two-star
        # and one-inner-star forms. A pattern of stars only would exclude every meeting.
        for pattern in v or []:
            if not pattern.strip("*"):
                raise ValueError(f"pattern {pattern!r} would exclude every subject")
        return v

    @field_validator("room_lists")
    @classmethod
    def _room_lists(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        seen: list[str] = []
        for name in (n.strip() for n in v):
            if name.lower() not in {s.lower() for s in seen}:
                seen.append(name)
        return seen

    @field_validator("alert_url")
    @classmethod
    def _alert_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if len(v) > 500:
            raise ValueError("at most 500 characters")
        return require_https_unless_loopback(v)

    @field_validator("client_secret", "booking_api_key", "alert_secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not (1 <= len(v.get_secret_value()) <= 1024):
            raise ValueError("must be 1 to 1024 characters")
        return v

    @field_validator("booking_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return require_https_unless_loopback(v) if v is not None else None

    @field_validator("default_user_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not _EMAIL.match(v):
            raise ValueError("not an e-mail address")
        return v.lower()

    @field_validator("block_minutes")
    @classmethod
    def _block(cls, v: int | None) -> int | None:
        if v is not None and 1440 % v:
            raise ValueError("must divide a day evenly (e.g. 5, 10, 15, 30, 60)")
        return v


class IntegrationCreate(IntegrationFields):
    name: str = Field(min_length=1, max_length=200)
    tenant_domain: Domain
    tenant_id: str
    client_id: str
    client_secret: SecretStr
    booking_base_url: str
    booking_api_key: SecretStr
    default_store_id: str = Field(min_length=1, max_length=200)


_SECRETS = {"client_secret": "client_secret_enc", "booking_api_key": "booking_api_key_enc",
            "alert_secret": "alert_secret_enc"}


def apply_fields(integration: Integration, fields: IntegrationFields, box: SecretBox) -> set[str]:
    """Copy the fields that were given; returns their names. Secrets are encrypted on the way in."""
    given = fields.model_dump(exclude_unset=True)
    for name, value in given.items():
        if name in _SECRETS:
            secret = getattr(fields, name)
            if secret is not None:
                setattr(integration, _SECRETS[name], box.encrypt(secret.get_secret_value()))
            elif name == "alert_secret":  # null: alerts are no longer signed, so no longer sent
                integration.alert_secret_enc = None
        elif value is not None or name in ("default_user_email", "alert_url", "subject_label", "retry_limit"):
            setattr(integration, name, value)
    integration.updated_at = utcnow()
    return set(given)


def new_integration(data: IntegrationCreate, box: SecretBox) -> tuple[Integration, str]:
    """A new integration and its hook secret (shown once to the admin, stored encrypted)."""
    hook_secret = new_token(32)
    integration = Integration(
        name=data.name, tenant_domain=data.tenant_domain, tenant_id=data.tenant_id, client_id=data.client_id,
        client_secret_enc="", booking_base_url=data.booking_base_url, booking_api_key_enc="",
        hook_secret_enc=box.encrypt(hook_secret), default_store_id=data.default_store_id,
    )
    apply_fields(integration, data, box)
    return integration, hook_secret


PUBLIC_FIELDS = ("id", "name", "enabled", "tenant_domain", "extra_domains", "tenant_id", "client_id",
                 "booking_base_url", "default_store_id", "default_user_email", "ignore_tags", "block_minutes",
                 "horizon_days", "direction", "private_events", "exclude_subjects", "show_pending_as_tentative",
                 "refusal_feedback", "conflict_note", "subject_mode", "subject_label", "show_as", "event_sensitivity",
                 "all_day", "buildings", "room_lists", "alert_url", "retry_limit", "journal_subjects", "created_at",
                 "updated_at")


def public_view(integration: Integration) -> dict[str, Any]:
    """Everything but secrets: those are write-only (SPEC §2)."""
    out: dict[str, Any] = {}
    for name in PUBLIC_FIELDS:
        value = getattr(integration, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    out["client_secret_set"] = bool(integration.client_secret_enc)
    out["booking_api_key_set"] = bool(integration.booking_api_key_enc)
    out["alert_secret_set"] = bool(integration.alert_secret_enc)
    return out


def policy_of(integration: Integration) -> Policy:
    """The integration's sync settings as the plain value the pure rules take."""
    return Policy(
        integration_id=integration.id,
        domains=frozenset(integration.domains()),
        default_user_email=(integration.default_user_email or "").lower() or None,
        block_minutes=integration.block_minutes,
        horizon_days=integration.horizon_days,
        direction=cast(Direction, integration.direction),
        private_events=cast(PrivateEvents, integration.private_events),
        exclude_subjects=tuple(integration.exclude_subjects),
        show_pending_as_tentative=integration.show_pending_as_tentative,
        refusal_feedback=cast(RefusalFeedback, integration.refusal_feedback),
        conflict_note=integration.conflict_note,
        subject_mode=cast(SubjectMode, integration.subject_mode),
        subject_label=integration.subject_label or SUBJECT_FIXED_DEFAULT,
        show_as=tuple(sorted((k, cast(ShowAs, v)) for k, v in (integration.show_as or {}).items())),
        sensitivity=cast(EventSensitivity, integration.event_sensitivity),
        all_day=cast(AllDay, integration.all_day),
        buildings=tuple(integration.buildings or ()),
    )
