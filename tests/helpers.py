"""Small builders shared by tests."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from app.platform.crypto import SecretBox, digest
from app.platform.models import Integration, Room, Subscription, utcnow
from tests.conftest import SECRET_KEY


def seed_subscription(engine, client_state: str = "the-client-state", enabled: bool = True,
                      subscription_id: str = "sub-1") -> tuple[Integration, Room, Subscription]:
    """An integration with one room and one active subscription, written straight into the database."""
    box = SecretBox(SECRET_KEY)
    with Session(engine, expire_on_commit=False) as s:
        integration = Integration(
            name="Contoso", enabled=enabled, tenant_domain="contoso.com", tenant_id="t", client_id="c",
            client_secret_enc=box.encrypt("graph-secret"), booking_base_url="http://127.0.0.1:1",
            booking_api_key_enc=box.encrypt("booking-key"), hook_secret_enc=box.encrypt("hook"),
            default_store_id="store-1")
        room = Room(integration_id=integration.id, email="room-a@contoso.com", name="Room A",
                    mailbox_id="9b1c2d3e-0000-4000-8000-000000000001", place_id="p1")
        sub = Subscription(id=subscription_id, integration_id=integration.id, room_id=room.id,
                           client_state_digest=digest(client_state), resource="/users/x/events",
                           expires_at=utcnow() + timedelta(days=3))
        s.add(integration)
        s.flush()
        s.add(room)
        s.flush()
        s.add(sub)
        s.commit()
    return integration, room, sub


def queued(broker: Any, actor: str | None = None) -> list[dict[str, Any]]:
    """Messages waiting in a test's broker (Redis or in-process), delayed ones included, optionally of one actor."""
    queues = set(broker.get_declared_queues()) | set(broker.get_declared_delay_queues())
    found: list[dict[str, Any]] = []
    for q in queues:
        if hasattr(broker, "client"):  # Redis
            found += [json.loads(m) for m in broker.client.hvals(f"{broker.namespace}:{q}.msgs")]
        else:
            found += [json.loads(m) for m in list(broker.queues[q].queue)]
    return [m for m in found if actor is None or m["actor_name"] == actor]
