"""Graph subscriptions to mailbox events: create (after the validation handshake), renew, delete, expiry, and the
basic change notifications and lifecycle events they receive.

Expiry follows the simulator clock: an expired subscription is gone (GET/PATCH/DELETE answer 404) and gets nothing.
"""

from __future__ import annotations

import re
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from simulators.graph.auth import AppRegistration
from simulators.graph.delivery import Delivery
from simulators.graph.errors import GraphError
from simulators.graph.state import Change, Tenant
from simulators.graph.timezones import graph_timestamp, parse_iso

MAX_LIFETIME = timedelta(minutes=10_080)  # Outlook events, basic notifications
MIN_LIFETIME = timedelta(minutes=45)  # shorter requests are raised to this
MAX_CLIENT_STATE = 128
HANDSHAKE_TIMEOUT_S = 10.0
CHANGE_TYPES = {"created", "updated", "deleted"}
LIFECYCLE_EVENTS = {"subscriptionRemoved", "missed", "reauthorizationRequired"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# "/users/{id}/events", "users/{id}/events", "users('{id}')/events", any casing.
_EVENTS_RESOURCE = re.compile(r"^/?users(?:/([^/()']+)|\('([^']+)'\))/events$", re.IGNORECASE)


@dataclass
class Subscription:
    id: str
    resource: str
    mailbox_id: str
    change_type: str
    notification_url: str
    lifecycle_url: str | None
    expiration: datetime
    client_state: str | None
    application_id: str
    creator_id: str

    @property
    def change_types(self) -> frozenset[str]:
        return frozenset(self.change_type.split(","))

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_timestamp(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationQueryOptions": None,
            "notificationUrlAppId": None,
        }


class Subscriptions:
    def __init__(self, tenant: Tenant, delivery: Delivery) -> None:
        self.tenant = tenant
        self.delivery = delivery
        self.verify: ssl.SSLContext | bool = True  # TLS trust for the validation handshake (the test CA)
        self._items: dict[str, Subscription] = {}
        # (app, mailbox, change types) → the subscription holding that key: the 409 check is one lookup, not a scan
        # of every subscription (10,000 of them in the rooms benchmark).
        self._by_key: dict[tuple[str, str, frozenset[str]], str] = {}
        tenant.listeners.append(self._on_change)

    # -- queries -------------------------------------------------------------------------------------------------

    def active(self) -> dict[str, Subscription]:
        with self.tenant.lock:
            now = self.tenant.clock.now()
            return {sid: sub for sid, sub in self._items.items() if sub.expiration > now}

    def get(self, subscription_id: str, app: AppRegistration | None = None) -> Subscription:
        with self.tenant.lock:
            sub = self._items.get(subscription_id)
            if sub is not None and sub.expiration <= self.tenant.clock.now():
                sub = None
        if sub is None or (app is not None and sub.application_id != app.client_id):
            raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription '{subscription_id}'.")
        return sub

    # -- create / renew / delete ---------------------------------------------------------------------------------

    async def create(self, payload: dict[str, Any], app: AppRegistration) -> Subscription:
        sub = self._parse(payload, app)
        self._refuse_duplicate(sub)
        async with httpx.AsyncClient(verify=self.verify, timeout=HANDSHAKE_TIMEOUT_S) as client:
            for url in filter(None, (sub.notification_url, sub.lifecycle_url)):
                if not await _handshake(client, url):
                    raise GraphError(
                        400,
                        "ValidationError",
                        "Subscription validation request failed. Notification endpoint must respond with 200 OK "
                        "to validation request.",
                    )
        with self.tenant.lock:
            self._refuse_duplicate(sub)  # again: another create may have won while we were validating
            self._items[sub.id] = sub
            self._by_key[_key(sub)] = sub.id
        return sub

    def renew(self, subscription_id: str, payload: dict[str, Any], app: AppRegistration) -> Subscription:
        with self.tenant.lock:
            sub = self.get(subscription_id, app)
            sub.expiration = self._expiration(payload.get("expirationDateTime"))
            return sub

    def delete(self, subscription_id: str, app: AppRegistration | None = None) -> None:
        with self.tenant.lock:
            self.get(subscription_id, app)
            self._forget(subscription_id)

    def expire(self, subscription_id: str) -> None:
        with self.tenant.lock:
            self.get(subscription_id).expiration = self.tenant.clock.now() - timedelta(seconds=1)

    # -- notifications -------------------------------------------------------------------------------------------

    def send_lifecycle(self, subscription_id: str, lifecycle_event: str) -> None:
        if lifecycle_event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event {lifecycle_event!r}")
        with self.tenant.lock:
            sub = self.get(subscription_id)
            if sub.lifecycle_url is None:
                raise ValueError(f"subscription {subscription_id} has no lifecycleNotificationUrl")
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": graph_timestamp(sub.expiration),
                "tenantId": self.tenant.id,
                "clientState": sub.client_state,
                "lifecycleEvent": lifecycle_event,
            }
            if lifecycle_event == "subscriptionRemoved":
                self._forget(sub.id)
            self.delivery.lifecycle(sub.lifecycle_url, {"value": [item]})

    def _on_change(self, change: Change) -> None:
        resource = f"Users/{change.mailbox_id}/Events/{change.event_id}"
        for sub in self.active().values():
            if sub.mailbox_id != change.mailbox_id or change.change_type not in sub.change_types:
                continue
            item: dict[str, Any] = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": graph_timestamp(sub.expiration),
                "changeType": change.change_type,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "@odata.etag": change.etag,
                    "id": change.event_id,
                },
                "tenantId": self.tenant.id,
            }
            if sub.client_state is not None:
                item["clientState"] = sub.client_state
            self.delivery.notify(sub.notification_url, {"value": [item]})

    # -- validation ----------------------------------------------------------------------------------------------

    def _parse(self, payload: dict[str, Any], app: AppRegistration) -> Subscription:
        change_types = [part.strip() for part in str(payload.get("changeType") or "").split(",") if part.strip()]
        if not change_types or not set(change_types) <= CHANGE_TYPES:
            raise _bad(f"Invalid changeType '{payload.get('changeType')}'.")
        resource = str(payload.get("resource") or "")
        match = _EVENTS_RESOURCE.match(resource)
        if match is None:
            raise _bad(f"Unsupported resource '{resource}'. Use users/{{id}}/events.")
        mailbox = self.tenant.directory.find(match.group(1) or match.group(2))
        if mailbox is None:
            raise GraphError(404, "ResourceNotFound", f"Resource '{resource}' not found.")
        client_state = payload.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
            raise _bad(f"clientState is limited to {MAX_CLIENT_STATE} characters.")
        return Subscription(
            id=str(uuid.uuid4()),
            resource=resource,
            mailbox_id=mailbox.id,
            change_type=",".join(change_types),
            notification_url=_webhook_url(payload.get("notificationUrl"), "notificationUrl"),
            lifecycle_url=(
                _webhook_url(payload["lifecycleNotificationUrl"], "lifecycleNotificationUrl")
                if payload.get("lifecycleNotificationUrl")
                else None
            ),
            expiration=self._expiration(payload.get("expirationDateTime")),
            client_state=client_state,
            application_id=app.client_id,
            creator_id=app.service_principal_id,
        )

    def _expiration(self, value: object) -> datetime:
        if not isinstance(value, str):
            raise _bad("expirationDateTime is required.")
        requested, now = parse_iso(value), self.tenant.clock.now()
        if requested <= now:
            raise _bad("Subscription expiration must be in the future.")
        if requested - now > MAX_LIFETIME:
            minutes = int(MAX_LIFETIME.total_seconds() // 60)
            raise _bad(f"Subscription expiration can only be {minutes} minutes in the future.")
        return max(requested, now + MIN_LIFETIME)

    def _refuse_duplicate(self, new: Subscription) -> None:
        with self.tenant.lock:
            sub = self._items.get(self._by_key.get(_key(new), ""))
            if sub is None or sub.expiration <= self.tenant.clock.now():
                return
        raise GraphError(
            409,
            "ExtensionError",
            f"Operation: Create; Exception: [Status Code: Conflict; Reason: A subscription with the same "
            f"resource and changeType already exists: {sub.id}]",
        )

    def _forget(self, subscription_id: str) -> None:
        """Under the tenant lock."""
        sub = self._items.pop(subscription_id)
        if self._by_key.get(_key(sub)) == subscription_id:
            del self._by_key[_key(sub)]


def _key(sub: Subscription) -> tuple[str, str, frozenset[str]]:
    return (sub.application_id, sub.mailbox_id, sub.change_types)


async def _handshake(client: httpx.AsyncClient, url: str) -> bool:
    """Graph's validation POST: the endpoint must echo the (decoded) token as text within 10 s."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    try:
        response = await client.post(
            url, params={"validationToken": token}, headers={"Content-Type": "text/plain; charset=utf-8"}
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text == token


def _webhook_url(value: object, name: str) -> str:
    """https, as Graph requires; plain http is tolerated on loopback only (the demo's local webhook)."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or not parts.hostname or parts.scheme not in ("https", "http"):
        raise _bad(f"{name} must be an absolute URL.")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise _bad(f"{name} must use https.")
    return str(value)


def _bad(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)
