"""Graph change-notification and lifecycle payloads (msgraph-sdk has no model for them: msgraph-sdk-python#1322)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# `Users/{id}/Events/{id}`, `users('{id}')/events('{id}')`, with or without a leading slash, any casing.
_RESOURCE = re.compile(
    r"""^/?users(?:/|\(')(?P<user>[^/')]+)'?\)?/events(?:/|\(')(?P<event>[^/')]+)'?\)?""", re.IGNORECASE
)


class ResourceData(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str | None = None
    # The event's change key as the notification saw it: duplicates of one change carry the same one (hints.py).
    # Any JSON value is kept as is (never a malformed item for it); `change_tag` says whether it is usable.
    etag: object = Field(default=None, alias="@odata.etag")


class ChangeNotification(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    subscription_id: str = Field(alias="subscriptionId", min_length=1, max_length=128)
    client_state: str | None = Field(default=None, alias="clientState", max_length=256)
    change_type: str | None = Field(default=None, alias="changeType", max_length=64)
    resource: str | None = Field(default=None, max_length=2048)
    resource_data: ResourceData | None = Field(default=None, alias="resourceData")
    lifecycle_event: str | None = Field(default=None, alias="lifecycleEvent", max_length=64)

    def event_id(self) -> str | None:
        """Prefer `resourceData.id`; fall back on the resource path."""
        if self.resource_data and self.resource_data.id:
            return self.resource_data.id
        match = _RESOURCE.match(self.resource or "")
        return match.group("event") if match else None

    def change_tag(self) -> str:
        """The item's `@odata.etag` if it is a sane string (printable ASCII, ≤ 256), else "" (no tag).

        A deletion is a change of its own even when it carries the change key of the last edit (Exchange's `deleted`
        can): its tag is prefixed, so it is never taken for a late duplicate of an edit a job already read, while
        duplicates of the deletion itself still coalesce. `created` and `updated` of one edit share the tag."""
        etag = self.resource_data.etag if self.resource_data else None
        if isinstance(etag, str) and 0 < len(etag) <= 256 and etag.isascii() and etag.isprintable():
            return f"deleted:{etag}" if (self.change_type or "").lower() == "deleted" else etag
        return ""


class NotificationBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: list[dict[str, Any]] = Field(max_length=1000)


class _WellFormedBatch(BaseModel):
    """A batch whose every item is well formed (the usual case): validated in one pass, straight from the JSON."""

    model_config = ConfigDict(extra="ignore")
    value: list[ChangeNotification] = Field(max_length=1000)


class MalformedPayload(ValueError):
    pass


def parse_batch(body: bytes) -> tuple[list[ChangeNotification], int]:
    """The well-formed items of a POST, and how many items were malformed (those are rejected, not fatal)."""
    try:
        return _WellFormedBatch.model_validate_json(body).value, 0
    except ValidationError:
        pass  # a malformed item, or body: parsed again item by item, to keep the good items and count the others
    try:
        batch = NotificationBatch.model_validate_json(body)
    except ValidationError as e:
        raise MalformedPayload(_summary(e)) from None
    items: list[ChangeNotification] = []
    malformed = 0
    for raw in batch.value:
        try:
            items.append(ChangeNotification.model_validate(raw))
        except ValidationError:
            malformed += 1
    return items, malformed


def _summary(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
